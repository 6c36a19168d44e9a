# One venv for everything; set-up is idempotent (stamp files), so `make test` / `make run` work on a
# fresh clone and are cheap afterwards.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.scenechain-installed
MODELS_DIR ?= .models
PROFILE ?= tiny
PYTEST_ARGS ?=

export SCENECHAIN_MODEL_DIR ?= $(abspath $(MODELS_DIR))

.PHONY: install models test test-unit test-integration test-gpu run lint bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	$(PY) -m weights.compat
	touch $@

install: $(STAMP)

models: install
	$(PY) -m serve.cli forge-models --profile $(PROFILE) --out $(SCENECHAIN_MODEL_DIR)

# pytest exits 5 when a marker selected no tests: that is not a failure here.
test: models
	$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests selected"; exit 0; fi; exit $$rc

test-unit: models
	$(PY) -m pytest tests/unit $(PYTEST_ARGS); rc=$$?; [ $$rc -eq 5 ] && exit 0; exit $$rc

test-integration: models
	$(PY) -m pytest tests/integration $(PYTEST_ARGS); rc=$$?; [ $$rc -eq 5 ] && exit 0; exit $$rc

test-gpu: models
	$(PY) -m pytest tests/gpu -m gpu $(PYTEST_ARGS); rc=$$?; [ $$rc -eq 5 ] && exit 0; exit $$rc

run: models
	$(PY) -m serve.cli run --profile $(PROFILE)

bench: models
	$(PY) -m pip install -q -e '.[dev,bench]'
	$(PY) -m bench $(BENCH_ARGS)

lint: install
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) $(MODELS_DIR) .pytest_cache
