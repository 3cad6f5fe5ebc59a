#!/bin/bash
# Start a private single-node Slurm cluster on loopback, everything under $1.
# Adapted from the team recipe (recipes/slurm-up.sh); CI has only this copy.
# Needs (Debian 12): apt-get install -y --no-install-recommends slurm-wlm slurmctld slurmd slurm-client munge
# Usage: [WITH_DBD=1] [MIN_JOB_AGE=s] slurm-up.sh DIR [CTLD_PORT] ; then: export SLURM_CONF=DIR/slurm.conf
# Stop: slurm-down.sh DIR (also after a failed start: it stops whatever got started).
# Ports: slurmctld CTLD_PORT, slurmd CTLD_PORT+1; WITH_DBD=1 also starts slurmdbd (CTLD_PORT+2) and a
# private MariaDB (CTLD_PORT+3) so that sacct works; needs in addition: slurmdbd mariadb-server.
# Partitions: debug (default) and short, both on node localhost.
set -euo pipefail
D=$(readlink -f "${1:?usage: slurm-up.sh DIR [PORT]}"); P=${2:-6817}
WITH_DBD=${WITH_DBD:-0}; MIN_JOB_AGE=${MIN_JOB_AGE:-300}
ME=$(id -un)
mkdir -p "$D"/{state,spool,log,run}; chmod 755 "$D"
[ -f "$D/munge.key" ] || { mungekey -c -k "$D/munge.key" 2>/dev/null || dd if=/dev/urandom of="$D/munge.key" bs=1 count=1024 2>/dev/null; chmod 600 "$D/munge.key"; }
MEM=1000; CPUS=$(nproc)

tail_log() { echo "--- $1" >&2; tail -n 15 "$1" >&2 2>/dev/null || true; }
# A daemon whose pid file is not written yet counts as alive (it may still be starting).
alive() { local p; p=$(cat "$1" 2>/dev/null) || return 0; [ -n "$p" ] && kill -0 "$p" 2>/dev/null; }
# wait_until SECONDS PIDFILE CMD...: until CMD succeeds; 1 on time-out, 2 as soon as the daemon died
wait_until() {
  local end=$((SECONDS + $1)) pidfile=$2; shift 2
  while :; do
    "$@" >/dev/null 2>&1 && return 0
    alive "$pidfile" || return 2
    [ $SECONDS -lt $end ] || return 1
    sleep 0.25
  done
}
# Exactly "idle" ("idle*" has not answered yet). Not a pipe into grep -q: with pipefail, sinfo
# killed by SIGPIPE after grep's first match would count as a failure.
node_idle() { local s; s=$(timeout 5 sinfo -h -o '%T') && grep -qx idle <<< "$s"; }

cat > "$D/slurm.conf" <<CONF
ClusterName=blahtest
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$P
SlurmdPort=$((P+1))
SlurmUser=$ME
AuthType=auth/munge
AuthInfo=socket=$D/munge.sock
CredType=cred/munge
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool
SlurmctldPidFile=$D/run/slurmctld.pid
SlurmdPidFile=$D/run/slurmd.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
$(if [ "$WITH_DBD" = 1 ]; then printf 'AccountingStorageType=accounting_storage/slurmdbd\nAccountingStorageHost=localhost\nAccountingStoragePort=%s\nAccountingStoragePass=%s\n' $((P+2)) "$D/munge.sock"; else echo AccountingStorageType=accounting_storage/none; fi)
JobCompType=jobcomp/filetxt
JobCompLoc=$D/log/jobcomp.log
MpiDefault=none
MailProg=/bin/true
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=$MIN_JOB_AGE
KillWait=5
Waittime=0
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
PartitionName=short Nodes=localhost MaxTime=INFINITE State=UP
CONF
# --force: munged refuses a socket whose directories others cannot traverse (pytest's basetemp is
# 0700); only the invoking user's clients and daemons use this cluster, so that is fine here.
/usr/sbin/munged --force --socket="$D/munge.sock" --key-file="$D/munge.key" --pid-file="$D/run/munged.pid" \
    --log-file="$D/log/munged.log" --seed-file="$D/run/munged.seed"
export SLURM_CONF="$D/slurm.conf"
if [ "$WITH_DBD" = 1 ]; then
  # MariaDB runs as the invoking user, not as mysql: DIR may sit under a private (0700) directory such
  # as pytest's basetemp, which the mysql user cannot traverse (mariadbd then fails without a word).
  mkdir -p "$D/db/data"
  [ -d "$D/db/data/mysql" ] || mariadb-install-db --user="$ME" --datadir="$D/db/data" \
      --auth-root-authentication-method=socket > "$D/log/mariadb-install.log" 2>&1 \
      || { tail_log "$D/log/mariadb-install.log"; exit 1; }
  /usr/sbin/mariadbd --no-defaults --user="$ME" --datadir="$D/db/data" --socket="$D/db/mysql.sock" \
     --pid-file="$D/db/mysql.pid" --bind-address=127.0.0.1 --port=$((P+3)) --skip-name-resolve \
     --innodb-buffer-pool-size=64M --log-error="$D/db/mariadb.err" </dev/null >/dev/null 2>&1 &
  # mariadbd writes its own pid file only once it is up: keep ours so slurm-down.sh can stop a slow one
  echo $! > "$D/run/mariadbd.pid"
  wait_until 30 "$D/run/mariadbd.pid" mariadb --socket="$D/db/mysql.sock" -e 'select 1' \
    || { echo "mariadbd did not come up" >&2; tail_log "$D/db/mariadb.err"; exit 1; }
  mariadb --socket="$D/db/mysql.sock" -e "create database if not exists slurm_acct_db;
     create user if not exists 'slurm'@'127.0.0.1' identified by 'slurmpw';
     grant all on slurm_acct_db.* to 'slurm'@'127.0.0.1';" || { tail_log "$D/db/mariadb.err"; exit 1; }
  cat > "$D/slurmdbd.conf" <<DBD
AuthType=auth/munge
AuthInfo=socket=$D/munge.sock
DbdHost=localhost
DbdPort=$((P+2))
SlurmUser=$ME
DebugLevel=info
LogFile=$D/log/slurmdbd.log
PidFile=$D/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$((P+3))
StorageUser=slurm
StoragePass=slurmpw
StorageLoc=slurm_acct_db
DBD
  chmod 600 "$D/slurmdbd.conf"
  /usr/sbin/slurmdbd        # finds slurmdbd.conf next to $SLURM_CONF
  # without a working slurmdbd, slurmctld dies later with a less helpful message
  wait_until 30 "$D/run/slurmdbd.pid" timeout 5 sacctmgr -n list cluster \
    || { echo "slurmdbd did not come up" >&2; tail_log "$D/log/slurmdbd.log"; exit 1; }
fi
/usr/sbin/slurmctld -f "$SLURM_CONF"
/usr/sbin/slurmd -f "$SLURM_CONF" -N localhost
rc=0; wait_until 45 "$D/run/slurmctld.pid" node_idle || rc=$?
[ $rc = 0 ] && { echo "slurm up: export SLURM_CONF=$SLURM_CONF"; exit 0; }
[ $rc = 2 ] && echo "slurmctld died" >&2 || echo "node did not become idle; see $D/log" >&2
tail_log "$D/log/slurmctld.log"; tail_log "$D/log/slurmd.log"; exit 1
