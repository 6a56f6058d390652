#!/usr/bin/env bash
# Creates .venv and installs the project into it. Idempotent: a second run only checks.
#   scripts/bootstrap.sh         runtime (bot, generator, queue)
#   scripts/bootstrap.sh --dev   plus test and lint tools
set -euo pipefail
cd "$(dirname "$0")/.."

extras=""
[ "${1:-}" = "--dev" ] && extras="[dev]"

python=${PYTHON:-}
if [ -z "$python" ]; then
  for candidate in python3.11 python3.12 python3.13 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      python=$candidate; break
    fi
  done
fi
[ -n "$python" ] || { echo "bootstrap: Python >= 3.11 is required (set PYTHON=/path/to/python3.11)" >&2; exit 1; }

[ -x .venv/bin/python ] || "$python" -m venv .venv
pip=(.venv/bin/python -m pip --disable-pip-version-check -q)

# Pin torch first: an unpinned torch on Linux pulls a multi-GB CUDA build. Set TORCH_SPEC to choose another
# version, and TORCH_INDEX_URL for a build of it: https://download.pytorch.org/whl/cpu (CPU only) or
# https://download.pytorch.org/whl/cu130 (CUDA 13.0; the Dockerfile's CUDA variant sets it).
if ! .venv/bin/python -c 'import torch' 2>/dev/null; then
  "${pip[@]}" install ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} "${TORCH_SPEC:-torch==2.13.0}"
fi
"${pip[@]}" install -e ".${extras}"
# taming-transformers' PyPI release requires pytorch-lightning and torchvision, which we never import:
# only taming.modules (the VQGAN Decoder) is used.
.venv/bin/python -c 'import taming.modules.diffusionmodules.model' 2>/dev/null ||
  "${pip[@]}" install --no-deps "taming-transformers==0.0.1"
# The exactness tests compare our text normalizer with dalle-mini's own module, loaded by file path;
# its package would otherwise pull jax, flax and wandb.
if [ -n "$extras" ]; then
  .venv/bin/python -c 'import importlib.util as u; assert u.find_spec("dalle_mini")' 2>/dev/null ||
    "${pip[@]}" install --no-deps "dalle-mini==0.1.5"
fi
echo "bootstrap: .venv ready ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'))"
