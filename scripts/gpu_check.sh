#!/usr/bin/env bash
# The checks that need a CUDA GPU, as one script (the CPU suite cannot run them):
#   1. both phases and both step modes in 16-mixed and bf16-mixed, with gradient clipping
#      (a Hydra sweep of the demo, which also writes its report);
#   2. DDP on CUDA (NCCL) with SyncBatchNorm;
#   3. torch.compile on the GPU;
#   4. GPU throughput (issue 15): scripts/gpu_benchmark.py, ResNet-50 at 224 px: the
#      progressive steps against full passes per optimizer implementation, the whole data
#      pipeline against the step alone, the compile + bf16-mixed reproduction, images/s per
#      precision, host syncs per batch (meant to take under 8 minutes on an H200).
# Usage: bash scripts/gpu_check.sh OUTPUT_DIR [benchmark]
#   benchmark: step 4 only (one call, the benchmark's JSON in OUTPUT_DIR/gpu-benchmark.json;
#   copy it to docs/benchmarks/).
# OUTPUT_DIR gets a few files: each step's log, results.json of every run gathered in
# results.json, and the benchmark's JSON; the run directories go to $FGSSL_CHECK_RUNS.
set -uo pipefail
out=${1:?usage: bash scripts/gpu_check.sh OUTPUT_DIR [benchmark]}
only=${2:-all}
runs=${FGSSL_CHECK_RUNS:-/tmp/fgssl-gpu-check}
mkdir -p "$out" "$runs"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export FGSSL_DEMO_ROOT=${FGSSL_DEMO_ROOT:-/tmp/fgssl-demo}
train=(python3 -m fgssl.cli.train)
demo=(+experiment=demo trainer=gpu pretrain_epochs=2 finetune_epochs=3
    figures.enabled=false ssl_eval.enabled=false data.num_workers=6 trainer.enable_progress_bar=false)
status=0
step() {  # step NAME COMMAND...: run, time and log one check
    local name=$1; shift
    local start=$SECONDS
    "$@" >"$out/$name.log" 2>&1
    local rc=$?
    echo "== $name: rc $rc in $((SECONDS - start)) s"
    grep -E "non-finite|Error|error:" "$out/$name.log" | tail -4
    [ $rc -eq 0 ] || status=1
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, pytorch_lightning as pl; print('torch', torch.__version__, 'lightning', pl.__version__)"

benchmark() {
    step gpu_benchmark python3 scripts/gpu_benchmark.py --out "$out/gpu-benchmark.json"
    grep -A 14 "^## " "$out/gpu_benchmark.log" | tail -80
}
if [ "$only" = benchmark ]; then
    benchmark
    exit $status
fi

step precision "${train[@]}" -m "${demo[@]}" trainer.precision=16-mixed,bf16-mixed \
    step_mode=progressive,fused optim.grad_clip=1.0 hydra.sweep.dir="$runs/precision"
cp "$runs/precision/report.md" "$out/precision-report.md"
step ddp_syncbn "${train[@]}" "${demo[@]}" trainer=ddp trainer.devices=1 model.sync_batchnorm=true \
    trainer.precision=16-mixed hydra.run.dir="$runs/ddp"
step compile "${train[@]}" "${demo[@]}" perf.compile=true trainer.precision=bf16-mixed \
    hydra.run.dir="$runs/compile"
python3 - "$runs" "$out/results.json" <<'PY'
import json, sys
from pathlib import Path
runs = {str(p.parent.relative_to(sys.argv[1])): json.loads(p.read_text())
        for p in sorted(Path(sys.argv[1]).rglob("results.json"))}
Path(sys.argv[2]).write_text(json.dumps(runs, indent=1))
for name, r in runs.items():
    combined = {k: round(v, 3) for k, v in r["test"]["combined"].items()}
    print(name, combined, {k: round(v, 1) for k, v in r["timings"].items()})
PY
benchmark
exit $status
