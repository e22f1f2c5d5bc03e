#!/usr/bin/env bash
# The GPU benchmarks in one go, for a machine with a CUDA device lent for a short while: a smoke
# check first (it stops the suite at once when CUDA or the package is missing), then the DSTD
# layer against its matrix-product floor and the exact solver, the MLP's epoch time, and the CNN
# for the time that is left (whole epochs; rerun to continue). Records go to OUT_DIR/results,
# run folders (resumable) to OUT_DIR/runs; copy the records into benchmarks/results to keep them.
#
#   benchmarks/gpu_suite.sh OUT_DIR [BUDGET_S] [DATA_DIR]     # PYTHON=... picks the interpreter
set -u -o pipefail
out=${1:?usage: benchmarks/gpu_suite.sh OUT_DIR [BUDGET_S (default 600)] [DATA_DIR (Fashion-MNIST idx)]}
budget=${2:-600}
data=${3:-/usr/share/datasets/fashion-mnist}
py=${PYTHON:-python3}
here=$(cd "$(dirname "$0")" && pwd)
start=$SECONDS
left() { echo $((budget - (SECONDS - start))); }
step() { echo "== gpu_suite at $((SECONDS - start)) s: $*"; }
mkdir -p "$out/results" "$out/runs"
common=(--device cuda --data-dir "$data" --results-dir "$out/results")

step "smoke: CUDA, the package, one small epoch"
"$py" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.__version__, torch.cuda.get_device_name())" || exit 3
"$py" "$here/fashion_mnist_mlp.py" --epochs 1 --subset 2048 --test-subset 1024 --device cuda --data-dir "$data" \
    --out "$out/runs/smoke" --results-dir "$out/smoke" --name smoke || exit 3
step "the tests marked gpu"
root=$(cd "$here/.." && pwd)  # pytest from OUT_DIR: the repository root's imcpnn/ folder would shadow the installed package
(cd "$out" && timeout 120 "$py" -m pytest -q -p no:cacheprovider --rootdir "$root" -c "$root/pyproject.toml" -m gpu \
    "$root/tests/pnn/test_cuda_and_hot_path.py" "$root/tests/test_benchmarks.py")
step "DSTD layer vs its matmul floor and the exact solver (batch 100, 1000 neurons, M = 10)"
timeout 180 "$py" "$here/dstd_vs_exact.py" --n-in 1000,3000 --repeats 30 --device cuda \
    --out "$out/runs/dstd_points.json" --results-dir "$out/results" --name cuda
step "MLP 784-400-400-10: epoch time alone (whole epochs within 45 s)"
"$py" "$here/fashion_mnist_mlp.py" --epochs 50 --time-budget-s 45 "${common[@]}" --out "$out/runs/mlp" --name cuda-seed0
if [ "$(left)" -lt 90 ]; then
    step "VGG-like CNN skipped: $(left) s left of the budget"
else
    step "VGG-like CNN: whole epochs in the $(left) s left"
    timeout "$(left)" "$py" "$here/fashion_mnist_cnn.py" --epochs 50 --time-budget-s "$(( $(left) - 30 ))" "${common[@]}" \
        --out "$out/runs/cnn" --name cuda-seed0
fi
step "done"
