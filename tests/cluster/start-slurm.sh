#!/usr/bin/env bash
# start-slurm.sh - the kit's test cluster: idempotently install, configure and start a single-node Slurm
# cluster (munged + slurmctld + slurmd) on this machine, without systemd.
#
# Everything (config, state, spool, logs, pid files, munge key/socket) lives
# under $SLURM_ROOT (default /tmp/coursekit-slurm). Safe to run repeatedly: daemons that
# are already running (per their pid file) are left alone.
#
# Environment knobs:
#   SLURM_ROOT=/tmp/coursekit-slurm   where everything lives
#   FAKE_GPUS=2             number of fake "tesla" GPUs (gres/gpu) to declare;
#                           0 = CPU-only cluster (then --gpus/--gres=gpu fail)
#   GPU_TYPE=tesla          GPU type name for --gpus TYPE:N
#   SLURM_CLEAN=0           1 = wipe controller state (jobs, node state) first
#   SLURMCTLD_PORT=6817 SLURMD_PORT=6818
#   LINK_ETC=0              1: symlink /etc/slurm/slurm.conf -> our config, so that
#                           sbatch/squeue work without SLURM_CONF (only if that
#                           path is absent or already our symlink)
#   WAIT_TIMEOUT=60         seconds to wait for the node to become idle
#
# After it returns 0:  source $SLURM_ROOT/env.sh  (exports SLURM_CONF)
set -euo pipefail

SLURM_ROOT=${SLURM_ROOT:-/tmp/coursekit-slurm}
FAKE_GPUS=${FAKE_GPUS:-2}
GPU_TYPE=${GPU_TYPE:-tesla}
SLURM_CLEAN=${SLURM_CLEAN:-0}
SLURMCTLD_PORT=${SLURMCTLD_PORT:-6817}
SLURMD_PORT=${SLURMD_PORT:-6818}
LINK_ETC=${LINK_ETC:-0}
WAIT_TIMEOUT=${WAIT_TIMEOUT:-60}
NODE=localhost
PARTITION=debug

