#!/usr/bin/env bash
# CI stage: the test config on a real one-node SLURM cluster, through workflow/profiles/slurm.
#
# Installs Debian's slurm-wlm and munge (needs root and apt), starts munged, slurmctld and slurmd
# on this machine, runs the test config in a copy of the workflow, and checks that
#   - every job went through SLURM (Snakemake's submissions = SLURM's log files = jobs slurmctld
#     knows, all COMPLETED; every cell's output is named in a SLURM job log),
#   - the merged tables equal the local run's in results/ on every computed (non-timing) column,
#   - a cell that always fails (an injected faulty variant) is retried as the profile says, then
#     reported, and Snakemake exits non-zero instead of hanging.
# Prints the time of each stage and the number of SLURM jobs with and without grouping.
# Stops only the daemons it started, by the pids in their pid files, whatever happens.
#
# Environment: SLURM_CI_CONFIG (default config/test.yaml), SLURM_CI_LOCAL_RESULTS (default
# results/, the local run to compare with), SLURM_CI_RUN_TIMEOUT_S (default 600),
# SLURM_CI_KEEP=1 keeps the scratch folder.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
CI_DIR="$ROOT/.ci/slurm"
CONFIG="${SLURM_CI_CONFIG:-config/test.yaml}"
LOCAL_RESULTS="$(cd "$ROOT" && realpath "${SLURM_CI_LOCAL_RESULTS:-results}")"
RUN_TIMEOUT_S="${SLURM_CI_RUN_TIMEOUT_S:-1200}"
FAULT_TIMEOUT_S=300
# slurmctld checks that it runs on SlurmctldHost: the node is this machine, by its short name.
NODE="$(hostname -s)"
PYTHON="$(command -v python || command -v python3)"

WORK="$(mktemp -d /tmp/slurm-ci.XXXXXX)"
STATE="$WORK/state"
# Jobs read the default /etc/slurm/slurm.conf (slurmd does not hand a SLURM_CONF path on to them);
# one that was there before is kept aside and put back at the end.
SLURM_CONF_PATH=/etc/slurm/slurm.conf
unset SLURM_CONF
export MPLBACKEND=Agg
STARTED_PIDFILES=()
SUMMARY=()

