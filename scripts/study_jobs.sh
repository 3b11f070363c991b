# shellcheck shell=bash
# The job queue of the study scripts (sourced): each line of a jobs file is
#   DIR WAIT_FOR -- OVERRIDES...
# one `fgssl-train +experiment=demo optim.lr=0.02 figures.enabled=false OVERRIDES
# hydra.run.dir=DIR` run (lr 0.02: the demo's learning rate when the published studies ran)
# in $STUDY, one thread, log in $STUDY/logs; skipped when DIR/results.json exists (a rerun
# continues a study), started once WAIT_FOR/results.json exists ('' waits for nothing);
# DIR.failed marks a failed run (and the runs that waited for it). JOBS runs at a time
# (default 2), BIN holds fgssl-train (default: the one on PATH).
JOBS=${JOBS:-2}
BIN=${BIN:-$(dirname "$(command -v fgssl-train)")}

job() {
    local dir=$1 wait_for=$2
    shift 3
    [[ -f $STUDY/$dir/results.json ]] && return 0
    while [[ -n $wait_for && ! -f $STUDY/$wait_for/results.json ]]; do
        [[ -f $STUDY/$wait_for.failed ]] && { touch "$STUDY/$dir.failed"; return 1; }
        sleep 20
    done
    cd "$STUDY"
    if ! OMP_NUM_THREADS=1 "$BIN/fgssl-train" +experiment=demo optim.lr=0.02 \
        figures.enabled=false "$@" hydra.run.dir="$dir" > "logs/${dir//\//_}.log" 2>&1; then
        touch "$STUDY/$dir.failed"
        return 1
    fi
}

run_queue() {  # run_queue JOBS_FILE: its jobs, $JOBS at a time
    export -f job
    export STUDY BIN
    xargs -P "$JOBS" -L 1 bash -c 'job "$@"' _ < "$1" || true
    (cd "$STUDY" && ls -d ./*.failed ./*/*.failed 2> /dev/null) && echo "failed runs: see $STUDY/logs"
    return 0
}
