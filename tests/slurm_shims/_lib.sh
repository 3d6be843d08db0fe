# Shared by the SLURM shims (sourced, not run): where job state lives and how it is written.
#
# The shims stand in for a SLURM installation so that tests can drive the real
# snakemake-executor-plugin-slurm end to end on one machine: `sbatch` runs each job locally in
# the background, the query commands answer from the job states. Everything lives under
# $SLURMSHIM_DIR:
#
#   <cmd>.log            one JSON array per call: the argv of sbatch, srun, scancel, ...
#   next_id              the last job id handed out
#   jobs/<id>/state      PENDING -> RUNNING -> COMPLETED | FAILED | TIMEOUT | CANCELLED
#   jobs/<id>/{name,comment,account,partition,workdir,output,timelimit,limit_seconds,gpus,
#              script,exit_code,pgid}
#
# Settings (environment): SLURMSHIM_DIR (required), SLURMSHIM_PARTITIONS (comma list, the
# first is the default; default "test"), SLURMSHIM_ACCOUNTS (comma list; default "test").
# Not SLURM_*: inside a job, the plugin's jobstep drops every SLURM_* variable before `srun`.

if [[ -z "${SLURMSHIM_DIR:-}" ]]; then
    echo "${0##*/} (SLURM test shim): SLURMSHIM_DIR is not set; export it as the" \
        "directory where the shims keep job states and call logs" >&2
    exit 1
fi
SHIM_JOBS="$SLURMSHIM_DIR/jobs"
mkdir -p "$SHIM_JOBS"

# JSON string of $1. Control characters other than \n, \r, \t are dropped: SLURM command
# lines carry none, and a log line must stay one valid JSON document.
json_string() {
    local s=$1
    s=${s//\\/\\\\}
    s=${s//\"/\\\"}
    s=${s//$'\n'/\\n}
    s=${s//$'\r'/\\r}
    s=${s//$'\t'/\\t}
    s=${s//[$'\x01'-$'\x08'$'\x0b'$'\x0c'$'\x0e'-$'\x1f']/}
    printf '"%s"' "$s"
}

json_array() {
    local out="[" sep="" a
    for a in "$@"; do
        out+="$sep$(json_string "$a")"
        sep=", "
    done
    printf '%s]' "$out"
}

# Append one line with the argv of this call to $SLURMSHIM_DIR/<cmd>.log.
# The lock keeps lines of concurrent calls (the plugin submits from two threads) whole.
log_call() {
    local cmd=$1 line
    shift
    line=$(json_array "$cmd" "$@")
    {
        flock 9
        printf '%s\n' "$line" >>"$SLURMSHIM_DIR/$cmd.log"
    } 9>>"$SLURMSHIM_DIR/.lock"
}

# write_field ID FIELD VALUE: atomically, so a concurrent reader never sees a partial file.
write_field() {
    local tmp="$SHIM_JOBS/$1/.$2.$$"
    printf '%s\n' "$3" >"$tmp" && mv -f "$tmp" "$SHIM_JOBS/$1/$2"
}

read_field() {
    local v=""
    [[ -f "$SHIM_JOBS/$1/$2" ]] && v=$(<"$SHIM_JOBS/$1/$2")
    printf '%s' "$v"
}

# Job ids, oldest first.
all_job_ids() {
    local d
    for d in "$SHIM_JOBS"/*/; do
        [[ -d "$d" ]] && basename "$d"
    done | sort -n
}

# in_list ITEM COMMA-LIST: true if ITEM is one of the list's entries.
in_list() {
    local IFS=, x
    for x in $2; do
        [[ "$x" == "$1" ]] && return 0
    done
    return 1
}

# SLURM's short state codes (squeue %t).
short_state() {
    case $1 in
        PENDING) echo PD ;; RUNNING) echo R ;; COMPLETED) echo CD ;; FAILED) echo F ;;
        TIMEOUT) echo TO ;; CANCELLED) echo CA ;; *) echo "$1" ;;
    esac
}
