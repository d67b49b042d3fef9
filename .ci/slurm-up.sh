#!/usr/bin/env bash
# Start a real single-node SLURM on this host, for tests and for snakemake's SLURM executor:
# munged, a private MariaDB, slurmdbd (accounting, so sacct works), slurmctld, slurmd.
# No systemd needed: every daemon is started directly. Needs root (re-runs itself with sudo).
#
# Installs what is missing from Debian (munge, mariadb-server, slurmctld, slurmd,
# slurm-client, slurmdbd; --no-install-recommends), writes the config, starts what is not
# running, registers cluster/account/users in sacctmgr and waits until the node is idle.
# Idempotent: a second run with everything up only checks it. Stop with .ci/slurm-down.sh.
#
# Environment (defaults):
#   SLURM_CI_DIR=/tmp/slurm-ci   state, logs, pid files, MariaDB data, config (etc/)
#   SLURM_CI_CLUSTER=ci          ClusterName
#   SLURM_CI_PARTITION=debug     the (default) partition
#   SLURM_CI_ACCOUNT=ci          account every user below gets as default account
#   SLURM_CI_USERS="root $SUDO_USER"   users added to the account
#   SLURM_CI_DB_PORT=3307        MariaDB TCP port (127.0.0.1 only)
#   SLURM_CI_TIMEOUT=90          seconds to wait for each daemon / the idle node
# slurm.conf and slurmdbd.conf are written to $SLURM_CI_DIR/etc and linked from /etc/slurm
# (where Debian's slurm looks for them), so sbatch/sacct/... need no SLURM_CONF.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
  exec sudo -E bash "$0" "$@"
fi

T0=${EPOCHREALTIME/[.,]/}   # microseconds
DIR="${SLURM_CI_DIR:-/tmp/slurm-ci}"
CLUSTER="${SLURM_CI_CLUSTER:-ci}"
PARTITION="${SLURM_CI_PARTITION:-debug}"
ACCOUNT="${SLURM_CI_ACCOUNT:-ci}"
USERS="${SLURM_CI_USERS:-root ${SUDO_USER:-}}"
DB_PORT="${SLURM_CI_DB_PORT:-3307}"
TIMEOUT="${SLURM_CI_TIMEOUT:-90}"
DB_NAME=slurm_acct_db
DB_USER=slurm
DB_PASS=slurmci   # throw-away local database, bound to 127.0.0.1

elapsed() { local d=$(( ${EPOCHREALTIME/[.,]/} - T0 )); printf '%d.%d' $((d / 1000000)) $((d / 100000 % 10)); }
log() { printf '[slurm-up %6ss] %s\n' "$(elapsed)" "$*"; }
die() { log "ERROR: $*"; exit 1; }
# wait_for SECONDS DESCRIPTION CMD...: retry CMD every 0.5 s
wait_for() {
  local secs=$1 what=$2; shift 2
  local end=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $end ] || return 1
    sleep 0.5
  done
}
# pid_alive PIDFILE: the daemon named in PIDFILE is running
pid_alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# ---- 1. packages -------------------------------------------------------------------
PKGS=(munge mariadb-server slurmctld slurmd slurm-client slurmdbd)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "[slurm-up] installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Keep the packages' init scripts from starting daemons during the install (no systemd
  # here, and we start them ourselves with our own config below).
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  ta=$(date +%s)
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  echo "[slurm-up] apt install took $(( $(date +%s) - ta ))s"
fi
log "packages present: $(dpkg-query -W -f='${Version}' slurmctld) slurm, $(dpkg-query -W -f='${Version}' mariadb-server) mariadb"

HOST=$(hostname -s)
mkdir -p "$DIR"/{etc,log,run,state/slurmctld,state/slurmd}
chmod 755 "$DIR"

# ---- 2. munge -------------------------------------------------------------------------
install -d -o munge -g munge -m 0700 /etc/munge /var/log/munge
install -d -o munge -g munge -m 0711 /var/lib/munge
install -d -o munge -g munge -m 0755 /run/munge
if [ ! -s /etc/munge/munge.key ]; then
  log "creating /etc/munge/munge.key"
  dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
