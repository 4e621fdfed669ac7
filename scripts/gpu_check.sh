#!/usr/bin/env bash
# The GPU check: everything ganlab does only on CUDA, in one command, in under 8 minutes.
#
#   scripts/gpu_check.sh              # on a CUDA machine; without one it says so and exits 0
#   scripts/gpu_check.sh --dry-run    # every check's code path on the CPU at tiny sizes (CI runs
#                                     # this: tests/test_gpu_check.py), so the script cannot rot
#
# Checks, each ending in one line "PASS <check>: <figures>" or "FAIL <check>: <why>":
#   cuda-tests   pytest -m cuda: every test marked cuda passes (a skip on a CUDA machine fails it)
#   bench        scripts/bench_train.py's CUDA cases, short: DCGAN-64 and ResNet-32 x js, wgan_gp,
#                spectral_norm x fp32, bf16, fp16 against the reference loop; a table of rates,
#                speedups and peak memory, with the README's GPU targets beside them (not judged)
#   train-fp32, train-bf16, train-fp16
#                a 500-step WGAN-GP DCGAN on the digits (experiment=digits_dcgan objective=wgan_gp)
#                in each precision: it must finish with finite losses and metrics on cuda in that
#                precision; fp16 may skip at most 5% of its optimizer steps (Precision/skipped_steps,
#                read from the run's TensorBoard events). Figures: steps/s, the final metrics,
#                the skipped steps and the loss scale. 500 steps are too few to judge quality, so the
#                metrics are shown side by side, not judged.
#   train-distributed
#                the same run (bf16) as ONE run on every GPU of the machine: torchrun --nproc_per_node=<GPUs>
#                $(which ganlab) train, NCCL (a 1-process NCCL group on a 1-GPU machine), judged as above
#                (a dry run: 2 processes on the CPU with Gloo)
# The exit status is 1 if any check failed, 2 for a bad option. The judging and the figures are in
# scripts/gpu_check.py. Each check has a time limit, and all of them together 8 minutes (9 in a dry
# run): a check that hangs fails, and the checks after it still run.
#
# Options:
#   --dry-run                 CPU only (CUDA hidden), tiny sizes, threads=1; the fp16 run becomes bf16
#                             (the CPU refuses fp16), CUDA tests that skip are accepted
#   --wheels DIR              first pip-install the wheels in DIR (no index) into OUT/site: for a
#                             machine that lacks some of ganlab's dependencies and cannot download
#   --out DIR                 where logs and run directories go (default: a new /tmp/gpu_check.XXXXXX)
#   --classifier-cache DIR    the metrics' digits classifier (default: OUT/classifiers; trained once)
#   PYTHON=...                the interpreter (default: the checkout's .venv/bin/python if there is
#                             one, else python3); ganlab is imported from this checkout
#
# On a CUDA machine that has torch, pytest, tensorboard, scikit-learn and scipy but not Hydra, and
# cannot download, carry Hydra as wheels. All three are pure Python, so wheels built on another
# machine install there whatever its Python 3 version. Once, in the repository root of a machine
# with the venv (the versions are those of .venv):
#     echo /.whl/ >> .git/info/exclude
#     .venv/bin/python -m pip wheel --no-deps -w .whl hydra-core==1.3.8 omegaconf==2.3.1 antlr4-python3-runtime==4.9.3
# then on the CUDA machine, with a time limit of 10 minutes (8 and a margin):
#     bash scripts/gpu_check.sh --wheels .whl       (copy .whl along with the checkout)
set -uo pipefail  # no -e: a failed check is reported, and the next check still runs

usage() { sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

dry_run=0 wheels="" out="" classifier_cache=""
while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) dry_run=1 ;;
        --wheels|--out|--classifier-cache)
            [ $# -ge 2 ] || { echo "error: $1 needs a directory (see --help)" >&2; exit 2; }
            case "$1" in --wheels) wheels=$2 ;; --out) out=$2 ;; *) classifier_cache=$2 ;; esac
            shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "error: unknown option $1: choose from --dry-run, --wheels DIR, --out DIR, --classifier-cache DIR (see --help)" >&2; exit 2 ;;
    esac
    shift
