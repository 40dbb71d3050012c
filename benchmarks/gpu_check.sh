#!/usr/bin/env bash
# The GPU checks of the training step, as one script for a session with a lent GPU:
# CUDA-graph replay trains like the eager step (tests), then the train-step table at the
# DCGAN example's batch (128, the issue's target) and at batch 1024.
#     bash benchmarks/gpu_check.sh        (from the repository root; about 3 minutes on an H200)
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # works without installing the package
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
python -m pytest -q -p no:cacheprovider tests/test_gan_cuda_graphs.py
python benchmarks/train_step.py --device cuda --repeats 5
python benchmarks/train_step.py --device cuda --batch-size 1024 --repeats 3 --steps 10
