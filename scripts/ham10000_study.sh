#!/usr/bin/env bash
# The real-data study on HAM10000 (docs/studies/real-images.md): ResNet-18 from scratch at
# IMAGE_SIZE px, split by lesion 70/10/20 (data=isic2018's HAM10000 layout,
# data.val_fraction=0.1 data.test_fraction=0.2), seeds SEEDS; balanced accuracy (the ISIC
# 2018 metric) picks the checkpoint; every run's results.json holds bootstrap intervals.
#
# STAGE=pilot (seed 0, PILOT_EPOCHS): which settings let a from-scratch run learn, and which
#   let the pretrain phase help:
#     baseline at isic2018's ImageNet settings (lr 0.002, backbone x0.1), at lr 0.01 and
#     0.05 (backbone x1), and at 0.01 with balanced class weights; PMG at 0.01 balanced;
#     FG-SSL pretrained PILOT_PRETRAIN epochs with barlow_scale 1 and 1/feat_dim (SSL
#     evaluation of the pretrained backbone; fgssl-ssl-eval --random-init gives the same
#     protocols on random weights).
# STAGE=main: baseline, PMG and FG-SSL (one pretraining per seed on all training images,
#   shared by its finetunes through pretrained_run) finetuned on FRACTIONS of the training
#   labels; epochs per fraction in EPOCHS (more epochs for fewer labels: every finetune takes
#   at least 300 optimizer steps). METHODS chooses among baseline, pmg, fgssl (the reports
#   are written when fgssl is among them and REPORTS is not 0). Seeds in order, so that a
#   stopped study has whole seeds; a rerun continues it.
# STAGE=short: the three methods with all labels at the pilot's length (PILOT_EPOCHS), on
#   SEEDS, under short/; FG-SSL finetunes the main stage's pretraining p/s<seed> (it waits for
#   it). Where the full-length PMG and FG-SSL runs (15 epochs, ~6.5 min an epoch here) do not
#   fit the time, this is the all-labels comparison at equal length.
# Common settings: fgssl_small (feat_dim 128, hidden 256), grids 8-4-2, the fused step mode,
# batch 64, SGD lr LR with backbone x1 and one warm-up epoch, bf16-mixed, one thread a run.
set -euo pipefail
source "$(dirname "$0")/study_jobs.sh"
STUDY=$(realpath -m "${STUDY:-multirun/ham10000-study}")
HAM=$(realpath "${HAM:-../shared/realdata/ham10000-200x150}")
STAGE=${STAGE:-main}
SEEDS=${SEEDS:-"0 1 2"}
IMAGE_SIZE=${IMAGE_SIZE:-64}
LR=${LR:-0.01}
WEIGHTS=${WEIGHTS:-balanced}
BARLOW_SCALE=${BARLOW_SCALE:-0.0078125}
PILOT_EPOCHS=${PILOT_EPOCHS:-6}
PILOT_PRETRAIN=${PILOT_PRETRAIN:-3}
PRETRAIN_EPOCHS=${PRETRAIN_EPOCHS:-6}
FRACTIONS=${FRACTIONS-"1.0 0.25 0.1 0.05"}  # FRACTIONS="" (set, empty): the pretrainings alone
METHODS=${METHODS:-"baseline pmg fgssl"}
declare -A EPOCHS=([1.0]=15 [0.25]=20 [0.1]=30 [0.05]=60)
TRAIN_ARGS="+experiment=isic2018 data.root=$HAM data.val_fraction=0.1 data.test_fraction=0.2
    data.image_size=$IMAGE_SIZE model.net.backbone=resnet18 model.net.pretrained=false
    schedule=grids_8_4_2 step_mode=fused data.batch_size=64 data.num_workers=1
    trainer.precision=bf16-mixed trainer.enable_progress_bar=false figures.enabled=false
    optim.backbone_lr_scale=1.0 optim.warmup_epochs=1"
SMALL="model=fgssl_small model.net.backbone=resnet18 model.net.pretrained=false"

mkdir -p "$STUDY/logs"
if [[ $STAGE == pilot ]]; then
    e="finetune_epochs=$PILOT_EPOCHS seed=0"
    cat > "$STUDY/jobs.txt" <<JOBS
