#!/usr/bin/env bash
# run-notebook.sh NOTEBOOK [RUNNER ARGS...] - the body every sbatch/*.sbatch script sources.
#
# Runs `python -m coursekit run NOTEBOOK ARGS...` (papermill) inside the container, or on the host
# Python with CONTAINER=none, and handles preemption:
#   * the warning signal (#SBATCH --signal=B:USR1@SECONDS) reaches this batch shell, which touches the
#     stop file $COURSEKIT_STOP_FILE; the notebook (coursekit.harness.preemption) sees it, saves a
#     checkpoint and stops (a file, not a signal passed on: a signal that reached the runner before it
#     had set its handler would kill it, and srun would pass it to every process of the step);
#   * the runner then exits with status 75 ("preempted") and this script requeues the job
#     (scontrol requeue); the requeued job keeps its job id and resumes from the checkpoint.
#
# Environment:
#   CONTAINER   image (.sif or sandbox folder) to run in; "none": the host's python. Default: the script's
#               IMAGE (empty: the image of the script that names the notebook), as
#               $COURSEKIT_SHARED/images/IMAGE.sif when the lab's site file names a shared folder, else
#               defs/IMAGE.sif (what `python -m coursekit submit` resolves too)
#   COURSEKIT_MODULES  environment modules to load first (the site file; e.g. "singularity")
#   RUNTIME     apptainer or singularity (default: whichever is installed)
#   PYTHON      python to use (default: python3 in the container, else `python` on the host)
#   KIT_DIR     the kit's checkout (default: the folder sbatch was called from)
#   COMMAND     coursekit subcommand: run (default) or sweep (job arrays, see sbatch/sweep.sbatch)
set -uo pipefail

KIT_DIR=${KIT_DIR:-${SLURM_SUBMIT_DIR:-$PWD}}
COMMAND=${COMMAND:-run}
EX_PREEMPTED=75
cd "$KIT_DIR" || { echo "[job] error: kit folder $KIT_DIR not found (set KIT_DIR) / 教材のフォルダがありません" >&2; exit 2; }

# The warning signal becomes this file (one per attempt: a requeued job starts without it), in /tmp, which
# Apptainer binds into the container (unless TMPDIR names another folder). Trapped from here on, before
# anything slow starts: a USR1 that came before the trap would end this shell.
COURSEKIT_STOP_FILE="${TMPDIR:-/tmp}/coursekit-stop-${SLURM_JOB_ID:-0}-r${SLURM_RESTART_COUNT:-0}"
export COURSEKIT_STOP_FILE
rm -f "$COURSEKIT_STOP_FILE"
on_warning() {
    echo "[job] warning signal (USR1): asking the notebook to checkpoint and stop / 終了予告: チェックポイントを保存して止めます"
    touch "$COURSEKIT_STOP_FILE"
}
trap on_warning USR1

if [ -n "${COURSEKIT_MODULES:-}" ] && command -v module >/dev/null 2>&1; then
    # shellcheck disable=SC2086
    module load $COURSEKIT_MODULES || echo "[job] warning: module load $COURSEKIT_MODULES failed / モジュールを読み込めませんでした" >&2
