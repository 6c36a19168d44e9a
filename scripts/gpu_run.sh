#!/usr/bin/env bash
# Run bench.gpu_cores on a lent GPU machine (bare image: Python 3.12, CUDA torch, transformers; no
# network, no diffusers / open_clip / pydantic, no Ray / vLLM) and copy its JSON to $OUT.
#
#   scripts/gpu_run.sh WHEELS_DIR [MODEL_DIR]
#
# WHEELS_DIR: the wheels scripts/gpu_wheels.sh downloaded here (carried with the working tree, e.g.
# `.gpu/wheels`). MODEL_DIR (default $SCENECHAIN_MODEL_DIR, else .gpu/models): where the config-only
# model dirs are forged (no weights: configs and tokenizers, a few MB, about a minute); dirs already
# there (carried, or from an earlier run) are reused. Results: $OUT/gpu_cores.json (and
# bench/results/gpu_cores.json), the log $OUT/gpu_cores.log, the machine's facts $OUT/gpu_env.txt.
# From the device tool, e.g.:
#   run(command="bash scripts/gpu_run.sh .gpu/wheels", carry=[".gpu"], timeout_s=600)
set -uo pipefail

WHEELS="${1:?usage: scripts/gpu_run.sh WHEELS_DIR [MODEL_DIR]}"
PY="${PYTHON:-python3}"
SITE="${SITE:-/tmp/scenechain-site}"
OUT="${OUT:-$PWD/.gpu/out}"
mkdir -p "$OUT" bench/results

# 1. the carried wheels, offline, beside (not over) the image's packages
$PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$WHEELS"/*.whl || exit 1
export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"
export SCENECHAIN_MODEL_DIR="${2:-${SCENECHAIN_MODEL_DIR:-$PWD/.gpu/models}}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false

# 2. what we run on (and a fail-fast import check: none of these may pull in Ray)
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1
  $PY - <<'EOF'
import sys
import diffusers, open_clip, pydantic, torch, transformers  # noqa: E401
import bench.gpu_cores  # noqa: F401
print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda,
      "gpu", torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)
print("transformers", transformers.__version__, "diffusers", diffusers.__version__,
      "open_clip", open_clip.__version__, "pydantic", pydantic.VERSION)
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("ray", "vllm"))
assert not heavy, f"bench.gpu_cores imported {heavy}"
EOF
} 2>&1 | tee "$OUT/gpu_env.txt"
[ "${PIPESTATUS[0]}" = 0 ] || exit 1

# 3. the gpu-bench profile's config-only dirs (configs + tokenizers, no weights)
$PY -c "from weights.forge import forge_profile; print(forge_profile('gpu-bench'))" 2>&1 | tee "$OUT/forge.log"
[ "${PIPESTATUS[0]}" = 0 ] || exit 1

# 4. the benchmark (it budgets itself to 8 minutes; the JSON is rewritten after every section)
copy_results() { cp -f bench/results/gpu_cores.json "$OUT/gpu_cores.json" 2>/dev/null || true; }
trap copy_results EXIT
timeout --signal=TERM 560 $PY -m bench.gpu_cores --out bench/results/gpu_cores.json 2>&1 | tee "$OUT/gpu_cores.log"
exit "${PIPESTATUS[0]}"