pilot/baseline_imagenet_settings '' -- +method=baseline $e optim.lr=0.002 optim.backbone_lr_scale=0.1
pilot/baseline_lr0.01 '' -- +method=baseline $e optim.lr=0.01
pilot/baseline_lr0.05 '' -- +method=baseline $e optim.lr=0.05
pilot/baseline_lr0.01_balanced '' -- +method=baseline $e optim.lr=0.01 loss.class_weights=balanced
pilot/pmg_lr0.01_balanced '' -- +method=pmg $SMALL $e optim.lr=0.01 loss.class_weights=balanced
pilot/fgssl_scale1 '' -- +method=fgssl $SMALL pretrain_epochs=$PILOT_PRETRAIN finetune_epochs=1 seed=0 optim.lr=0.01 loss.barlow_scale=1.0
pilot/fgssl_scale_1_over_D '' -- +method=fgssl $SMALL pretrain_epochs=$PILOT_PRETRAIN finetune_epochs=1 seed=0 optim.lr=0.01 loss.barlow_scale=0.0078125
JOBS
    run_queue "$STUDY/jobs.txt"
    cd "$STUDY"
    "$BIN/fgssl-report" pilot --output-dir pilot-report --metrics combined/balanced_acc \
        combined/auroc combined/acc ssl_eval/linear_probe/balanced_acc ssl_eval/knn/balanced_acc
    OMP_NUM_THREADS=$THREADS "$BIN/fgssl-ssl-eval" pilot/fgssl_scale1 --random-init --seed 0 \
        --output pilot-report/random_init.json > /dev/null
    echo "written under $STUDY/pilot-report"
    exit 0
fi

common="optim.lr=$LR loss.class_weights=$WEIGHTS"
if [[ $STAGE == short ]]; then
    for seed in $SEEDS; do
        e="finetune_epochs=$PILOT_EPOCHS data.label_fraction=1.0 seed=$seed"
        for method in $METHODS; do
            case $method in
                baseline) echo "short/baseline_s$seed '' -- +method=baseline $common $e" ;;
                pmg) echo "short/pmg_s$seed '' -- +method=pmg $SMALL $common $e" ;;
                fgssl) echo "short/fgssl_s$seed p/s$seed -- +method=fgssl $SMALL $common" \
                    "pretrain_epochs=0 pretrained_run=$STUDY/p/s$seed $e" ;;
            esac
        done
    done > "$STUDY/jobs-short-${METHODS// /_}.txt"
    run_queue "$STUDY/jobs-short-${METHODS// /_}.txt"
    exit 0
fi
{
    for seed in $SEEDS; do
        [[ " $METHODS " == *" fgssl "* ]] &&
            echo "p/s$seed '' -- +method=fgssl $SMALL $common loss.barlow_scale=$BARLOW_SCALE" \
                "pretrain_epochs=$PRETRAIN_EPOCHS finetune_epochs=1 seed=$seed"
        for fraction in $FRACTIONS; do
            f="finetune_epochs=${EPOCHS[$fraction]} data.label_fraction=$fraction seed=$seed"
            for method in $METHODS; do
                case $method in
                    baseline) echo "finetune/baseline_f${fraction}_s$seed '' -- +method=baseline $common $f" ;;
                    pmg) echo "finetune/pmg_f${fraction}_s$seed '' -- +method=pmg $SMALL $common $f" ;;
                    fgssl) echo "finetune/fgssl_f${fraction}_s$seed p/s$seed -- +method=fgssl" \
                        "$SMALL $common pretrain_epochs=0 pretrained_run=$STUDY/p/s$seed $f" ;;
                esac
            done
        done
    done
} > "$STUDY/jobs-$STAGE-${METHODS// /_}.txt"
run_queue "$STUDY/jobs-$STAGE-${METHODS// /_}.txt"
# the reports once FG-SSL has run too (REPORTS=0: two queues side by side report once, at the end)
[[ " $METHODS " == *" fgssl "* && ${REPORTS:-1} != 0 ]] || exit 0

cd "$STUDY"
"$BIN/fgssl-report" finetune --output-dir report --plot-against data.label_fraction \
    --metrics combined/balanced_acc combined/auroc combined/acc concat/balanced_acc
"$BIN/fgssl-report" p --output-dir report-ssl \
    --metrics ssl_eval/linear_probe/balanced_acc ssl_eval/knn/balanced_acc
echo "seed,protocol,balanced_acc" > report-ssl/random_init.csv
for seed in $SEEDS; do
    OMP_NUM_THREADS=$THREADS "$BIN/fgssl-ssl-eval" "p/s$seed" --random-init --seed "$seed" \
        --output "report-ssl/random_init_s$seed.json" > /dev/null
    "$BIN/python" - "report-ssl/random_init_s$seed.json" "$seed" >> report-ssl/random_init.csv <<'PY'
import json, sys
results = json.load(open(sys.argv[1]))
for protocol in ("linear_probe", "knn"):
    value = results[protocol]["balanced_acc"]
    print(f"{sys.argv[2]},{protocol},{'' if value is None else value}")
PY
done
echo "written under $STUDY/report and $STUDY/report-ssl"
