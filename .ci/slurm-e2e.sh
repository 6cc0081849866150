#!/usr/bin/env bash
# End-to-end check of `lrmc apply --executor slurm` on the real one-node
# cluster that .ci/slurm-up.sh starts (issue 14, item 4):
#
#   0. the cluster itself: a batch job, a job held by --dependency=afterok,
#      and the states scontrol reports afterwards;
#   a. a local apply of recipes/stories260k-depth-methods.cue (fresh cache);
#   b. the same recipe with --executor slurm and a fresh file:// shared cache
#      (fresh local cache too): its outputs must equal (a)'s;
#   c. fresh caches again, one heavy job killed (kill -9 of its `lrmc exec`)
#      while it runs: the apply must report the failure and exit non-zero;
#      re-applying must finish with (a)'s outputs while submitting fewer jobs
#      than (b), because every node finished before the kill is reused;
#   d. an apply stopped by SIGTERM (as Ctrl-C) exits non-zero and leaves none
#      of its jobs queued.
#
# Outputs are compared byte for byte with cmp, except the measured speed
# (`speed: {}` in the recipe): tokens/s are a measurement of the machine at
# that moment, not a reproducible result, so results.json and metrics.json are
# compared with measuredSpeed/measuredOn removed, report.md without its
# measuredSpeed columns, and report.html (whose plots draw the speeds) is not
# compared. Everything else (models, tokenizers, provenance) must be identical.
#
# Usage: .ci/slurm-e2e.sh LRMC-BINARY   (the cluster must be up)
set -euo pipefail