log() { printf '[start-slurm %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
t_start=$(date +%s.%N)

[ "$(id -u)" = 0 ] || die "must run as root"

# ---------------------------------------------------------------- install
need_pkgs=()
command -v slurmctld >/dev/null 2>&1 || need_pkgs+=(slurmctld)
command -v slurmd    >/dev/null 2>&1 || need_pkgs+=(slurmd)
command -v sbatch    >/dev/null 2>&1 || need_pkgs+=(slurm-client)
command -v munged    >/dev/null 2>&1 || need_pkgs+=(munge)
if [ ${#need_pkgs[@]} -gt 0 ]; then
    log "installing: ${need_pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi

# ---------------------------------------------------------------- layout
R=$SLURM_ROOT
mkdir -p "$R"/{etc,log,run,spool/ctld,spool/d,munge,munge-key,fakedev}
chmod 755 "$R" "$R/munge"      # munged: socket dir must be world-executable
chmod 700 "$R/munge-key"       # munged: key dir must not be writable by others
CONF=$R/etc/slurm.conf
export SLURM_CONF=$CONF
MUNGE_SOCKET=$R/munge/munge.socket
MUNGE_KEY=$R/munge-key/munge.key

# pid_alive PIDFILE COMM -> 0 if the pid in PIDFILE is alive and is COMM
pid_alive() {
    local f=$1 comm=$2 pid
    [ -s "$f" ] || return 1
    pid=$(cat "$f" 2>/dev/null) || return 1
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    [ -r "/proc/$pid/comm" ] || return 1
    [ "$(cat "/proc/$pid/comm")" = "$comm" ] || return 1
    # exclude zombies
    [ "$(awk '{print $3}' "/proc/$pid/stat")" != Z ]
}
# wait_gone PIDFILE COMM SECONDS
wait_gone() {
    local i
    for ((i = 0; i < $3 * 10; i++)); do pid_alive "$1" "$2" || return 0; sleep 0.1; done
    return 1
}
stop_one() {  # PIDFILE COMM
    if pid_alive "$1" "$2"; then
        kill "$(cat "$1")" || true
        wait_gone "$1" "$2" 15 || { kill -9 "$(cat "$1")" 2>/dev/null || true; wait_gone "$1" "$2" 5 || true; }
    fi
    rm -f "$1"
}

# ---------------------------------------------------------------- munge
if [ ! -s "$MUNGE_KEY" ]; then
    mungekey --create --keyfile="$MUNGE_KEY" >/dev/null
fi
chmod 600 "$MUNGE_KEY"
if ! pid_alive "$R/run/munged.pid" munged; then
    rm -f "$MUNGE_SOCKET" "$MUNGE_SOCKET.lock"
    log "starting munged"
    munged --key-file="$MUNGE_KEY" --socket="$MUNGE_SOCKET" \
           --pid-file="$R/run/munged.pid" --log-file="$R/log/munged.log" \
           --seed-file="$R/munge-key/munged.seed"
fi
for i in $(seq 50); do munge -n -S "$MUNGE_SOCKET" </dev/null | unmunge -S "$MUNGE_SOCKET" >/dev/null 2>&1 && break; sleep 0.1; done
munge -n -S "$MUNGE_SOCKET" </dev/null | unmunge -S "$MUNGE_SOCKET" >/dev/null || die "munge does not work (see $R/log/munged.log)"

# ---------------------------------------------------------------- config
ncpu=$(nproc)
# RealMemory: what slurmd detects, minus 5% so the node never registers "low memory"
hw_mem=$(slurmd -C 2>/dev/null | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' | head -1)
[ -n "$hw_mem" ] || hw_mem=$(( $(awk '/MemTotal/{print $2}' /proc/meminfo) / 1024 ))
mem=$(( hw_mem * 95 / 100 ))

gres_line="" ; node_gres=""
if [ "$FAKE_GPUS" -gt 0 ]; then
    # gres/gpu entries without File= are silently dropped by slurmd 22.05
    # ("Removing file-less GPU"), and File= must be a character/block device.
    # Symlinks to /dev/null satisfy both; names end in an index for CUDA_VISIBLE_DEVICES.
    for ((g = 0; g < FAKE_GPUS; g++)); do ln -sfn /dev/null "$R/fakedev/nvidia$g"; done
    gres_line="GresTypes=gpu"
    node_gres="Gres=gpu:${GPU_TYPE}:${FAKE_GPUS}"
fi

new_conf=$(cat <<EOF
# generated by tests/cluster/start-slurm.sh (coursekit test cluster) - single node, no accounting, no cgroups
ClusterName=coursekit
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$SLURMCTLD_PORT
SlurmdPort=$SLURMD_PORT
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE_SOCKET
StateSaveLocation=$R/spool/ctld
SlurmdSpoolDir=$R/spool/d
SlurmctldPidFile=$R/run/slurmctld.pid
SlurmdPidFile=$R/run/slurmd.pid
SlurmctldLogFile=$R/log/slurmctld.log
SlurmdLogFile=$R/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0
DependencyParameters=kill_invalid_depend
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$R/log/jobcomp.log
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
MinJobAge=600
$gres_line
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$ncpu RealMemory=$mem $node_gres State=UNKNOWN
PartitionName=$PARTITION Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
)
new_gres=$(
    echo "AutoDetect=off"
    if [ "$FAKE_GPUS" -gt 0 ]; then
        echo "NodeName=$NODE Name=gpu Type=$GPU_TYPE Count=$FAKE_GPUS File=$R/fakedev/nvidia[0-$((FAKE_GPUS - 1))]"
    fi
)

changed=0
if [ "$(cat "$CONF" 2>/dev/null)" != "$new_conf" ]; then printf '%s\n' "$new_conf" > "$CONF"; changed=1; fi
if [ "$(cat "$R/etc/gres.conf" 2>/dev/null)" != "$new_gres" ]; then printf '%s\n' "$new_gres" > "$R/etc/gres.conf"; changed=1; fi
printf 'export SLURM_CONF=%s\n' "$CONF" > "$R/env.sh"

if [ "$LINK_ETC" = 1 ]; then
    mkdir -p /etc/slurm
    if [ -L /etc/slurm/slurm.conf ] || [ ! -e /etc/slurm/slurm.conf ]; then
        ln -sfn "$CONF" /etc/slurm/slurm.conf
    else
        log "note: /etc/slurm/slurm.conf is a real file; left alone (use: source $R/env.sh)"
    fi
fi

# config changed while daemons run -> restart them (slurmd first)
if [ "$changed" = 1 ] && { pid_alive "$R/run/slurmctld.pid" slurmctld || pid_alive "$R/run/slurmd.pid" slurmd; }; then
    log "config changed: restarting slurm daemons"
    stop_one "$R/run/slurmd.pid" slurmd
    stop_one "$R/run/slurmctld.pid" slurmctld
fi

# ---------------------------------------------------------------- daemons
if ! pid_alive "$R/run/slurmctld.pid" slurmctld; then
    ctld_args=()
    if [ "$SLURM_CLEAN" = 1 ]; then
        log "SLURM_CLEAN=1: wiping controller state"
        rm -rf "${R:?}/spool/ctld/"* "${R:?}/spool/d/"*
        : > "$R/log/jobcomp.log"   # job ids restart at 1: drop old sacct -c records
        ctld_args+=(-c)
    fi
    log "starting slurmctld"
    slurmctld -f "$CONF" "${ctld_args[@]}" || die "slurmctld failed to start (see $R/log/slurmctld.log)"
fi
slurmd_started_at=0
if ! pid_alive "$R/run/slurmd.pid" slurmd; then
    log "starting slurmd"
    slurmd_started_at=$(date +%s)
    slurmd -f "$CONF" || die "slurmd failed to start (see $R/log/slurmd.log)"
fi

# ---------------------------------------------------------------- wait for idle
resumed=0
deadline=$(( $(date +%s) + WAIT_TIMEOUT ))
state=""
while :; do
    state=$(sinfo -h -n "$NODE" -o %t 2>/dev/null | head -1 || true)
    # a restarted slurmctld restores the old node state: also require that the
    # slurmd we just started has registered (SlurmdStartTime >= its start)
    registered=1
    if [ "$slurmd_started_at" -gt 0 ]; then
        st=$(scontrol show node "$NODE" 2>/dev/null | sed -n 's/.*SlurmdStartTime=\([^ ]*\).*/\1/p')
        st_epoch=$(date -d "$st" +%s 2>/dev/null || echo 0)
        [ "$st_epoch" -ge $((slurmd_started_at - 1)) ] || registered=0
    fi
    case "$state" in
        idle|mix|alloc|comp) [ "$registered" = 1 ] && break ;;
        drain|drng|inval|down|down\*|drain\*|fail)
            if [ "$resumed" = 0 ]; then
                log "node is '$state' (left over from an earlier run?): resuming"
                scontrol update nodename="$NODE" state=resume 2>/dev/null || true
                resumed=1
            fi ;;
    esac
    if [ "$(date +%s)" -ge "$deadline" ]; then
        scontrol show node "$NODE" >&2 2>/dev/null || true
        die "node not idle after ${WAIT_TIMEOUT}s (state='$state'); see $R/log/"
    fi
    sleep 0.2
done
t_end=$(date +%s.%N)
log "node $NODE is $state after $(awk -v a="$t_start" -v b="$t_end" 'BEGIN{printf "%.1f", b-a}')s  (SLURM_CONF=$CONF)"
