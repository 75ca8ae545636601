#!/usr/bin/env bash
# start-slurm.sh - the kit's test cluster: idempotently install, configure and start a Slurm cluster
# (munged + slurmctld + one slurmd per node) on this machine, without systemd. One node by default;
# NODES=2 starts two slurmd daemons here, each its own node (own name, port, spool, log and pid file),
# so that multi-node jobs (--nodes=2) really run across two slurmd.
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
#                           node i (0-based) listens on SLURMD_PORT + i
#   NODES=1                 number of slurmd nodes on this machine
#   NODE_NAMES="..."        their names (default: localhost for one node; 127.0.0.1 127.0.0.2 ... for
#                           several): jobs use them as host names (MASTER_ADDR, TensorFlow's worker
#                           addresses), so each must resolve to this machine (getent ahosts NAME)
#   LINK_ETC=0              1: symlink /etc/slurm/slurm.conf -> our config, so that
#                           sbatch/squeue work without SLURM_CONF (only if that
#                           path is absent or already our symlink)
#   WAIT_TIMEOUT=60         seconds to wait for the nodes to become idle
#   PARTITION=debug         the partition's name (all nodes)
#   PARTITION_DEFAULT=YES   NO: no default partition, so a job must name one (-p, SBATCH_PARTITION: a site file)
#   NODE_CPUS= NODE_MEMORY= CPUs and memory (MB) each node declares, as a real GPU node has them (slurmd
#                           reports the configured values: SlurmdParameters=config_overrides; nothing is
#                           enforced, TaskPlugin=task/none); default: this machine's
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
NODES=${NODES:-1}
PARTITION=${PARTITION:-debug}
PARTITION_DEFAULT=${PARTITION_DEFAULT:-YES}
NODE_CPUS=${NODE_CPUS:-}
NODE_MEMORY=${NODE_MEMORY:-}

