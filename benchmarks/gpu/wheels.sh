#!/usr/bin/env bash
# Wheels that a bare CUDA machine with PyTorch (Python 3.12, torch, transformers, accelerate,
# peft, numpy, scipy, matplotlib, typer, rich preinstalled, no package index) lacks to run
# benchmarks/gpu/*.py. Download them here, carry the folder, install them there:
#
#   bash benchmarks/gpu/wheels.sh .whl            # here, with network
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl \
#     && export PYTHONPATH=/tmp/site:$PWD/src     # there
#   python3 benchmarks/gpu/bench_keyframes_video.py --keyframe-speed lightning-8 --distilled --taylorseer
#
# This list ran all three scripts on an H100 image (torch 2.11, transformers 5.17) on 2026-11-27;
# cffi and pycparser are soundfile's, importlib_metadata diffusers', wcwidth ftfy's.
set -euo pipefail
dest="${1:-.whl}"
mkdir -p "$dest"
for spec in diffusers==0.42.1 pydantic==2.14.4 pydantic_core==2.50.5 annotated-types typing-inspection \
    pydantic-settings python-dotenv av==18.1.0 soundfile cffi pycparser pyloudnorm soxr platformdirs \
    importlib_metadata ftfy wcwidth llguidance; do
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$dest" "$spec"
done
du -sh "$dest"