fi
if [ -z "${CONTAINER:-}" ]; then
    if [ -z "${IMAGE:-}" ]; then  # the image of the script made for this notebook (sweeps, notebook.sbatch)
        nb=$(basename "${1:-}")
        own=$(grep -l -E -- "^[^#]*notebooks/$nb" sbatch/*.sbatch 2>/dev/null | head -1)
        IMAGE=$( [ -n "$own" ] && sed -n 's/^IMAGE=\([A-Za-z0-9._-]*\).*/\1/p' "$own" | head -1)
        IMAGE=${IMAGE:-transformers}
    fi
    CONTAINER=${COURSEKIT_SHARED:+$COURSEKIT_SHARED/images}
    CONTAINER=${CONTAINER:-defs}/$IMAGE.sif
fi
export CONTAINER

echo "[job] ${SLURM_JOB_NAME:-notebook} job ${SLURM_JOB_ID:-none}${SLURM_ARRAY_TASK_ID:+ task $SLURM_ARRAY_TASK_ID}" \
     "attempt $(( ${SLURM_RESTART_COUNT:-0} + 1 )) on $(hostname) at $(date '+%F %T')"
echo "[job] GPUs: ${CUDA_VISIBLE_DEVICES:-none}  container: ${CONTAINER:-none}  args: $*"

if [ "${CONTAINER:-none}" = none ]; then
    cmd=("${PYTHON:-python}" -m coursekit "$COMMAND" "$@")
else
    RUNTIME=${RUNTIME:-$(command -v apptainer || command -v singularity || true)}
    if [ -z "$RUNTIME" ]; then
        echo "[job] error: neither apptainer nor singularity is installed on $(hostname);" \
             "load its module (module load singularity) or use CONTAINER=none" \
             "/ apptainer も singularity もありません。モジュールを読み込んでください" >&2
        exit 2
    fi
    if [ ! -e "$CONTAINER" ]; then
        echo "[job] error: container $CONTAINER not found; build it: python -m coursekit build-container" \
             "/ イメージがありません。先に作ってください" >&2
        exit 2
    fi
    cmd=("$RUNTIME" exec --nv "$CONTAINER" "${PYTHON:-python3}" -m coursekit "$COMMAND" "$@")
fi

# Several tasks (sbatch --ntasks=N --gpus=TYPE:N, or --nodes=M --ntasks-per-node=N): data parallelism.
# srun starts the runner once per task (one process per GPU); each finds its rank in SLURM_PROCID and
# meets the others at MASTER_ADDR:MASTER_PORT (the first node; a port derived from the job id, so two
# jobs on one node never collide). Rank 0 records the run; the others run in scratch folders.
if [ "${SLURM_NTASKS:-1}" -gt 1 ]; then
    MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -1)
    MASTER_PORT=$(( 20000 + ${SLURM_JOB_ID:-9500} % 20000 ))
    export MASTER_ADDR MASTER_PORT
    # the stop file (set above) is on this node: rank 0 sees it and tells the other ranks
    echo "[job] data parallel: $SLURM_NTASKS processes on ${SLURM_JOB_NUM_NODES:-1} node(s), rendezvous $MASTER_ADDR:$MASTER_PORT"
    # --wait: once one process has ended, the others get 300 s, then they are stopped (after a crash
    # they would wait for it forever); srun's exit status is the highest of its tasks' (75 from rank 0
    # after a checkpoint: requeue below)
    cmd=(srun --wait=300 --ntasks="$SLURM_NTASKS" "${cmd[@]}")
fi

# Run in the background so that this shell can react to signals while it waits.
"${cmd[@]}" &
child=$!
trap 'echo "[job] SIGTERM: stopping the run / ジョブを止めます"; kill -TERM "$child" 2>/dev/null' TERM
while :; do
    wait "$child"; rc=$?
    kill -0 "$child" 2>/dev/null || break   # wait returned for a trapped signal: keep waiting
done
trap - USR1 TERM
rm -f "$COURSEKIT_STOP_FILE"

if [ "$rc" = "$EX_PREEMPTED" ] && [ -n "${SLURM_JOB_ID:-}" ]; then
    echo "[job] checkpoint saved: requeueing job $SLURM_JOB_ID (it resumes from the checkpoint) / 再投入します(続きから再開)"
    scontrol requeue "$SLURM_JOB_ID" && exit 0
    echo "[job] error: scontrol requeue failed; resubmit the job by hand / 再投入に失敗しました。手で投入し直してください" >&2
fi
echo "[job] finished with exit status $rc at $(date '+%F %T') / 終了(終了コード $rc)"
exit "$rc"
