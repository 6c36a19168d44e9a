#!/usr/bin/env bash
# Download, here, the wheels that bench.gpu_cores needs on the lent GPU machine and that its image lacks.
#
#   scripts/gpu_wheels.sh [DIR]          (default DIR: .gpu/wheels)
#
# The GPU machine has Python 3.12, CUDA torch 2.11, torchvision, transformers 5.17, timm, regex,
# huggingface_hub, safetensors, tokenizers, sentencepiece, filelock, pillow, numpy, no network, and
# NO diffusers, open_clip, pydantic (see /work/.library/device/KINDS.md). Everything listed here is
# downloaded --no-deps for CPython 3.12 / manylinux x86_64, binary only, at the versions our venv runs;
# the total must stay under 64 MiB (what one device call may carry). scripts/gpu_run.sh installs them.
# Keep DIR out of git: `echo /.gpu/ >> .git/info/exclude`.
set -euo pipefail

DIR="${1:-.gpu/wheels}"
LIMIT_MIB=64
PIP="${PIP:-.venv/bin/python -m pip}"

# name==version: the pins of our own venv (diffusers / open_clip and what they need beyond the image).
WHEELS=(
  "diffusers==0.42.1"          # FluxPipeline, AutoencoderKL
  "importlib-metadata==10.2.0" # diffusers' requirement; not in the GPU image
  "zipp==4.1.2"                # importlib-metadata's requirement (the image's may be older)
  "lazy-importer==0.1.0"       # importlib-metadata's requirement
  "open-clip-torch==3.3.0"     # CLIPScore / aesthetic towers, CLIP BPE vocabulary
  "ftfy==6.3.1"                # open_clip's tokenizer
  "wcwidth==0.9.4"             # ftfy's requirement
  "pydantic==2.14.4"           # our cores' models
  "pydantic-core==2.50.5"      # pydantic's compiled core (cp312 wheel)
  "annotated-types==0.8.0"     # pydantic's requirement
  "typing-inspection==0.4.5"   # pydantic's requirement
  "typing-extensions==4.16.0"  # pydantic needs >= 4.16; the image's version is not known
)

mkdir -p "$DIR"
$PIP download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any \
  -d "$DIR" "${WHEELS[@]}"

# one version of each distribution only (two stop the install there)
dupes=$(ls "$DIR"/*.whl | xargs -n1 basename | cut -d- -f1 | tr '[:upper:]-' '[:lower:]_' | sort | uniq -d)
if [ -n "$dupes" ]; then
  echo "more than one wheel of: $dupes (clean $DIR)" >&2
  exit 1
fi

total=$(du -cb "$DIR"/*.whl | tail -1 | cut -f1)
ls -l "$DIR"/*.whl | awk '{printf "%10d  %s\n", $5, $9}'
mib=$(awk -v b="$total" 'BEGIN { printf "%.1f", b / 1048576 }')
echo "total: $total bytes = $mib MiB (limit $LIMIT_MIB MiB)"
if [ "$total" -ge $((LIMIT_MIB * 1048576)) ]; then
  echo "too large to carry" >&2
  exit 1
fi
