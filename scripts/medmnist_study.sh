#!/usr/bin/env bash
# fgssl's baseline against MedMNIST v2's published ResNet-18 (28) on DermaMNIST (docs/studies/real-images.md,
# "Real images"): the +experiment=medmnist protocol on DermaMNIST-format files built from
# the HAM10000 folder HAM (scripts/make_dermamnist.py: 28 px, a random image-level split of
# 7007/1003/2005 images, split seed 0), training seeds SEEDS, EPOCHS epochs (the rate x0.1
# at 50 % and 75 % of them; the protocol's 100 for the seeds in FULL_SEEDS too), precision
# PRECISION. Writes STUDY/report (fgssl-report: mean ± sd over seeds; every run's
# results.json holds the bootstrap intervals). A rerun continues where it stopped.
#   HAM=../shared/realdata/ham10000-200x150 scripts/medmnist_study.sh
set -euo pipefail
source "$(dirname "$0")/study_jobs.sh"
STUDY=$(realpath -m "${STUDY:-multirun/medmnist-study}")
HAM=$(realpath "${HAM:-../shared/realdata/ham10000-200x150}")
SEEDS=${SEEDS:-"0 1 2"}
EPOCHS=${EPOCHS:-20}
FULL_SEEDS=${FULL_SEEDS:-""}
PRECISION=${PRECISION:-bf16-mixed}
TRAIN_ARGS="+experiment=medmnist data.root=$STUDY/data trainer.precision=$PRECISION
    data.extract_dir=$STUDY/extracted data.num_workers=0 trainer.enable_progress_bar=false"

mkdir -p "$STUDY/runs" "$STUDY/logs"
[[ -f $STUDY/data/dermamnist.npz ]] ||
    "$BIN/python" "$(dirname "$0")/make_dermamnist.py" "$HAM" "$STUDY/data" --sizes 28
{
    for seed in $SEEDS; do
        echo "runs/e${EPOCHS}_s$seed '' -- finetune_epochs=$EPOCHS seed=$seed"
    done
    for seed in $FULL_SEEDS; do
        echo "runs/e100_s$seed '' -- finetune_epochs=100 seed=$seed"
    done
} > "$STUDY/jobs.txt"
run_queue "$STUDY/jobs.txt"

cd "$STUDY"
"$BIN/fgssl-report" runs --output-dir report \
    --metrics combined/acc combined/auroc combined/balanced_acc best_val_score
echo "written under $STUDY/report"
