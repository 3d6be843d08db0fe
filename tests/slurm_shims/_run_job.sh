# Runs one job submitted through the sbatch shim (started by sbatch, detached; not on PATH as a
# command): RUNNING, the script with SLURM's job variables and the time limit, then the final
# state from the exit code. Usage: bash _run_job.sh JOB_ID [SCRIPT ARGS...]
set -uo pipefail
SHIM_BIN=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$SHIM_BIN/_lib.sh"

id=$1
shift
jobdir="$SHIM_JOBS/$id"
workdir=$(read_field "$id" workdir)
output=$(read_field "$id" output)
limit=$(read_field "$id" limit_seconds)
gpus=$(read_field "$id" gpus)

export SLURM_JOB_ID=$id SLURM_JOBID=$id SLURM_JOB_NAME
SLURM_JOB_NAME=$(read_field "$id" name)
export SLURM_JOB_PARTITION SLURM_JOB_ACCOUNT SLURM_SUBMIT_DIR=$PWD SLURM_JOB_NODELIST
SLURM_JOB_PARTITION=$(read_field "$id" partition)
SLURM_JOB_ACCOUNT=$(read_field "$id" account)
SLURM_JOB_NODELIST=$(hostname)
[[ -n "$gpus" ]] && export SLURM_GPUS=$gpus

cd "$workdir" || {
    write_field "$id" exit_code "1:0"
    write_field "$id" state FAILED
    exit 1
}
# Under the lock, scancel sees either PENDING (the job never starts) or RUNNING with the pgid
# to signal. timeout puts the job in a process group of its own (its pid); a limit of 0 disables
# it, exit 124 means the limit was hit. 9>&-: the job must not inherit (and hold) the lock.
{
    flock 9
    [[ $(read_field "$id" state) == PENDING ]] || exit 0
    write_field "$id" state RUNNING
    timeout --kill-after=10 "$limit" "$jobdir/script" "$@" >>"$output" 2>&1 9>&- &
    pgid=$!
    write_field "$id" pgid "$pgid"
} 9>>"$SLURMSHIM_DIR/.lock"
wait "$pgid"
rc=$?
write_field "$id" exit_code "$rc:0"
case $(read_field "$id" state) in
    CANCELLED) ;;
    *)
        if ((rc == 0)); then
            write_field "$id" state COMPLETED
        elif ((rc == 124 && limit > 0)); then
            echo "slurmstepd: error: *** JOB $id CANCELLED AT $(date +%FT%T) DUE TO TIME LIMIT ***" >>"$output"
            write_field "$id" state TIMEOUT
        else
            write_field "$id" state FAILED
        fi
        ;;
esac
