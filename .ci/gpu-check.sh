#!/usr/bin/env bash
# The GPU check, for a machine with a GPU and its Vulkan driver (NVIDIA: the driver's Vulkan ICD): the model-core
# benchmark (forward, LoRA backprop step, MeZO step on the tiny and the GPT-2-small-width model) on webgpu and on
# wasm, one JSON line each on stdout. Needs nothing from the network (random weights, synthetic data).
#
#   .ci/gpu-check.sh                 # webgpu line, then wasm line
#   .ci/gpu-check.sh --steps 10      # more timed steps (default 5); flags go to both runs
#   LETHE_GPU_PARITY=1 .ci/gpu-check.sh   # first a parity line: every trainer on webgpu vs cpu (max |diff|)
#
# The webgpu run refuses a software adapter (exit 4): lavapipe numbers must not pass for the GPU's.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f dist/bench/gpu/check.js ] || npx tsc -p .
if [ "${LETHE_GPU_PARITY:-0}" = 1 ]; then
  node dist/bench/gpu/check.js parity --backend webgpu --require-hardware
fi
node dist/bench/gpu/check.js bench --backend webgpu --require-hardware "$@"
node dist/bench/gpu/check.js bench --backend wasm "$@"
