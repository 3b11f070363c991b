#!/usr/bin/env bash
# Why do pretrained features trail random weights on the demo? (docs/studies/ssl.md, "Does the pretrain
# phase learn here?": the ablations.) Each setting pretrains for PRETRAIN_EPOCHS (default 5)
# on the demo data, seeds SEEDS, then one finetune epoch (the pipeline needs one); the SSL
# evaluation scores the pretrained backbone's features (linear probe, k-NN, test split):
#   now:             fgssl's defaults
#   reference_loss:  the reference code's Barlow Twins variant (objective=barlow_twins_reference)
#   wide_projector:  a 3-layer 1024-wide projector on every head (Zbontar et al.'s shape,
#                    narrower), loss scale 1/1024 for its 1024 dimensions
#   colour_views:    the views keep their colours: random crops and flips only (no grey,
#                    blur or solarisation)
#   low_lr:          pretrain learning rate 0.002 instead of 0.02
# ABLATIONS chooses among them. Writes STUDY/report (fgssl-report). About 40 minutes on a
# 2-core CPU for two seeds (11 runs took 37 minutes beside a test run).
set -euo pipefail
source "$(dirname "$0")/study_jobs.sh"
STUDY=$(realpath -m "${STUDY:-multirun/ssl-ablations}")
SEEDS=${SEEDS:-"0 1"}
ABLATIONS=${ABLATIONS:-"reference_loss colour_views wide_projector low_lr now"}
PRETRAIN_EPOCHS=${PRETRAIN_EPOCHS:-5}
declare -A SETTINGS=(
    [now]=""
    [reference_loss]="objective=barlow_twins_reference"
    [wide_projector]="model.net.projector=[1024,1024,1024] loss.barlow_scale=0.0009765625"
    [colour_views]="data.transforms.view1.transforms.3.p=0 data.transforms.view1.transforms.4.p=0
        data.transforms.view2.transforms.3.p=0 data.transforms.view2.transforms.4.p=0
        data.transforms.view2.transforms.5.p=0"
    [low_lr]="optim.pretrain_lr=0.002"
)

mkdir -p "$STUDY/runs" "$STUDY/logs"
for seed in $SEEDS; do
    for setting in $ABLATIONS; do
        # shellcheck disable=SC2086  # a setting is a list of overrides
        echo "runs/${setting}_s$seed '' -- name=ssl-ablations pretrain_epochs=$PRETRAIN_EPOCHS" \
            "finetune_epochs=1" ${SETTINGS[$setting]} "seed=$seed"
    done
done > "$STUDY/jobs.txt"
run_queue "$STUDY/jobs.txt"

cd "$STUDY"
"$BIN/fgssl-report" runs --output-dir report \
    --metrics ssl_eval/linear_probe/kappa ssl_eval/knn/kappa
mkdir -p report
for job in runs/*/; do
    cp "$job/pretrain/metrics.csv" "report/monitor_$(basename "$job").csv"
done
echo "written under $STUDY/report"
