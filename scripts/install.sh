#!/usr/bin/env bash
# Set up equivox in ./.venv on a fresh Debian machine with Python 3.11 (idempotent: a second run takes seconds).
#   scripts/install.sh          runtime install (what `make demo` needs)
#   scripts/install.sh --test   also the test tools (what `make test` needs)
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
VENV=.venv
EXTRAS=""
[[ "${1:-}" == "--test" ]] && EXTRAS="[test]"
STAMP="$VENV/.equivox-install${EXTRAS:+-test}"

# escnn needs py3nj, which is compiled with gfortran when no wheel fits.
if ! command -v gfortran >/dev/null 2>&1; then
    if [[ "$(id -u)" == "0" ]] && command -v apt-get >/dev/null 2>&1; then
        echo "[install] installing gfortran (needed to build py3nj for escnn)"
        apt-get install -y -q gfortran >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q gfortran >/dev/null; }
    else
        echo "[install] ERROR: gfortran is missing and this script is not root; run: sudo apt-get install -y gfortran" >&2
        exit 1
    fi
fi

if [[ -f "$STAMP" && "$STAMP" -nt pyproject.toml && "$STAMP" -nt scripts/install.sh ]]; then
    echo "[install] up to date ($VENV)"
    exit 0
fi

[[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
PIP="$VENV/bin/python -m pip --disable-pip-version-check -q"
# torch is pinned here: an unpinned torch pulls a multi-GB CUDA build; 2.13.0 is the local CPU build.
$PIP install "torch==2.13.0"
$PIP install -e ".${EXTRAS}" "torch==2.13.0"
# PyPI's torchvision (pulled in by nnU-Net's timm dependency) is built for PyPI's torch and fails to import beside
# the local CPU build ("operator torchvision::nms does not exist"), which breaks MONAI's optional imports. equivox
# does not need it (only nnU-Net's timm-based Primus architectures do): remove a torchvision that cannot import.
if ! "$VENV/bin/python" -c "import torchvision" >/dev/null 2>&1; then
    "$VENV/bin/python" -m pip uninstall -y -q torchvision >/dev/null 2>&1 || true
fi
touch "$STAMP"
echo "[install] done: $VENV ($("$VENV/bin/python" -c 'import torch, escnn, monai; print("torch", torch.__version__, "| escnn", escnn.__version__, "| monai", monai.__version__)'))"