if [ $# -ne 1 ]; then echo "usage: $0 LRMC-BINARY" >&2; exit 2; fi
lrmc=$(realpath "$1")
cd "$(dirname "$0")/.."

recipe=recipes/stories260k-depth-methods.cue
out=recipes/out/stories260k-depth-methods # the recipe's output.dir
state="${LRMC_SLURM_STATE:-/var/spool/lrmc-slurm}"
wait_s="${LRMC_E2E_TIMEOUT:-600}" # per apply

work=$(mktemp -d "${TMPDIR:-/tmp}/lrmc-slurm-e2e.XXXXXX")
keep=0
apply_pid=""
cleanup() {
  # An apply left running by a failed check is stopped: on SIGTERM it
  # scancels the jobs it submitted.
  if [ -n "$apply_pid" ] && kill -0 "$apply_pid" 2>/dev/null; then kill "$apply_pid"; wait "$apply_pid" || true; fi
  # Jobs of this test still queued after a failure go too (by id).
  local queued
  queued=$(ids_of '*' || true)
  [ -z "$queued" ] || queued=$(squeue -h -t PENDING,RUNNING -j "$queued" -o '%i' 2>/dev/null | paste -sd' ' || true)
  if [ -n "$queued" ]; then echo "slurm-e2e: cancelling this test's jobs still queued: $queued" >&2; scancel $queued || true; fi
  # Outputs that were there before the test go back where they were.
  if [ -d "$work/out-before" ]; then rm -rf "$out"; mv "$work/out-before" "$out"; fi
  if [ "$keep" = 1 ]; then
    echo "slurm-e2e: left $work for inspection" >&2
  else
    rm -rf "$work" 2>/dev/null || { sleep 2; rm -rf "$work"; } || echo "slurm-e2e: could not remove $work" >&2
  fi
}
trap cleanup EXIT
if [ -e "$out" ]; then mv "$out" "$work/out-before"; fi

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
t_all=$(now)

# diagnose prints what a CI log needs to explain a failure: the daemons' logs,
# the queue, and the batch logs of the jobs this test submitted.
diagnose() {
  echo "---- slurm-e2e: diagnostics" >&2
  for f in "$state/log/slurmctld.log" "$state/log/slurmd.log"; do
    echo "---- $f (last 40 lines)" >&2
    tail -n 40 "$f" >&2 2>/dev/null || echo "(missing)" >&2
  done
  echo "---- squeue (queued jobs)" >&2
  squeue -o '%i %j %T %r %E' >&2 2>&1 || true
  local ids
  ids=$(ids_of '*' || true)
  if [ -n "$ids" ]; then
    echo "---- this test's jobs" >&2
    squeue -t all -j "$ids" -o '%i %j %T %r %E' >&2 2>&1 || true
  fi
  for f in "$work"/slurm-*/*.out; do
    [ -f "$f" ] || continue
    echo "---- $f (last 20 lines)" >&2
    tail -n 20 "$f" >&2
  done
}
fail() {
  echo "slurm-e2e: FAIL: $*" >&2
  diagnose
  keep=1
  exit 1
}

command -v sbatch >/dev/null || fail "sbatch not found; run .ci/slurm-up.sh first"

# jobs_of RUN: the ids of the jobs whose batch script lies in RUN's slurm dir
# (squeue's %o; RUN '*': any of this test's), however they were submitted,
# even by an sbatch whose caller was killed. Finished jobs stay listed for
# MinJobAge (600 s on the test cluster), longer than this check takes.
jobs_of() {
  local d="$work/slurm-$1/"
  [ "$1" = '*' ] && d="$work/"
  squeue -h -t all -o '%i %o' 2>/dev/null | awk -v d="$d" 'index($2, d) == 1 { print $1 }' | sort -n
}
ids_of() { jobs_of "$1" | paste -sd, -; }
submitted() { jobs_of "$1" | wc -l; }

# job_state ID: the job's state as scontrol reports it (finished jobs stay
# visible for MinJobAge seconds).
job_state() { scontrol -o show job "$1" 2>/dev/null | grep -Eo 'JobState=[A-Z_]+' | cut -d= -f2; }

# --- 0. the cluster ------------------------------------------------------
t=$(now)
sinfo -h -o '%T' | grep -Eq 'idle|mixed|allocated' || fail "no usable node; run .ci/slurm-up.sh first"
j1=$(cd "$work" && sbatch --parsable -o "$work/smoke-%j.out" --wrap 'hostname; sleep 1')
j2=$(cd "$work" && sbatch --parsable -o "$work/smoke-%j.out" --dependency="afterok:$j1" --wrap 'echo after')
[ "$(job_state "$j2")" = PENDING ] || fail "job $j2 with --dependency=afterok:$j1 is $(job_state "$j2"), not PENDING"
for _ in $(seq 300); do
  [ "$(job_state "$j2")" = COMPLETED ] && break
  sleep 0.1
done
[ "$(job_state "$j1")" = COMPLETED ] || fail "smoke job $j1 is $(job_state "$j1")"
[ "$(job_state "$j2")" = COMPLETED ] || fail "dependent smoke job $j2 is $(job_state "$j2") after 30 s"
[ "$(cat "$work/smoke-$j1.out")" = "$(hostname)" ] || fail "smoke job $j1 wrote '$(cat "$work/smoke-$j1.out")'"
[ "$(cat "$work/smoke-$j2.out")" = after ] || fail "smoke job $j2 wrote '$(cat "$work/smoke-$j2.out")'"
end1=$(scontrol -o show job "$j1" | grep -Eo 'EndTime=[^ ]+' | cut -d= -f2)
start2=$(scontrol -o show job "$j2" | grep -Eo 'StartTime=[^ ]+' | cut -d= -f2)
[[ ! "$start2" < "$end1" ]] || fail "job $j2 started ($start2) before $j1 ended ($end1)"
echo "slurm-e2e: cluster runs jobs and honours afterok ($(secs "$t") s)"

# --- comparing outputs ---------------------------------------------------
# nospeed FILE: a JSON file without its measurements.
nospeed() { jq 'walk(if type == "object" then del(.measuredSpeed, .measuredOn) else . end)' "$1"; }
# nospeedcols FILE: a markdown report without its measuredSpeed columns.
nospeedcols() {
  awk -F'|' '
    /^\|/ {
      if (!intable) { for (i = 1; i <= NF; i++) if ($i ~ /measuredSpeed/) drop[i] = 1; intable = 1 }
      line = ""; first = 1
      for (i = 1; i <= NF; i++) if (!(i in drop)) { line = first ? $i : line "|" $i; first = 0 }
      print line; next
    }
    { intable = 0; delete drop; print }' "$1"
}
# same_outputs A B WHAT: the two output directories hold the same results.
same_outputs() {
  local a=$1 b=$2 what=$3 f n=0 m=0
  # .lrmc-state.json is apply's bookkeeping (digests of the files it wrote,
  # speeds included), not an output.
  diff <(cd "$a" && find . -type f ! -name .lrmc-state.json | sort) \
    <(cd "$b" && find . -type f ! -name .lrmc-state.json | sort) >&2 ||
    fail "$what: the output directories hold different files"
  while read -r f; do
    case "$(basename "$f")" in
      results.json | metrics.json)
        cmp <(nospeed "$a/$f") <(nospeed "$b/$f") || fail "$what: $f differs (beyond measured speed)"
        m=$((m + 1)) ;;
      report.md)
        cmp <(nospeedcols "$a/$f") <(nospeedcols "$b/$f") || fail "$what: $f differs (beyond measured speed)"
        m=$((m + 1)) ;;
      report.html) ;;
      *)
        cmp "$a/$f" "$b/$f" || fail "$what: $f differs"
        n=$((n + 1)) ;;
    esac
  done < <(cd "$a" && find . -type f ! -name .lrmc-state.json | sort)
  [ "$m" -gt 0 ] || fail "$what: no results.json to compare"
  echo "slurm-e2e: $what: $n files byte-identical, $m results/metrics/report files identical but for measured speed"
}

# apply_slurm CACHES RUN [exec]: the slurm apply with the local and shared
# caches named CACHES, its own slurm dir and submission log named RUN. The
# recipe's cluster block asks one CPU per job, so two jobs run at once on a
# 2-core machine, writing the shared cache concurrently (the kernels still use
# every core: there are no cgroups).
# With "exec" (in a background subshell) the apply replaces the subshell, so
# $! is its pid (timeout's, which passes signals on to lrmc).
apply_slurm() {
  mkdir -p "$work/remote-$1"
  ${3:-} env LRMC_CACHE="$work/cache-$1" \
    timeout "$wait_s" "$lrmc" apply --progress=plain --executor slurm --slurm-poll 1s \
    --remote-cache "file://$work/remote-$1" --slurm-dir "$work/slurm-$2" "$recipe"
}

# --- a. local ------------------------------------------------------------
t=$(now)
LRMC_CACHE="$work/cache-a" "$lrmc" apply --progress=plain "$recipe" >"$work/apply-a.log" 2>&1 ||
  { cat "$work/apply-a.log" >&2; fail "local apply failed"; }
mv "$out" "$work/out-a"
echo "slurm-e2e: (a) local apply: $(secs "$t") s"

# --- b. slurm, fresh shared cache ----------------------------------------
t=$(now)
apply_slurm b b >"$work/apply-b.log" 2>&1 || { cat "$work/apply-b.log" >&2; fail "slurm apply failed"; }
mv "$out" "$work/out-b"
nb=$(submitted b)
echo "slurm-e2e: (b) slurm apply: $(secs "$t") s, $nb jobs submitted"
[ "$nb" -gt 0 ] || { cat "$work/apply-b.log" >&2; fail "the slurm apply submitted no job"; }
for id in $(jobs_of b); do
  s=$(job_state "$id")
  [ "$s" = COMPLETED ] || fail "job $id of the slurm apply is ${s:-unknown}, not COMPLETED"
done
[ -n "$(find "$work/remote-b" -type f -print -quit)" ] || fail "the shared cache file://$work/remote-b is empty"
same_outputs "$work/out-a" "$work/out-b" "(b) slurm vs local"

# --- c. kill a job mid-run, re-apply ---------------------------------------
t=$(now)
apply_slurm c c1 exec >"$work/apply-c1.log" 2>&1 &
apply_pid=$!
# Wait until one job has finished (so the re-apply has something to reuse)
# and another one that others depend on is running, then kill -9 that job's
# `lrmc exec` process, as an out-of-memory kill or a crash would. One squeue
# call per poll: asking scontrol job by job is slow enough to miss a job.
exec_pid() { # exec_pid JOB: the pid of the job's lrmc exec, if it runs yet
  local pid
  for pid in $(scontrol listpids "$1" 2>/dev/null | awk 'NR > 1 && $1 > 0 { print $1 }'); do
    if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q ' exec '; then echo "$pid"; return; fi
  done
}
victim="" how=""
deadline=$(( $(date +%s) + wait_s ))
while [ -z "$victim" ]; do
  kill -0 "$apply_pid" 2>/dev/null || { wait "$apply_pid" || true; cat "$work/apply-c1.log" >&2; fail "the apply ended before a job could be killed"; }
  [ "$(date +%s)" -lt "$deadline" ] || fail "no job ran after another completed within ${wait_s}s"
  ids=$(ids_of c1)
  if [ -n "$ids" ]; then
    states=$(squeue -h -t all -j "$ids" -o '%i %T %E' 2>/dev/null || true)
    if grep -q ' COMPLETED ' <<<"$states"; then
      # A running job that pending jobs wait for (afterok:ID(unfulfilled)), so
      # the failure has dependents to cancel.
      for id in $(awk '$2 == "RUNNING" { print $1 }' <<<"$states"); do
        awk -v id="$id" '$2 == "PENDING" && $3 ~ ("[:,]" id "[(]")' <<<"$states" | grep -q . || continue
        pid=$(exec_pid "$id")
        if [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; then
          victim=$id how="kill -9 of its lrmc exec (pid $pid)"
          break
        fi
      done
    fi
  fi
  [ -n "$victim" ] || sleep 0.1
done
victim_name=$(scontrol -o show job "$victim" | grep -Eo 'JobName=[^ ]+' | cut -d= -f2)
echo "slurm-e2e: (c) killed job $victim ($victim_name) by $how after $(secs "$t") s"
rc=0
wait "$apply_pid" || rc=$?
echo "slurm-e2e: (c) the killed apply ended after $(secs "$t") s"
[ "$rc" -ne 0 ] || { cat "$work/apply-c1.log" >&2; fail "the apply whose job $victim was killed exited 0"; }
[ "$rc" -ne 124 ] || { cat "$work/apply-c1.log" >&2; fail "the apply whose job $victim was killed did not end within ${wait_s}s"; }
# The apply must say which job failed (the contract: job id, node, op, log).
grep -w "$victim" "$work/apply-c1.log" | grep -i 'fail' >"$work/reported.txt" ||
  { cat "$work/apply-c1.log" >&2; fail "the failed apply has no line naming the killed job $victim as failed"; }
echo "slurm-e2e: (c) the apply exited $rc and reported:"
sed 's/^/    /' "$work/reported.txt"
[ "$(job_state "$victim")" = FAILED ] || fail "killed job $victim is $(job_state "$victim"), not FAILED"
# Dependents of the killed job must not be left pending forever (Slurm keeps
# them PENDING with DependencyNeverSatisfied unless cancelled); jobs of
# independent branches may still finish on their own.
ids=$(ids_of c1)
for _ in $(seq 600); do
  left=$(squeue -h -t PENDING,CONFIGURING,RUNNING,COMPLETING -j "$ids" -o '%i %T %r' 2>/dev/null || true)
  [ -z "$left" ] && break
  grep -q DependencyNeverSatisfied <<<"$left" && fail "dependents of the failed job left queued: $left"
  sleep 0.5
done
[ -z "$left" ] || fail "jobs of the failed apply still queued 5 minutes after it exited: $left"
t=$(now)
# The re-apply keeps the caches of the killed apply and the outputs it wrote
# for the runs that did not need the killed job, as a user's re-apply would;
# only the slurm dir and the submission count are its own.
apply_slurm c c2 >"$work/apply-c2.log" 2>&1 || { cat "$work/apply-c2.log" >&2; fail "the re-apply failed"; }
mv "$out" "$work/out-c"
nc1=$(submitted c1) nc2=$(submitted c2)
echo "slurm-e2e: (c) re-apply: $(secs "$t") s, $nc2 jobs submitted (killed apply: $nc1, fresh apply (b): $nb)"
[ "$nc2" -lt "$nb" ] || fail "the re-apply submitted $nc2 jobs, not fewer than the $nb of a fresh apply"
same_outputs "$work/out-a" "$work/out-c" "(c) re-apply after a kill vs local"

# --- d. a cancelled apply (Ctrl-C or SIGTERM) leaves nothing queued -------
t=$(now)
apply_slurm d d exec >"$work/apply-d.log" 2>&1 &
apply_pid=$!
deadline=$(( $(date +%s) + wait_s ))
# The signal comes as soon as one job runs, often while apply still submits.
until ids=$(ids_of d) && [ -n "$ids" ] && squeue -h -t RUNNING -j "$ids" 2>/dev/null | grep -q .; do
  kill -0 "$apply_pid" 2>/dev/null || { cat "$work/apply-d.log" >&2; fail "(d) the apply ended before a job ran"; }
  [ "$(date +%s)" -lt "$deadline" ] || fail "(d) no job ran within ${wait_s}s"
  sleep 0.1
done
kill -TERM "$apply_pid"
rc=0
wait "$apply_pid" || rc=$?
apply_pid=""
[ "$rc" -ne 0 ] || { cat "$work/apply-d.log" >&2; fail "(d) the apply stopped by SIGTERM exited 0"; }
left=$(squeue -h -j "$(ids_of d)" -t PENDING,CONFIGURING,RUNNING -o '%i %T' 2>/dev/null || true)
[ -z "$left" ] || { cat "$work/apply-d.log" >&2; fail "(d) jobs of the stopped apply still queued: $left"; }
rm -rf "$out" # leave the tree as it was found (a stopped apply writes nothing, normally)
# Cancelled jobs take a moment to end their processes; wait, so that nothing
# of this test still writes when its directory is removed.
for _ in $(seq 120); do
  squeue -h -t RUNNING,COMPLETING -j "$(ids_of d)" 2>/dev/null | grep -q . || break
  sleep 0.5
done
echo "slurm-e2e: (d) SIGTERM to an apply with $(submitted d) jobs submitted: exit $rc, none left queued ($(secs "$t") s)"
echo "slurm-e2e: OK in $(secs "$t_all") s"
