#!/usr/bin/env bash
# Stops the one-node test cluster started by .ci/slurm-up.sh: slurmd, slurmctld
# and munged, each by the pid in its pid file (never by name, so nothing else on
# the machine is touched). Safe to run when nothing is up.
set -euo pipefail

state="${LRMC_SLURM_STATE:-/var/spool/lrmc-slurm}"
sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi

stop() { # stop NAME PIDFILE
  local pidfile=$2 pid
  [ -s "$pidfile" ] || return 0
  pid=$($sudo cat "$pidfile")
  if $sudo kill -0 "$pid" 2>/dev/null; then
    $sudo kill "$pid" || true
    for _ in $(seq 100); do $sudo kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if $sudo kill -0 "$pid" 2>/dev/null; then
      echo "slurm-down: $1 ($pid) did not stop; killing it" >&2
      $sudo kill -9 "$pid" || true
    fi
    echo "slurm-down: stopped $1 ($pid)"
  fi
  $sudo rm -f "$pidfile"
}

stop slurmd "$state/run/slurmd.pid"
stop slurmctld "$state/run/slurmctld.pid"
stop munged /run/munge/munged.pid