fi
chown munge:munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key
if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  log "munged already running"
else
  rm -f /run/munge/munged.pid
  runuser -u munge -- /usr/sbin/munged
  wait_for "$TIMEOUT" munged bash -c 'munge -n | unmunge' || die "munged did not come up (see /var/log/munge/munged.log)"
  log "munged started"
fi

# ---- 3. MariaDB (private instance in $DIR/mysql, TCP 127.0.0.1:$DB_PORT) -------------------
MYSOCK="$DIR/run/mysqld.sock"
MYPID="$DIR/run/mysqld.pid"
mysql_root() { mariadb --no-defaults -S "$MYSOCK" -u root "$@"; }
if [ ! -d "$DIR/mysql/mysql" ]; then
  log "initialising MariaDB data dir $DIR/mysql"
  install -d -o mysql -g mysql -m 0750 "$DIR/mysql"
  mariadb-install-db --no-defaults --datadir="$DIR/mysql" --user=mysql \
    --auth-root-authentication-method=socket --skip-test-db >"$DIR/log/mariadb-install.log" 2>&1 \
    || die "mariadb-install-db failed (see $DIR/log/mariadb-install.log)"
fi
chown mysql:mysql "$DIR/run"   # the server writes its socket and pid file here
if pid_alive "$MYPID" && mysql_root -e 'select 1' >/dev/null 2>&1; then
  log "MariaDB already running"
else
  setsid nohup mariadbd --no-defaults --user=mysql --datadir="$DIR/mysql" \
    --socket="$MYSOCK" --pid-file="$MYPID" --port="$DB_PORT" --bind-address=127.0.0.1 \
    --skip-name-resolve --log-error="$DIR/log/mariadb.log" \
    --innodb-buffer-pool-size=128M --innodb-log-file-size=64M --innodb-lock-wait-timeout=900 \
    --max-connections=50 </dev/null >/dev/null 2>&1 &
  wait_for "$TIMEOUT" mariadb mysql_root -e 'select 1' || die "MariaDB did not come up (see $DIR/log/mariadb.log)"
  log "MariaDB started on 127.0.0.1:$DB_PORT"
fi
mysql_root <<SQL
CREATE DATABASE IF NOT EXISTS $DB_NAME;
CREATE USER IF NOT EXISTS '$DB_USER'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
CREATE USER IF NOT EXISTS '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASS';
GRANT ALL ON $DB_NAME.* TO '$DB_USER'@'127.0.0.1';
GRANT ALL ON $DB_NAME.* TO '$DB_USER'@'localhost';
SQL

# ---- 4. config --------------------------------------------------------------------------
# Hardware as slurmd sees it: "NodeName=x CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2
# ThreadsPerCore=1 RealMemory=24105"; keep the topology, leave 5% of the memory to the OS.
HW=$(slurmd -C | head -1)
CPUS=$(sed -n 's/.* CPUs=\([0-9]*\).*/\1/p' <<<"$HW")
TOPO=$(grep -o 'Boards=[0-9]* SocketsPerBoard=[0-9]* CoresPerSocket=[0-9]* ThreadsPerCore=[0-9]*' <<<"$HW")
MEM=$(sed -n 's/.* RealMemory=\([0-9]*\).*/\1/p' <<<"$HW")
MEM=$((MEM * 95 / 100))

write_if_changed() {  # write_if_changed FILE MODE: stdin -> FILE, return 0 if it changed
  local f=$1 mode=$2 tmp
  tmp=$(mktemp)
  cat >"$tmp"
  if [ -f "$f" ] && cmp -s "$tmp" "$f"; then rm -f "$tmp"; return 1; fi
  install -m "$mode" -o root -g root "$tmp" "$f"; rm -f "$tmp"; return 0
}

CONF_CHANGED=0
write_if_changed "$DIR/etc/slurm.conf" 0644 <<EOF && CONF_CHANGED=1 || true
# Written by .ci/slurm-up.sh: single-node CI cluster, all daemons run as root.
ClusterName=$CLUSTER
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
MpiDefault=none
MailProg=/bin/true
# No systemd and no delegated cgroup tree in this container: track processes via /proc.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
DefMemPerCPU=1024
StateSaveLocation=$DIR/state/slurmctld
SlurmdSpoolDir=$DIR/state/slurmd
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=60
InactiveLimit=0
KillWait=5
MinJobAge=300
Waittime=0
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
JobCompType=jobcomp/none
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS $TOPO RealMemory=$MEM State=UNKNOWN
PartitionName=$PARTITION Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF

write_if_changed "$DIR/etc/slurmdbd.conf" 0600 <<EOF && CONF_CHANGED=1 || true
# Written by .ci/slurm-up.sh
AuthType=auth/munge
DbdHost=localhost
DbdPort=6819
SlurmUser=root
LogFile=$DIR/log/slurmdbd.log
PidFile=$DIR/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=$DB_USER
StoragePass=$DB_PASS
StorageLoc=$DB_NAME
EOF

mkdir -p /etc/slurm
for f in slurm.conf slurmdbd.conf; do
  if [ "$(readlink /etc/slurm/$f 2>/dev/null)" != "$DIR/etc/$f" ]; then
    [ -e /etc/slurm/$f ] && [ ! -L /etc/slurm/$f ] && mv /etc/slurm/$f /etc/slurm/$f.orig
    ln -sfn "$DIR/etc/$f" /etc/slurm/$f
  fi
done

# A running daemon keeps its old config: restart all slurm daemons if the config changed.
if [ "$CONF_CHANGED" = 1 ]; then
  for d in slurmd slurmctld slurmdbd; do
    if pid_alive "$DIR/run/$d.pid"; then
      log "config changed: stopping $d"
      pid=$(cat "$DIR/run/$d.pid")
      kill "$pid"
      wait_for 30 "$d stop" bash -c "! kill -0 $pid" || kill -9 "$pid" 2>/dev/null || true
    fi
  done
fi

# ---- 5. slurmdbd + accounting entities --------------------------------------------------
if pid_alive "$DIR/run/slurmdbd.pid"; then
  log "slurmdbd already running"
else
  slurmdbd
  wait_for "$TIMEOUT" slurmdbd sacctmgr -n list cluster || die "slurmdbd did not come up (see $DIR/log/slurmdbd.log)"
  log "slurmdbd started"
fi
if [ -z "$(sacctmgr -n -P list cluster "$CLUSTER" format=cluster)" ]; then
  sacctmgr -i add cluster "$CLUSTER" >/dev/null
fi
if [ -z "$(sacctmgr -n -P list account "$ACCOUNT" format=account)" ]; then
  sacctmgr -i add account "$ACCOUNT" Cluster="$CLUSTER" Description=CI Organization=CI >/dev/null
fi
for u in $USERS; do
  if [ -z "$(sacctmgr -n -P list assoc cluster="$CLUSTER" account="$ACCOUNT" user="$u" format=user)" ]; then
    sacctmgr -i add user "$u" Account="$ACCOUNT" DefaultAccount="$ACCOUNT" Cluster="$CLUSTER" >/dev/null
  fi
done
log "accounting: cluster=$CLUSTER account=$ACCOUNT users=[$USERS]"

# ---- 6. slurmctld + slurmd ------------------------------------------------------------------
if pid_alive "$DIR/run/slurmctld.pid"; then
  log "slurmctld already running"
else
  slurmctld
  wait_for "$TIMEOUT" slurmctld scontrol ping || die "slurmctld did not come up (see $DIR/log/slurmctld.log)"
  log "slurmctld started"
fi
if pid_alive "$DIR/run/slurmd.pid"; then
  log "slurmd already running"
else
  slurmd
  log "slurmd started"
fi
# slurmctld may still show the node IDLE from its saved state: wait for slurmd itself.
wait_for "$TIMEOUT" slurmd scontrol show slurmd || die "slurmd did not come up (see $DIR/log/slurmd.log)"

node_idle() { sinfo -h -n "$HOST" -o %T | grep -qx 'idle'; }
if ! wait_for "$TIMEOUT" "node idle" node_idle; then
  # A node left DOWN/DRAIN by an earlier unclean stop: put it back.
  scontrol update NodeName="$HOST" State=RESUME 2>/dev/null || true
  wait_for 30 "node idle" node_idle || die "node $HOST is not idle: $(sinfo -h -N -o '%N %T %E'); see $DIR/log/slurmd.log"
fi
log "SLURM up: $(sinfo -h -o '%P %a %D %T %c CPUs %m MB') (cluster $CLUSTER, state in $DIR)"
log "setup took $(elapsed)s"