done

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
default_python=python3
[ -x "$repo/.venv/bin/python" ] && default_python=$repo/.venv/bin/python  # the README's setup
python=${PYTHON:-$default_python}
if ! "$python" -c 'import torch' 2>/dev/null; then
    # Not "no CUDA": with no torch nothing could be checked, and exit 0 would read as a pass.
    echo "error: $python cannot import torch: set PYTHON to the interpreter that has ganlab's dependencies (e.g. PYTHON=.venv/bin/python)" >&2
    exit 2
fi
if [ -n "$wheels" ]; then
    set -- "$wheels"/*.whl
    [ -f "$1" ] || { echo "error: --wheels $wheels holds no .whl files (see --help for how to make them)" >&2; exit 2; }
fi
made_out=0
[ -n "$out" ] || { out=$(mktemp -d /tmp/gpu_check.XXXXXX); made_out=1; }
mkdir -p "$out"
out=$(cd "$out" && pwd)
classifier_cache=${classifier_cache:-$out/classifiers}
export PYTHONUNBUFFERED=1

if [ -n "$wheels" ]; then
    "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$out/site" "$@" \
        || { echo "error: pip could not install the wheels in $wheels" >&2; exit 2; }
    export PYTHONPATH="$out/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"  # this checkout's ganlab, not an installed one

if [ "$dry_run" = 1 ]; then
    export CUDA_VISIBLE_DEVICES="" OMP_NUM_THREADS=1  # the CPU path, even on a GPU machine
    device=cpu dry=(--dry-run) budget=540  # a loaded CI machine is slow; tests/test_gpu_check.py waits 600 s
    objectives=wgan_gp precisions=fp32,bf16  # bf16 beside fp32: the bf16_over_fp32 line
    bench_size=(--device cpu --threads 1 --seconds 0.05 --rounds 1 --warmup 1 --split-repeats 1
                --set model.width=4 --set batch_size=4 --set dataset.resolution=32 --set objective.n_critic=1)
    steps=4 train_size=(log_every=2 sample_every=4 eval_every=4 checkpoint_every=4 eval_samples=200 model.width=8 batch_size=16 threads=1)
    per_process_batch=8
else
    if ! "$python" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
        echo "gpu_check: no CUDA device here ($python, torch $("$python" -c 'import torch; print(torch.__version__)' 2>/dev/null || echo 'not importable')): nothing to check."
        echo "gpu_check: scripts/gpu_check.sh --dry-run runs every check's code on the CPU."
        [ "$made_out" = 0 ] || rm -rf "$out"  # nothing ran: leave no empty folder behind
        exit 0
    fi
    device=cuda dry=() budget=480  # the promised 8 minutes, within a 10-minute limit
    objectives=js,wgan_gp,spectral_norm precisions=fp32,bf16,fp16  # 18 cases, about 8 s each
    bench_size=(--seconds 1.5 --rounds 3 --warmup 3 --split-repeats 3)
    steps=500 train_size=(log_every=50 sample_every=500 eval_every=500 checkpoint_every=500)
    per_process_batch=64  # experiment=digits_dcgan's batch on each GPU
fi
echo "gpu_check: $( [ "$dry_run" = 1 ] && echo "dry run on the CPU" || "$python" -c 'import torch; print(torch.cuda.get_device_name(0))'), logs in $out"

failed=0 checks=0 deadline=$((SECONDS + budget))
limit() {  # limit SECONDS COMMAND...: run it, stopped after SECONDS or at the deadline (timeout(1) where there is one)
    local seconds=$1 left=$((deadline - SECONDS)); shift
    [ "$left" -lt "$seconds" ] && seconds=$((left > 10 ? left : 10))
    if command -v timeout >/dev/null; then timeout -k 10 "$seconds" "$@"; else "$@"; fi
}
judge() {  # judge SUBCOMMAND ARGS...: scripts/gpu_check.py prints the figures and the PASS/FAIL line
    checks=$((checks + 1))
    "$python" scripts/gpu_check.py "$@" ${dry[@]+"${dry[@]}"} || failed=$((failed + 1))
}

echo "== 1/4 the CUDA tests: pytest -m cuda"
start=$SECONDS
# -o addopts=-ra: not the suite's "-n auto" (pytest-xdist need not be installed on the GPU machine)
limit 150 "$python" -m pytest -q -m cuda -o addopts=-ra -p no:cacheprovider --junitxml "$out/cuda_tests.xml" >"$out/cuda_tests.log" 2>&1
rc=$?
judge tests "$out/cuda_tests.xml" --rc $rc --seconds $((SECONDS - start)) --log "$out/cuda_tests.log"

bench=(--cases dcgan64,resnet32 --objectives $objectives --precisions $precisions)  # bench_train.py's CUDA cases
echo "== 2/4 the GPU benchmark cases, short: scripts/bench_train.py ${bench[*]} ${bench_size[*]}"
start=$SECONDS
limit 240 "$python" scripts/bench_train.py "${bench[@]}" "${bench_size[@]}" >"$out/bench.log" 2>&1
rc=$?
judge bench "$out/bench.log" --rc $rc --seconds $((SECONDS - start)) --log "$out/bench.log" "${bench[@]}"

echo "== 3/4 WGAN-GP DCGAN on the digits, $steps steps, in fp32, bf16 and fp16"
for check in fp32 bf16 fp16; do
    precision=$check
    if [ "$dry_run" = 1 ] && [ "$check" = fp16 ]; then
        precision=bf16  # the CPU refuses fp16 (a GradScaler needs CUDA); the fp16 reading is tested in tests/test_gpu_check.py
    fi
    run_dir="$out/train-$check"
    start=$SECONDS
    limit 120 "$python" -m ganlab train experiment=digits_dcgan objective=wgan_gp precision=$precision device=$device \
        steps=$steps "${train_size[@]}" hydra.run.dir="$run_dir" metrics.classifier_cache="$classifier_cache" \
        >"$out/train-$check.log" 2>&1
    rc=$?
    judge train "$run_dir" --rc $rc --seconds $((SECONDS - start)) --log "$out/train-$check.log" \
        --check "train-$check" --precision $precision --steps $steps
done

if [ "$dry_run" = 1 ]; then nproc=2; else nproc=$("$python" -c 'import torch; print(torch.cuda.device_count())'); fi
echo "== 4/4 one run on $nproc process(es), one per GPU: torchrun --nproc_per_node=$nproc \$(which ganlab) train ($( [ "$dry_run" = 1 ] && echo Gloo || echo NCCL))"
run_dir="$out/train-distributed"
start=$SECONDS
limit 150 "$python" -m torch.distributed.run --nproc_per_node="$nproc" --master_port=$((29500 + RANDOM % 1000)) -m ganlab train \
    experiment=digits_dcgan objective=wgan_gp precision=bf16 device=$device steps=$steps "${train_size[@]}" batch_size=$((per_process_batch * nproc)) \
    hydra.run.dir="$run_dir" metrics.classifier_cache="$classifier_cache" >"$out/train-distributed.log" 2>&1
rc=$?
judge train "$run_dir" --rc $rc --seconds $((SECONDS - start)) --log "$out/train-distributed.log" \
    --check train-distributed --precision bf16 --steps $steps

echo "== gpu_check: $((checks - failed)) of $checks checks passed$( [ "$dry_run" = 1 ] && echo " (dry run on the CPU)"), logs in $out"
[ "$failed" = 0 ]
