# Sourced by scripts/demo and scripts/test: a virtual environment with the CPU build of
# torch and casematch installed. Not meant to be run on its own.
#
# torch comes first and from PyTorch's CPU wheel index: left to resolve it through
# sentence-transformers, pip picks a CUDA build of several GB.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

TORCH_SPEC="${CASEMATCH_TORCH_SPEC:-torch==2.13.0}"
TORCH_INDEX="${CASEMATCH_TORCH_INDEX:-https://download.pytorch.org/whl/cpu}"
EXTRAS="${1:-}"

if [ -z "${VIRTUAL_ENV:-}" ]; then
  if [ ! -x .venv/bin/python ]; then
    echo "Creating a virtual environment in .venv" >&2
    python3 -m venv .venv
  fi
  # shellcheck disable=SC1091
  . .venv/bin/activate
fi

# pip's output only when it fails: editable-install and index warnings are noise here.
pip_quiet() {
  local log
  log=$(mktemp)
  if ! python -m pip install --disable-pip-version-check -q "$@" >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    return 1
  fi
  rm -f "$log"
}

has() { python -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('$1') is None)"; }

if ! has torch; then
  echo "Installing the CPU build of torch ($TORCH_SPEC)" >&2
  pip_quiet --retries 1 --timeout 15 --extra-index-url "$TORCH_INDEX" "$TORCH_SPEC"
  has torch || { echo "torch failed to install" >&2; exit 1; }
fi
echo "Installing casematch${EXTRAS:+[$EXTRAS]}" >&2
pip_quiet -e ".${EXTRAS:+[$EXTRAS]}"
python -c "import casematch, faiss, sentence_transformers" || { echo "casematch failed to install" >&2; exit 1; }
