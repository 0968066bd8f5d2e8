#!/usr/bin/env bash
# Wheels that let the GPU suite run on a lent CUDA machine that has torch and numpy 2 but no package index
# (Python 3.12, x86-64): escnn's stack, MONAI, nibabel, trimesh, with lie_learn's Cython modules rebuilt against
# numpy 2 (its PyPI wheels are built against numpy 1) and py3nj built here with its gfortran runtime beside it.
#
#   bash scripts/device_wheels.sh            # writes .whl/ (ignored by git, ~26 MB); needs pyenv's Python 3.12
#
# On the CUDA machine, from the repository root:
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
#   PYTHONPATH=/tmp/site LD_LIBRARY_PATH=$PWD/.whl/lib PYTHON=python3 bash benchmarks/gpu_suite.sh --out /tmp/g
set -euo pipefail
cd "$(dirname "$0")/.."
PY312="${PY312:-$(pyenv root 2>/dev/null)/versions/3.12.1/bin/python}"
[ -x "$PY312" ] || { echo "device_wheels.sh: no Python 3.12 at $PY312 (set PY312)" >&2; exit 2; }
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
work=$(mktemp -d)
"$PY312" -m venv "$work/venv"
"$work/venv/bin/pip" install -q cython numpy setuptools wheel
rm -rf .whl && mkdir -p .whl/lib
"$work/venv/bin/pip" download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_17_x86_64 --platform manylinux1_x86_64 -d "$work/dl" \
  escnn==1.0.11 lie_learn==0.0.2 pymanopt autograd monai==1.6.1 nibabel trimesh fire pytorch-ignite termcolor
mv "$work"/dl/*none-any.whl .whl/
"$work/venv/bin/pip" wheel -q --no-deps -w .whl py3nj==0.2.1
cp /lib/x86_64-linux-gnu/libgfortran.so.5 /lib/x86_64-linux-gnu/libquadmath.so.0 .whl/lib/

# lie_learn: Python-2 prints and np.int in its .pyx files; compile them against numpy 2 and repack the wheel
(cd "$work" && "$work/venv/bin/wheel" unpack -d unpacked dl/lie_learn-*.whl >/dev/null)
src=$(echo "$work"/unpacked/lie_learn-*)
find "$src" -name '*.so' -delete
sed -i 's/np\.int_t/np.int64_t/g; s/np\.int\b/np.int64/g' $(find "$src" -name '*.pyx')
(cd "$src" && "$work/venv/bin/python" - <<'EOF'
from setuptools import setup, Extension
from Cython.Build import cythonize
import numpy
mods = ["lie_learn.groups.SO3", "lie_learn.representations.SO3.irrep_bases",
        "lie_learn.representations.SO3.pinchon_hoggan.pinchon_hoggan", "lie_learn.spaces.spherical_quadrature"]
exts = [Extension(m, [m.replace(".", "/") + ".pyx"], include_dirs=[numpy.get_include()]) for m in mods]
setup(name="lie_learn_ext", ext_modules=cythonize(exts, language_level=2, quiet=True),
      script_args=["build_ext", "--inplace", "-q"])
EOF
) > "$work/build.log" 2>&1 || { tail -30 "$work/build.log" >&2; exit 1; }
find "$src" \( -name '*.c' -o -name build \) -prune -exec rm -rf {} +
"$work/venv/bin/wheel" pack "$src" -d .whl >/dev/null
rm -rf "$work"
ls .whl
