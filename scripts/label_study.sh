#!/usr/bin/env bash
# Label efficiency on the demo data (docs/studies/ssl.md, "Longer pretraining, an unlabelled pool, label efficiency").
#
# Three methods finetuned for FINETUNE_EPOCHS on a share of the training labels
# (data.label_fraction in FRACTIONS), seeds SEEDS:
#   pmg:        no self-supervised phase (+method=pmg)
#   fgssl:      finetuned from a run pretrained for PRETRAIN_EPOCHS on the 360 training
#               images, all of them, labelled or not (pretrained_run=p/labelled_s<seed>)
#   fgssl-pool: finetuned from a run pretrained for POOL_EPOCHS on those and POOL_IMAGES
#               more unlabelled demo images (a pool 3 times the training split; 5 epochs on
#               4 times the images take the same optimizer steps as 20 on the training images)
# One pretraining per seed and pretrain setting serves every label fraction (pretrained_run).
# Finetune batches are 16 images (0.05 of the labels is 18 images). Everything goes under
# STUDY; a rerun skips finished runs. Then `fgssl-report STUDY/finetune --plot-against
# data.label_fraction` writes the table and the plot, and the pretrain runs' monitors
# (pretrain/metrics.csv, k-NN after every epoch) give the curves of the pretraining.
# About 2 h 20 min on an idle 2-core CPU (JOBS=2 runs at a time, one thread each).
set -euo pipefail
source "$(dirname "$0")/study_jobs.sh"
STUDY=$(realpath -m "${STUDY:-multirun/label-study}")
SEEDS=${SEEDS:-"0 1 2"}
FRACTIONS=${FRACTIONS:-"0.05 0.1 0.25 1.0"}
PRETRAIN_EPOCHS=${PRETRAIN_EPOCHS:-20}
POOL_EPOCHS=${POOL_EPOCHS:-5}
POOL_IMAGES=${POOL_IMAGES:-1080}
FINETUNE_EPOCHS=${FINETUNE_EPOCHS:-18}

mkdir -p "$STUDY/p" "$STUDY/finetune" "$STUDY/logs"
"$BIN/python" -c "from fgssl.data.demo import make_demo_aptos as m; \
m('$STUDY/pool', num_train=$POOL_IMAGES, num_test=0, seed=1)"  # seed 0 is the demo's

{
    for seed in $SEEDS; do
        echo "p/labelled_s$seed '' -- name=a1 pretrain_epochs=$PRETRAIN_EPOCHS finetune_epochs=1 seed=$seed"
        echo "p/pool_s$seed '' -- name=pool pretrain_epochs=$POOL_EPOCHS finetune_epochs=1" \
            "data.unlabelled=[$STUDY/pool/train_images] seed=$seed"
    done
    common="data.batch_size=16 finetune_epochs=$FINETUNE_EPOCHS pretrain_epochs=0"
    for method in pmg labelled pool; do
        for fraction in $FRACTIONS; do
            for seed in $SEEDS; do
                dir=finetune/${method}_f${fraction}_s$seed
                if [[ $method == pmg ]]; then
                    echo "$dir '' -- +method=pmg $common data.label_fraction=$fraction seed=$seed"
                else
                    echo "$dir p/${method}_s$seed -- +method=fgssl $common" \
                        "pretrained_run=p/${method}_s\\\${seed} data.label_fraction=$fraction seed=$seed"
                fi
            done
        done
    done
} > "$STUDY/jobs.txt"
run_queue "$STUDY/jobs.txt"

cd "$STUDY"
"$BIN/fgssl-report" finetune --output-dir report --plot-against data.label_fraction \
    --metrics combined/kappa ssl_eval/linear_probe/kappa ssl_eval/knn/kappa
echo "written under $STUDY/report"
