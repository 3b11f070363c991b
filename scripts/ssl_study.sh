#!/usr/bin/env bash
# Does the self-supervised phase learn? (docs/studies/ssl.md: the study.)
#
# On the demo data, seeds 0-2, pretrain for PRETRAIN_EPOCHS (default 5) then one finetune
# epoch (the pipeline needs one; the study reads the pretrained network), in two settings:
#   now:       fgssl's defaults, bn_running_stats=whole_images precise_bn.enabled=true
#   reference: the reference code's batch-norm statistics, bn_running_stats=every_pass
#              precise_bn.enabled=false (fgssl before these options)
# and the same protocols on the same network with random weights (fgssl-ssl-eval
# --random-init), the reference that features pretrained from scratch should beat.
# Writes under OUT (default docs/ssl-study): report.md/.csv/runs.csv (fgssl-report: the
# linear probe and k-NN on the backbone's features, test split), random_init.csv, and each
# run's pretrain monitor (monitor_<seed>_<setting>.csv: k-NN of the validation images at
# every epoch, epoch 0 = random weights). About 25 minutes on an idle 2-core CPU (two runs
# at a time, one thread each).
set -euo pipefail
EPOCHS=${PRETRAIN_EPOCHS:-5}
OUT=${OUT:-docs/ssl-study}
SWEEP=${SWEEP:-multirun/ssl-study-$(date +%Y-%m-%d_%H-%M-%S)}
BIN=${BIN:-$(dirname "$(command -v fgssl-train)")}
declare -A SETTINGS=(
    [now]="bn_running_stats=whole_images precise_bn.enabled=true"
    [reference]="bn_running_stats=every_pass precise_bn.enabled=false"
)

mkdir -p "$SWEEP" "$OUT"
run() {  # one seed, both settings, one after the other
    for setting in now reference; do
        # shellcheck disable=SC2086  # the setting is a list of overrides
        OMP_NUM_THREADS=1 "$BIN/fgssl-train" -m +experiment=demo name=ssl-study optim.lr=0.02 \
            pretrain_epochs="$EPOCHS" finetune_epochs=1 figures.enabled=false \
            ${SETTINGS[$setting]} seed="$1" \
            hydra.sweep.dir="$SWEEP" hydra.sweep.subdir="seed$1_$setting" > /dev/null
    done
}
run 0 & run 1 & wait
run 2

"$BIN/fgssl-report" "$SWEEP" --output-dir "$OUT" \
    --metrics ssl_eval/linear_probe/kappa ssl_eval/knn/kappa combined/kappa

echo "seed,protocol,kappa" > "$OUT/random_init.csv"
for seed in 0 1 2; do
    OMP_NUM_THREADS=1 "$BIN/fgssl-ssl-eval" "$SWEEP/seed${seed}_now" --random-init \
        --seed "$seed" --output "$OUT/random_init_seed$seed.json" > /dev/null
    python3 - "$OUT/random_init_seed$seed.json" "$seed" >> "$OUT/random_init.csv" <<'EOF'
import json, sys
results = json.load(open(sys.argv[1]))
for protocol in ("linear_probe", "knn"):
    value = results[protocol]["kappa"]
    print(f"{sys.argv[2]},{protocol},{'' if value is None else value}")
EOF
done
for job in "$SWEEP"/seed*/; do
    cp "$job/pretrain/metrics.csv" "$OUT/monitor_$(basename "$job").csv"
done
echo "written under $OUT"