say() { echo "== slurm: $*"; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
stage() { STAGE_NAME="$1"; STAGE_T0="$(now)"; say "$1"; }
stage_done() { SUMMARY+=("$(printf '%-52s %7s s' "$STAGE_NAME" "$(elapsed "$STAGE_T0")")"); }
fail() { echo "FAIL: $*" >&2; exit 1; }

stop_pidfile() {
    local pidfile="$1" pid
    [[ -s "$pidfile" ]] || return 0
    pid="$(cat "$pidfile")"
    kill "$pid" 2>/dev/null || return 0
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$?
    set +e
    if [[ -s "$STATE/slurmctld.pid" ]] && kill -0 "$(cat "$STATE/slurmctld.pid")" 2>/dev/null; then
        # Jobs left by an interrupted run on this run's own controller: cancel them before their node goes away.
        mapfile -t left < <(squeue -h -o %i 2>/dev/null)
        ((${#left[@]})) && scancel "${left[@]}" 2>/dev/null && sleep 1
    fi
    for ((i = ${#STARTED_PIDFILES[@]} - 1; i >= 0; i--)); do stop_pidfile "${STARTED_PIDFILES[i]}"; done
    if ((rc != 0)); then
        echo "-- slurmctld.log (tail)" >&2; tail -n 20 "$STATE/slurmctld.log" >&2 2>/dev/null
        echo "-- slurmd.log (tail)" >&2; tail -n 20 "$STATE/slurmd.log" >&2 2>/dev/null
    fi
    if [[ -e "$WORK/slurm.conf.before" ]]; then
        mv -f "$WORK/slurm.conf.before" "$SLURM_CONF_PATH"
    elif [[ -n "${CONF_WRITTEN:-}" ]]; then
        rm -f "$SLURM_CONF_PATH"
    fi
    if [[ "${SLURM_CI_KEEP:-}" == 1 || $rc -ne 0 ]]; then
        echo "scratch folder kept: $WORK" >&2
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

copy_workflow() {
    mkdir -p "$1"
    cp -r "$ROOT/Snakefile" "$ROOT/workflow" "$ROOT/config" "$ROOT/scripts" "$1/"
}

# Jobs a dry-run would submit: group jobs plus top-level jobs that run something ("all" runs nothing).
# Jobs a SLURM run submits: group jobs, plus rules that are not local (a dry-run prints local rules,
# those of workflow/rules/aggregate.smk's `localrules` and `all`, as "rule" too).
count_submissions() {
    awk '/Group job/ { n++ } /^rule / && $2 !~ /^(all|merge|figure|table|numbers):$/ { n++ } END { print n + 0 }'
}

CI_T0="$(now)"

# One cluster per machine: a second run at the same time would share its ports and slurm.conf.
exec 9>/run/lock/pymdpbench-slurm-ci.lock
flock -n 9 || fail "another SLURM CI run holds /run/lock/pymdpbench-slurm-ci.lock"

stage "install slurm-wlm and munge"
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null 2>&1 ||
        { apt-get update -qq && apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null; }
fi
say "slurm-wlm $(dpkg-query -W -f '${Version}' slurm-wlm), munge $(dpkg-query -W -f '${Version}' munge)"
stage_done

stage "start munged, slurmctld, slurmd"
if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    say "munged already running: using it"
else
    if [[ ! -s /etc/munge/munge.key ]]; then
        mungekey --create --keyfile=/etc/munge/munge.key
        chown munge:munge /etc/munge/munge.key
        chmod 400 /etc/munge/munge.key
    fi
    install -d -o munge -g munge -m 755 /run/munge
    STARTED_PIDFILES+=(/run/munge/munged.pid)
    runuser -u munge -- munged
    munge -n | unmunge >/dev/null || fail "munge does not work"
fi
if timeout 5 scontrol ping 2>/dev/null | grep -q UP; then
    fail "a SLURM controller already answers here; this stage starts its own"
fi
mkdir -p "$STATE/slurmctld" "$STATE/slurmd"
# This machine's node line, with RealMemory lowered to 90 % so that slurmd's own check passes.
nodeline="$(slurmd -C | head -n 1 | sed -E "s/^NodeName=[^ ]+/NodeName=$NODE/")"
memory="$(sed -E 's/.*RealMemory=([0-9]+).*/\1/' <<<"$nodeline")"
nodeline="$(sed -E "s/RealMemory=[0-9]+/RealMemory=$((memory * 9 / 10))/" <<<"$nodeline")"
sed -e "s|@NODE@|$NODE|g" -e "s|@STATE@|$STATE|g" -e "s|@NODELINE@|$nodeline|" \
    "$CI_DIR/slurm.conf.in" >"$WORK/slurm.conf"
mkdir -p "$(dirname "$SLURM_CONF_PATH")"
[[ -e "$SLURM_CONF_PATH" ]] && mv "$SLURM_CONF_PATH" "$WORK/slurm.conf.before"
CONF_WRITTEN=1
cp "$WORK/slurm.conf" "$SLURM_CONF_PATH"
STARTED_PIDFILES+=("$STATE/slurmctld.pid")
slurmctld
STARTED_PIDFILES+=("$STATE/slurmd.pid")
slurmd -N "$NODE"
node_state() { timeout 5 sinfo -h -o %T 2>/dev/null || true; }
deadline=$((SECONDS + 30))
until [[ "$(node_state)" == idle ]]; do
    ((SECONDS < deadline)) || fail "node $NODE not idle after 30 s: $(node_state)"
    sleep 0.3
done
say "node $NODE idle: $nodeline"
stage_done

stage "dry-runs: SLURM jobs with and without grouping"
RUN="$WORK/run"
copy_workflow "$RUN"
cd "$RUN"
# The same profile without its groups: what the workflow would submit one job per rule instance.
mkdir -p "$WORK/profile-ungrouped"
"$PYTHON" - "$RUN/workflow/profiles/slurm/config.yaml" "$WORK/profile-ungrouped/config.yaml" <<'EOF'
import sys, yaml
profile = yaml.safe_load(open(sys.argv[1]))
for key in ("groups", "group-components"):
    profile.pop(key, None)
yaml.safe_dump(profile, open(sys.argv[2], "w"))
EOF
jobs_ungrouped="$(snakemake -n --workflow-profile "$WORK/profile-ungrouped" --configfile "$CONFIG" 2>&1 | count_submissions)"
jobs_grouped_planned="$(snakemake -n --workflow-profile workflow/profiles/slurm --configfile "$CONFIG" 2>&1 | count_submissions)"
say "SLURM jobs for $CONFIG: $jobs_ungrouped without grouping, $jobs_grouped_planned with grouping (dry-run)"
stage_done

stage "pipeline on SLURM ($CONFIG)"
t0="$(now)"
rc=0
timeout -k 10 "$RUN_TIMEOUT_S" snakemake --workflow-profile workflow/profiles/slurm --configfile "$CONFIG" \
    >"$WORK/run.log" 2>&1 || rc=$?
run_s="$(elapsed "$t0")"
if ((rc != 0)); then
    tail -n 60 "$WORK/run.log" >&2
    fail "snakemake on SLURM exited $rc after $run_s s (124/137: timed out)"
fi
say "finished in $run_s s"
stage_done

stage "checks: every job through SLURM, results as local"
mapfile -t submitted < <(grep -oE 'submitted with SLURM jobid [0-9]+' "$WORK/run.log" | awk '{ print $NF }' | sort -n)
mapfile -t logged < <(find .snakemake/slurm_logs -name '*.log' -printf '%f\n' | sed -E 's/\.log$//' | sort -n)
((${#submitted[@]} > 0)) || fail "no job was submitted to SLURM"
[[ "${submitted[*]}" == "${logged[*]}" ]] ||
    fail "submitted SLURM jobs (${submitted[*]}) differ from SLURM log files (${logged[*]})"
[[ "${#submitted[@]}" == "$jobs_grouped_planned" ]] ||
    fail "${#submitted[@]} SLURM jobs submitted, the dry-run planned $jobs_grouped_planned"
states="$(squeue -h -t all -j "$(IFS=,; echo "${submitted[*]}")" -o '%i %T')"
incomplete="$(awk '$2 != "COMPLETED"' <<<"$states")"
[[ -z "$incomplete" ]] || fail "SLURM jobs not COMPLETED: $incomplete"
# Each cell's output is named in the log of the SLURM job that made it.
missing=0
cells=0
while read -r cell; do
    cells=$((cells + 1))
    grep -rqF -- "$cell" .snakemake/slurm_logs || { echo "not in any SLURM log: $cell" >&2; missing=$((missing + 1)); }
done < <(find results/cells -name '*.parquet' | sort)
((cells > 0 && missing == 0)) || fail "$missing of $cells cell outputs not made by a SLURM job"
say "${#submitted[@]} SLURM jobs (ids ${submitted[*]}), all COMPLETED; $cells cell outputs, each named in a SLURM job log"
"$PYTHON" "$ROOT/.ci/check_results.py" "$CONFIG"
"$PYTHON" "$CI_DIR/compare_results.py" "$CONFIG" "$LOCAL_RESULTS" "$RUN/results" ||
    fail "results on SLURM differ from the local run in $LOCAL_RESULTS"
stage_done

stage "failure path: a cell that always fails"
FAULT="$WORK/fault"
copy_workflow "$FAULT"
cd "$FAULT"
cat >fault.yaml <<'EOF'
seed: 7
variants: [standard, faulty]
custom_variants: {faulty: "ci_faulty:Agent"}
timing: {samples: 3, min_sample_s: 0.001, gate_steps: 3, memory_steps: 1}
studies:
  inference: {states: [4], observations: [3], actions: [2]}
EOF
retries="$("$PYTHON" -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["retries"])' workflow/profiles/slurm/config.yaml)"
t0="$(now)"
rc=0
PYTHONPATH="$CI_DIR${PYTHONPATH:+:$PYTHONPATH}" timeout -k 10 "$FAULT_TIMEOUT_S" \
    snakemake --workflow-profile workflow/profiles/slurm --configfile fault.yaml >"$WORK/fault.log" 2>&1 || rc=$?
fault_s="$(elapsed "$t0")"
((rc != 0)) || fail "snakemake exited 0 although a cell always fails"
((rc != 124 && rc != 137)) || fail "snakemake hung on a failing cell (killed after $FAULT_TIMEOUT_S s)"
attempts="$(grep -cE 'submitted with SLURM jobid [0-9]+' "$WORK/fault.log")"
[[ "$attempts" == $((retries + 1)) ]] ||
    { tail -n 40 "$WORK/fault.log" >&2; fail "failing job submitted $attempts times, expected 1 + $retries retries"; }
grep -q 'injected fault' results/logs/inference/s4-o3-a2-h1/faulty.log ||
    fail "the cell's log does not hold its error"
grep -qE 'Error in (rule|group job)' "$WORK/fault.log" || fail "Snakemake did not report the failing job"
say "failing cell: $attempts SLURM submissions (1 + $retries retries), reported, exit $rc after $fault_s s"
stage_done

echo
echo "== SLURM CI summary"
printf '%s\n' "${SUMMARY[@]}"
printf '%-52s %7s s\n' "total" "$(elapsed "$CI_T0")"
echo "SLURM jobs for $CONFIG: $jobs_ungrouped without grouping, ${#submitted[@]} with grouping (pipeline $run_s s)"
echo "failing cell: $attempts submissions, snakemake exit $rc after $fault_s s"