log() { printf '[start-slurm %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
t_start=$(date +%s.%N)

[ "$(id -u)" = 0 ] || die "must run as root"
[[ $NODES =~ ^[1-9][0-9]*$ ]] || die "NODES must be a positive number, not '$NODES'"
[[ $PARTITION =~ ^[A-Za-z0-9_-]+$ ]] || die "PARTITION must be a plain name, not '$PARTITION'"
[[ $PARTITION_DEFAULT =~ ^(YES|NO)$ ]] || die "PARTITION_DEFAULT must be YES or NO"
if [ -z "${NODE_NAMES:-}" ]; then
    # several nodes: named by loopback addresses, which resolve on any Linux machine without /etc/hosts
    # entries ('localhost' cannot be one of several: slurmd reads it as this machine's hostname)
    NODE_NAMES=localhost
    if [ "$NODES" -gt 1 ]; then
        NODE_NAMES=$(for ((i = 1; i <= NODES; i++)); do printf '127.0.0.%d ' "$i"; done)
    fi
fi
read -r -a NODE_LIST <<< "$NODE_NAMES"
[ "${#NODE_LIST[@]}" = "$NODES" ] || die "NODE_NAMES has ${#NODE_LIST[@]} names for NODES=$NODES"
for n in "${NODE_LIST[@]}"; do
    # a job's tasks meet at the first node's name (MASTER_ADDR): it must resolve here
    getent ahosts "$n" >/dev/null || die "node name '$n' does not resolve (getent ahosts $n); choose NODE_NAMES that do"
done

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
mkdir -p "$R"/{etc,log,run,spool/ctld,munge,munge-key,fakedev}
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
overrides=""
if [ -n "$NODE_CPUS" ] || [ -n "$NODE_MEMORY" ]; then
    ncpu=${NODE_CPUS:-$ncpu}
    mem=${NODE_MEMORY:-$mem}
    overrides="SlurmdParameters=config_overrides"
fi

gres_line="" ; node_gres=""
if [ "$FAKE_GPUS" -gt 0 ]; then
    # gres/gpu entries without File= are silently dropped by slurmd 22.05
    # ("Removing file-less GPU"), and File= must be a character/block device.
    # Symlinks to /dev/null satisfy both; names end in an index for CUDA_VISIBLE_DEVICES.
    for ((g = 0; g < FAKE_GPUS; g++)); do ln -sfn /dev/null "$R/fakedev/nvidia$g"; done
    gres_line="GresTypes=gpu"
    node_gres="Gres=gpu:${GPU_TYPE}:${FAKE_GPUS}"
fi

node_lines=""; gres_nodes=""
for ((i = 0; i < NODES; i++)); do
    n=${NODE_LIST[$i]}
    # every node is this machine: the same address, its own slurmd port (slurmd -N NAME picks its line).
    # Debian's slurmd is built without --enable-multiple-slurmd, so it refuses two nodes with the same
    # NodeHostname ("Duplicated NodeHostName"; 'localhost' counts as this machine's hostname): each
    # gets a distinct one, used for nothing else since every slurmd is started with -N
    node_lines+="NodeName=$n NodeHostname=coursekit-node$i NodeAddr=127.0.0.1 Port=$((SLURMD_PORT + i)) CPUs=$ncpu RealMemory=$mem $node_gres State=UNKNOWN"$'\n'
    if [ "$FAKE_GPUS" -gt 0 ]; then
        gres_nodes+="NodeName=$n Name=gpu Type=$GPU_TYPE Count=$FAKE_GPUS File=$R/fakedev/nvidia[0-$((FAKE_GPUS - 1))]"$'\n'
    fi
done

new_conf=$(cat <<EOF
# generated by tests/cluster/start-slurm.sh (coursekit test cluster) - $NODES node(s) on this machine, no accounting, no cgroups
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
SlurmdSpoolDir=$R/spool/d-%n
SlurmctldPidFile=$R/run/slurmctld.pid
SlurmdPidFile=$R/run/slurmd-%n.pid
SlurmctldLogFile=$R/log/slurmctld.log
SlurmdLogFile=$R/log/slurmd-%n.log
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
MinJobAge=3600
$overrides
$gres_line
${node_lines%$'\n'}
PartitionName=$PARTITION Nodes=ALL Default=$PARTITION_DEFAULT MaxTime=INFINITE State=UP
EOF
)
new_gres=$(
    echo "AutoDetect=off"
    printf '%s' "$gres_nodes"
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

# every slurmd pid file there is (nodes of an earlier config too)
slurmd_pidfiles() { local f; for f in "$R"/run/slurmd-*.pid "$R"/run/slurmd.pid; do [ -e "$f" ] && echo "$f"; done; true; }
any_slurmd_alive() { local f; for f in $(slurmd_pidfiles); do pid_alive "$f" slurmd && return 0; done; return 1; }

# config changed while daemons run -> restart them (slurmd first)
if [ "$changed" = 1 ] && { pid_alive "$R/run/slurmctld.pid" slurmctld || any_slurmd_alive; }; then
    log "config changed: restarting slurm daemons"
    for f in $(slurmd_pidfiles); do stop_one "$f" slurmd; done
    stop_one "$R/run/slurmctld.pid" slurmctld
fi

# ---------------------------------------------------------------- daemons
if ! pid_alive "$R/run/slurmctld.pid" slurmctld; then
    ctld_args=()
    if [ "$SLURM_CLEAN" = 1 ]; then
        log "SLURM_CLEAN=1: wiping controller state"
        rm -rf "${R:?}/spool/ctld/"* "${R:?}"/spool/d-*
        : > "$R/log/jobcomp.log"   # job ids restart at 1: drop old sacct -c records
        ctld_args+=(-c)
    fi
    log "starting slurmctld"
    slurmctld -f "$CONF" "${ctld_args[@]}" || die "slurmctld failed to start (see $R/log/slurmctld.log)"
fi
declare -A slurmd_started_at=()
for n in "${NODE_LIST[@]}"; do
    slurmd_started_at[$n]=0
    if ! pid_alive "$R/run/slurmd-$n.pid" slurmd; then
        log "starting slurmd for node $n"
        mkdir -p "$R/spool/d-$n"
        slurmd_started_at[$n]=$(date +%s)
        # -N: which node of the config this daemon is (its port, spool, log and pid file follow)
        slurmd -f "$CONF" -N "$n" || die "slurmd for node $n failed to start (see $R/log/slurmd-$n.log)"
    fi
done

# ---------------------------------------------------------------- wait for idle
deadline=$(( $(date +%s) + WAIT_TIMEOUT ))
for n in "${NODE_LIST[@]}"; do
    resumed=0
    state=""
    while :; do
        state=$(sinfo -h -n "$n" -o %t 2>/dev/null | head -1 || true)
        # a restarted slurmctld restores the old node state: also require that the
        # slurmd we just started has registered (SlurmdStartTime >= its start)
        registered=1
        if [ "${slurmd_started_at[$n]}" -gt 0 ]; then
            st=$(scontrol show node "$n" 2>/dev/null | sed -n 's/.*SlurmdStartTime=\([^ ]*\).*/\1/p')
            st_epoch=$(date -d "$st" +%s 2>/dev/null || echo 0)
            [ "$st_epoch" -ge $((slurmd_started_at[$n] - 1)) ] || registered=0
        fi
        case "$state" in
            idle|mix|alloc|comp) [ "$registered" = 1 ] && break ;;
            drain|drng|inval|down|down\*|drain\*|fail)
                if [ "$resumed" = 0 ]; then
                    log "node $n is '$state' (left over from an earlier run?): resuming"
                    scontrol update nodename="$n" state=resume 2>/dev/null || true
                    resumed=1
                fi ;;
        esac
        if [ "$(date +%s)" -ge "$deadline" ]; then
            scontrol show node "$n" >&2 2>/dev/null || true
            die "node $n not idle after ${WAIT_TIMEOUT}s (state='$state'); see $R/log/"
        fi
        sleep 0.2
    done
done
t_end=$(date +%s.%N)
log "node(s) ${NODE_LIST[*]} up ($state) after $(awk -v a="$t_start" -v b="$t_end" 'BEGIN{printf "%.1f", b-a}')s  (SLURM_CONF=$CONF)"
