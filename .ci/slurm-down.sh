#!/usr/bin/env bash
# Stop the single-node SLURM that .ci/slurm-up.sh started: cancels queued/running jobs, then
# stops slurmd, slurmctld, slurmdbd, MariaDB and munged (each via its pid file). Idempotent.
# Keeps $SLURM_CI_DIR (job history, database) unless SLURM_CI_PURGE=1.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
  exec sudo -E bash "$0" "$@"
fi

DIR="${SLURM_CI_DIR:-/tmp/slurm-ci}"

# stop NAME PIDFILE: SIGTERM, wait up to 30 s, then SIGKILL
stop() {
  local name=$1 pidfile=$2 pid i
  if [ ! -s "$pidfile" ] || ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    echo "[slurm-down] $name not running"
    rm -f "$pidfile"
    return 0
  fi
  pid=$(cat "$pidfile")
  kill "$pid" 2>/dev/null || true
  for i in $(seq 150); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "[slurm-down] $name ($pid) ignored SIGTERM: killing"
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
  echo "[slurm-down] $name stopped"
}

# Cancel jobs so no job step outlives slurmd.
if command -v scontrol >/dev/null && timeout 5 scontrol ping >/dev/null 2>&1; then
  jobs=$(squeue -h -o %i 2>/dev/null || true)
  if [ -n "$jobs" ]; then
    echo "[slurm-down] cancelling jobs: $(echo $jobs)"
    # shellcheck disable=SC2086
    scancel $jobs || true
    for i in $(seq 30); do
      [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break
      sleep 0.5
    done
  fi
fi

# Each daemon takes ~2 s to exit: stop independent ones side by side, dependencies in order
# (slurmctld flushes accounting to slurmdbd, slurmdbd writes to MariaDB).
stop slurmd    "$DIR/run/slurmd.pid" &
stop slurmctld "$DIR/run/slurmctld.pid" &
wait
stop slurmdbd  "$DIR/run/slurmdbd.pid"
stop mariadb   "$DIR/run/mysqld.pid" &
stop munged    /run/munge/munged.pid &
wait

# Unlink the configuration slurm-up.sh linked in (restoring what it moved aside): with a
# slurm.conf naming a controller that is gone, every `scontrol` waits 10 s for it, and the
# SLURM executor plugin runs `scontrol show config` whenever Snakemake starts, local runs too.
for f in slurm.conf slurmdbd.conf; do
  if [ "$(readlink /etc/slurm/$f 2>/dev/null)" = "$DIR/etc/$f" ]; then
    rm -f /etc/slurm/$f
    if [ -e /etc/slurm/$f.orig ]; then mv /etc/slurm/$f.orig /etc/slurm/$f; fi
  fi
done

if [ "${SLURM_CI_PURGE:-0}" = 1 ]; then
  rm -rf "$DIR"
  echo "[slurm-down] removed $DIR"
fi
