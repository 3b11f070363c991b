#!/usr/bin/env bash
# Does the self-supervised phase learn? (README, "Self-supervised evaluation": the study.)
#
# On the demo data: pretrain for PRETRAIN_EPOCHS (default 5), seeds 0-2, with the batch-norm
# running statistics of whole images (fgssl's default) or of every pass (the reference code),
# each with and without precise batch-norm statistics (fgssl's default: on), then one
# finetune epoch (the pipeline needs one; the study reads the pretrained network).
# Then the same protocols on the same networks with random weights, the reference that
# features pretrained from scratch should beat. Writes under OUT (default docs/ssl-study):
#   report.md/.csv (fgssl-report), probe and k-NN against the policy (PNG + CSV),
#   random_init.csv (the random-weight reference of each seed), and each run's monitor curve.
# About 50 minutes on an idle 2-core CPU with the defaults (two runs at a time, one thread each).
set -euo pipefail
EPOCHS=${PRETRAIN_EPOCHS:-5}
OUT=${OUT:-docs/ssl-study}
SWEEP=${SWEEP:-multirun/ssl-study-$(date +%Y-%m-%d_%H-%M-%S)}
BIN=${BIN:-$(dirname "$(command -v fgssl-train)")}

mkdir -p "$SWEEP" "$OUT"
run() {  # one seed, both policies, one after the other
    OMP_NUM_THREADS=1 "$BIN/fgssl-train" -m +experiment=demo name=ssl-study \
        pretrain_epochs="$EPOCHS" finetune_epochs=1 figures.enabled=false \
        bn_running_stats=whole_images,every_pass precise_bn.enabled=true,false seed="$1" \
        hydra.sweep.dir="$SWEEP/seed$1" \
        hydra.sweep.subdir='${bn_running_stats}_precise${precise_bn.enabled}'
}
run 0 & run 1 & wait
run 2

# one sweep folder for fgssl-report: the twelve jobs side by side
mkdir -p "$SWEEP/all"
for job in "$SWEEP"/seed*/*/; do
    seed=$(basename "$(dirname "$job")"); policy=$(basename "$job")
    ln -sfn "$(realpath "$job")" "$SWEEP/all/${seed}_${policy}"
done
"$BIN/fgssl-report" "$SWEEP/all" --output-dir "$OUT" --plot-against bn_running_stats \
    --metrics ssl_eval/linear_probe/kappa ssl_eval/knn/kappa combined/kappa

echo "seed,protocol,kappa" > "$OUT/random_init.csv"
for seed in 0 1 2; do
    job="$SWEEP/seed$seed/whole_images_precisetrue"
    OMP_NUM_THREADS=1 "$BIN/fgssl-ssl-eval" "$job" --random-init --seed "$seed" \
        --output "$OUT/random_init_seed$seed.json" > /dev/null
    python3 - "$OUT/random_init_seed$seed.json" "$seed" >> "$OUT/random_init.csv" <<'EOF'
import json, sys
results = json.load(open(sys.argv[1]))
for protocol in ("linear_probe", "knn"):
    value = results[protocol]["kappa"]
    print(f"{sys.argv[2]},{protocol},{'' if value is None else value}")
EOF
done
for job in "$SWEEP"/seed*/*/; do
    name="$(basename "$(dirname "$job")")_$(basename "$job")"
    cp "$job/pretrain/metrics.csv" "$OUT/monitor_$name.csv"
done
echo "written under $OUT"
