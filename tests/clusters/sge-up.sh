#!/bin/bash
# Start a private single-host Son of Grid Engine 8.1.9 cell on loopback, all state under $1.
# Adapted from the team recipe (recipes/sge-up.sh); CI has only this copy.
# Needs (Debian 12): gridengine-master gridengine-exec gridengine-client (debconf preseed:
# gridengine-common shared/gridengineconfig boolean true, .../gridenginecell string default,
# .../gridenginemaster string localhost).
# Usage: [SLOTS=n] sge-up.sh DIR [QMASTER_PORT]   then: source DIR/env.sh ; stop: sge-down.sh DIR
# DIR and every directory above it must be searchable by sgeadmin (the qmaster runs as that user).
# Also writes DIR/root/blahtest/common/settings.sh as a real installation does.
set -euo pipefail
D=$(readlink -f "${1:?usage: sge-up.sh DIR [PORT]}"); QP=${2:-6444}; EP=$((QP+1)); C=blahtest
SLOTS=${SLOTS:-$(nproc)}
R=$D/root
mkdir -p "$R/$C/common" "$D/spool/qmaster" "$D/spool/execd" "$D/spool/spooldb" "$D/run"
for x in bin lib utilbin util; do ln -sfn "/var/lib/gridengine/$x" "$R/$x"; done
cat > "$R/$C/common/bootstrap" <<B
# Version: 6.2
admin_user              sgeadmin
default_domain          none
ignore_fqdn             true
spooling_method         berkeleydb
spooling_lib            libspoolb
spooling_params         $D/spool/spooldb
binary_path             /usr/sbin
qmaster_spool_dir       $D/spool/qmaster
security_mode           none
listener_threads        2
worker_threads          2
scheduler_threads       1
B
echo localhost > "$R/$C/common/act_qmaster"
# SGE must see one name for this host: forward lookup of $(hostname) and reverse lookup of
# 127.0.0.1 ('localhost') differ, so alias them all to 'localhost'.
echo "localhost $(hostname) $(hostname -f 2>/dev/null || true)" | tr -s ' ' > "$R/$C/common/host_aliases"
sed -e "s#^execd_spool_dir .*#execd_spool_dir $D/spool/execd#" \
    -e 's#^mailer .*#mailer /bin/true#' -e 's#^min_uid .*#min_uid 0#' -e 's#^min_gid .*#min_gid 0#' \
    -e 's#^load_report_time .*#load_report_time 00:00:05#' \
    -e 's#^reporting_params .*#reporting_params accounting=true reporting=false flush_time=00:00:01 joblog=false sharelog=00:00:00#' \
    /usr/share/gridengine/default-configuration > "$D/global.conf"
cat > "$D/env.sh" <<E
export SGE_ROOT=$R SGE_CELL=$C SGE_QMASTER_PORT=$QP SGE_EXECD_PORT=$EP
E
# what util/create_settings.sh writes for a cell whose ports are not in /etc/services
cat > "$R/$C/common/settings.sh" <<E
SGE_ROOT=$R; export SGE_ROOT
ARCH=\`\$SGE_ROOT/util/arch\`
SGE_CELL=$C; export SGE_CELL
SGE_CLUSTER_NAME=p$QP; export SGE_CLUSTER_NAME
SGE_QMASTER_PORT=$QP; export SGE_QMASTER_PORT
SGE_EXECD_PORT=$EP; export SGE_EXECD_PORT
PATH=\$SGE_ROOT/bin:\$SGE_ROOT/bin/\$ARCH:\$PATH; export PATH
unset ARCH
E
chown -R sgeadmin:sgeadmin "$D/spool" "$R/$C"
chmod 755 "$D" "$R"
. "$D/env.sh"
runuser -u sgeadmin -- env SGE_ROOT=$R SGE_CELL=$C sh -ec "
  /usr/lib/gridengine/spoolinit berkeleydb libspoolb $D/spool/spooldb init
  /usr/lib/gridengine/spooldefaults configuration $D/global.conf
  /usr/lib/gridengine/spooldefaults complexes /usr/share/gridengine/util/resources/centry
  /usr/lib/gridengine/spooldefaults usersets /usr/share/gridengine/util/resources/usersets
  /usr/lib/gridengine/spooldefaults managers sgeadmin" > "$D/init.log" 2>&1
SGE_MASTER_PIDFILE=$D/run/qmaster.pid /usr/sbin/sge_qmaster
for i in $(seq 1 80); do qconf -sh >/dev/null 2>&1 && break; sleep 0.25; done
qconf -am root >/dev/null 2>&1 || true
qconf -as localhost >/dev/null
qconf -ssconf | sed -e 's/^schedule_interval .*/schedule_interval 0:0:1/' \
   -e 's/^flush_submit_sec .*/flush_submit_sec 1/' -e 's/^flush_finish_sec .*/flush_finish_sec 1/' > "$D/sched.conf"
qconf -Msconf "$D/sched.conf" >/dev/null
cat > "$D/all.q" <<Q
qname all.q
hostlist localhost
seq_no 0
load_thresholds NONE
suspend_thresholds NONE
nsuspend 1
suspend_interval 00:05:00
priority 0
min_cpu_interval 00:05:00
processors UNDEFINED
qtype BATCH INTERACTIVE
ckpt_list NONE
pe_list NONE
rerun FALSE
slots $SLOTS
tmpdir /tmp
shell /bin/sh
prolog NONE
epilog NONE
shell_start_mode unix_behavior
starter_method NONE
suspend_method NONE
resume_method NONE
terminate_method NONE
notify 00:00:60
owner_list NONE
user_lists NONE
xuser_lists NONE
subordinate_list NONE
complex_values NONE
projects NONE
xprojects NONE
calendar NONE
initial_state default
s_rt INFINITY
h_rt INFINITY
s_cpu INFINITY
h_cpu INFINITY
s_fsize INFINITY
h_fsize INFINITY
s_data INFINITY
h_data INFINITY
s_stack INFINITY
h_stack INFINITY
s_core INFINITY
h_core INFINITY
s_rss INFINITY
h_rss INFINITY
s_vmem INFINITY
h_vmem INFINITY
Q
qconf -Aq "$D/all.q" >/dev/null
# the execd writes its pid to <execd_spool_dir>/<host>/execd.pid
/usr/sbin/sge_execd
for i in $(seq 1 120); do
  if qstat -f 2>/dev/null | grep -E '^all.q@localhost' | awk '{exit ($6 != "")}'; then
    echo "sge up: source $D/env.sh"; exit 0; fi
  sleep 0.25
done
echo "sge did not come up; see $D/spool/qmaster/messages" >&2; qstat -f >&2; exit 1
