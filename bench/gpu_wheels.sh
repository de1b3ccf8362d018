#!/usr/bin/env bash
# Download, into .whl/ (git-ignored), the wheels that the GPU machine lacks for bench/gpu_run.sh:
# soundfile for ml/, and the store's stack for bench/infer.py. Versions are the ones installed in
# this checkout's .venv (what the tests pass with); the GPU machine has torch, numpy, rich, typer.
#
#   bench/gpu_wheels.sh          # wheels for the GPU machine's Python 3.12
#   bench/gpu_wheels.sh 3.11     # the same set for Python 3.11 (to try the script on this machine)
set -euo pipefail
cd "$(dirname "$0")/.."
PYVER="${1:-3.12}"
PY=.venv/bin/python
[ -x "$PY" ] || { echo "no .venv: run 'make install' first" >&2; exit 1; }
NAMES="soundfile cffi pycparser sqlalchemy greenlet alembic mako markupsafe pydantic pydantic-core
pydantic-settings python-dotenv annotated-types typing-inspection typing-extensions"
PINS=$("$PY" - $NAMES <<'PY'
import sys
from importlib.metadata import PackageNotFoundError, version
out = []
for name in sys.argv[1:]:
    try:
        out.append(f"{name}=={version(name)}")
    except PackageNotFoundError:
        sys.exit(f"{name} is not installed in .venv; run 'make install'")
print(" ".join(out))
PY
)
rm -rf .whl && mkdir -p .whl
# shellcheck disable=SC2086
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version "$PYVER" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
  -d .whl $PINS
echo "$(ls .whl | wc -l) wheels, $(du -sh .whl | cut -f1) in .whl/ for Python $PYVER: $PINS"
