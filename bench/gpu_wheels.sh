#!/usr/bin/env bash
# Prepares what bench/gpu.sh carries to a GPU machine that has no network, no ../shared and at
# most 64 MiB of carried files:
#   bench/.carry/wheels/            the pure-Python wheels its Python lacks (ml-collections; its
#                                   one other dependency, PyYAML, comes with flax and orbax)
#   bench/.carry/cifar10-4000.zip   the 4,000-image reduced CIFAR-10 training set that
#                                   `--config.reduced=4000 --config.data_seed=0` selects, plus the
#                                   10,000 test images (original JPEG bytes, about 14 MB)
# Run here, with network:  bash bench/gpu_wheels.sh [path/to/cifar10-jpeg.zip]
# then run on the GPU machine, carrying bench/.carry:  bash bench/gpu.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
SOURCE=${1:-../shared/data/cifar10-jpeg.zip}
CARRY=bench/.carry
mkdir -p "$CARRY/wheels"
"$PY" -m pip download --quiet --no-deps --only-binary=:all: --dest "$CARRY/wheels" ml-collections
PYTHONPATH=. "$PY" bench/pack_reduced.py --source="$SOURCE" --dest="$CARRY/cifar10-4000.zip" \
    --reduced=4000 --data_seed=0
du -sh "$CARRY"/wheels "$CARRY"/cifar10-4000.zip
