#!/usr/bin/env bash
# stop-slurm.sh - stop exactly the daemons start-slurm.sh started, by pid file
# (every node's slurmd, slurmctld, munged). Idempotent: missing/stale pid files are fine.
#
#   SLURM_ROOT=/tmp/coursekit-slurm   same as for start-slurm.sh
#   CANCEL_JOBS=1           scancel queued/running jobs first, so no job
#                           processes (slurmstepd + job script) outlive slurmd
set -uo pipefail

SLURM_ROOT=${SLURM_ROOT:-/tmp/coursekit-slurm}
CANCEL_JOBS=${CANCEL_JOBS:-1}
R=$SLURM_ROOT
export SLURM_CONF=$R/etc/slurm.conf

log() { printf '[stop-slurm %s] %s\n' "$(date +%T)" "$*" >&2; }

pid_alive() {  # PIDFILE COMM
    local f=$1 comm=$2 pid
    [ -s "$f" ] || return 1
    pid=$(cat "$f" 2>/dev/null) || return 1
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    [ -r "/proc/$pid/comm" ] && [ "$(cat "/proc/$pid/comm")" = "$comm" ] || return 1
    [ "$(awk '{print $3}' "/proc/$pid/stat")" != Z ]
}
stop_one() {  # PIDFILE COMM
    local f=$1 comm=$2 pid i
    if ! pid_alive "$f" "$comm"; then
        [ -e "$f" ] && log "$comm: stale pid file removed"
        rm -f "$f"; return 0
    fi
    pid=$(cat "$f")
    log "stopping $comm (pid $pid)"
    kill "$pid" 2>/dev/null || true
    for ((i = 0; i < 150; i++)); do pid_alive "$f" "$comm" || break; sleep 0.1; done
    if pid_alive "$f" "$comm"; then
        log "$comm (pid $pid) ignored SIGTERM for 15s: SIGKILL"
        kill -9 "$pid" 2>/dev/null || true
        sleep 0.5
    fi
    rm -f "$f"
}

if [ "$CANCEL_JOBS" = 1 ] && pid_alive "$R/run/slurmctld.pid" slurmctld; then
    jobs=$(squeue -h -o %i 2>/dev/null | tr '\n' ' ')
    if [ -n "${jobs// /}" ]; then
        log "cancelling jobs: $jobs"
        scancel $jobs 2>/dev/null || true
        # wait (max 20s) until the controller has no job left (incl. COMPLETING)
        for ((i = 0; i < 100; i++)); do
            [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break
            sleep 0.2
        done
    fi
fi

for f in "$R"/run/slurmd-*.pid "$R"/run/slurmd.pid; do   # one per node (NODES=2: two)
    [ -e "$f" ] && stop_one "$f" slurmd
done
stop_one "$R/run/slurmctld.pid" slurmctld   # its child slurmscriptd exits with it
stop_one "$R/run/munged.pid"    munged
log "stopped"
