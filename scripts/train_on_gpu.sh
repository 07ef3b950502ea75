#!/usr/bin/env bash
# Train the benchmark and candidate models on a CUDA machine, in parallel.
#
#   bash scripts/train_on_gpu.sh OUT_DIR [MINUTES]
#
# Trains, each in its own process (the network is small: four trainings share
# one GPU well), with at most MINUTES (default 5.5) of training each
# (ROUND=1, the default; ROUND=2 trains wider, multistage and denser-uniform
# variants of the uniform bt_hd model):
#   - the Table II CNN of benchmarks/bench_paper.py (4000 frames with the
#     paper's gradients), cached as OUT_DIR/mt0_2016_gradients_..._cuda.pt;
#     copy it into benchmarks/.cache and run bench_paper.py with
#     --train-device cuda to evaluate it on the CPU;
#   - bt_hd 2013 candidates (scripts/train_pretrained.py): the calibrated
#     preset alone, and the preset widened with denser and filament frames.
# Also runs the test suite on the GPU (device="auto" picks CUDA there) and
# writes every log to OUT_DIR/all.log. Only simulated data are used.
set -u
out=${1:?usage: train_on_gpu.sh OUT_DIR [MINUTES]}
minutes=${2:-5.5}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=3
nvidia-smi -L
python3 -c "import torch, sklearn, skorch, sklearn_smlm as s
print('torch', torch.__version__, 'cuda', torch.cuda.is_available(),
      'sklearn', sklearn.__version__, 'skorch', skorch.__version__,
      'sklearn-smlm', s.__version__)" || exit 1

seconds=$(python3 -c "print(int(60 * $minutes + 120))")
train() {  # name, then train_pretrained.py options
    local name=$1
    shift
    python3 scripts/train_pretrained.py --n-frames 8000 --max-epochs 60 \
        --max-minutes "$minutes" --device cuda --out "$out/$name.pt" "$@" \
        >"$out/$name.log" 2>&1 &
}
case "${ROUND:-1}" in
1)
    timeout -s INT "$seconds" python3 benchmarks/bench_paper.py --only table2 \
        --train-only --train-device cuda --cache "$out" >"$out/table2.log" 2>&1 &
    train bt_hd_2013 --conditions bt_hd_2013
    train bt_hd_2013_uniform --conditions bt_hd_2013_uniform
    train bt_hd_2013_16k --conditions bt_hd_2013 --n-frames 16000
    ;;
2)  # capacity and the multistage head, on uniform frames
    train bt_hd_2013_uniform_64ch --conditions bt_hd_2013_uniform --n-channels 64
    train bt_hd_2013_uniform_ms8 --conditions bt_hd_2013_uniform \
        --upsampling multistage --upscaling 8
    train bt_hd_2013_denser_uniform --conditions bt_hd_2013_denser_uniform
    ;;
esac
(
    export OMP_NUM_THREADS=2
    timeout "$seconds" python3 -m pytest -q -n 2 -p no:cacheprovider \
        --continue-on-collection-errors tests
    python3 -m pytest -q -rA -p no:cacheprovider tests/test_cuda.py
) >"$out/tests.log" 2>&1 &
wait
nvidia-smi --query-gpu=name,memory.used --format=csv
for f in $(ls "$out"/*.log | grep -v all.log); do
    echo "===== $f"
    cat "$f"
done >"$out/all.log"
find "$out" -name "*.log" ! -name all.log -delete
ls -la "$out"
