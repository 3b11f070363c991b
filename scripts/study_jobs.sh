# shellcheck shell=bash
# The job queue of the study scripts (sourced): each line of a jobs file is
#   DIR WAIT_FOR -- OVERRIDES...
# one `fgssl-train $TRAIN_ARGS OVERRIDES hydra.run.dir=DIR` run in $STUDY, $THREADS intra-op
# threads (default 1), log in $STUDY/logs. TRAIN_ARGS defaults to the demo studies'
# `+experiment=demo optim.lr=0.02 figures.enabled=false` (lr 0.02: the demo's learning rate
# when the published studies ran). A run is skipped when DIR/results.json exists (a rerun
# continues a study); a run that was stopped part-way (DIR/config.yaml without results.json)
# continues with `fgssl-train resume=DIR` (or starts again if no epoch had ended); it starts once WAIT_FOR/results.json exists (''
# waits for nothing); DIR.failed marks a failed run (and the runs that waited for it). JOBS
# runs at a time (default 2), BIN holds fgssl-train (default: the one on PATH).
JOBS=${JOBS:-2}
THREADS=${THREADS:-1}
BIN=${BIN:-$(dirname "$(command -v fgssl-train)")}
TRAIN_ARGS=${TRAIN_ARGS:-"+experiment=demo optim.lr=0.02 figures.enabled=false"}

job() {
    local dir=$1 wait_for=$2
    shift 3
    [[ -f $STUDY/$dir/results.json ]] && return 0
    while [[ -n $wait_for && ! -f $STUDY/$wait_for/results.json ]]; do
        [[ -f $STUDY/$wait_for.failed ]] && { touch "$STUDY/$dir.failed"; return 1; }
        sleep 20
    done
    cd "$STUDY"
    local log="logs/${dir//\//_}.log"
    if [[ -f $dir/config.yaml ]] && ! compgen -G "$dir/*/checkpoints/last.ckpt" > /dev/null; then
        rm -r "$dir"  # stopped before its first epoch ended: nothing to resume
    fi
    if [[ -f $dir/config.yaml ]]; then
        set -- resume="$dir"
        echo "--- resumed $(date -Is)" >> "$log"
    else
        # shellcheck disable=SC2086  # TRAIN_ARGS is a list of overrides
        set -- $TRAIN_ARGS "$@" hydra.run.dir="$dir"
    fi
    if ! OMP_NUM_THREADS=$THREADS "$BIN/fgssl-train" "$@" >> "$log" 2>&1; then
        touch "$STUDY/$dir.failed"
        return 1
    fi
}

run_queue() {  # run_queue JOBS_FILE: its jobs, $JOBS at a time
    export -f job
    export STUDY BIN THREADS TRAIN_ARGS
    xargs -P "$JOBS" -L 1 bash -c 'job "$@"' _ < "$1" || true
    (cd "$STUDY" && ls -d ./*.failed ./*/*.failed 2> /dev/null) && echo "failed runs: see $STUDY/logs"
    return 0
}
