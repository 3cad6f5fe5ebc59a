#!/bin/bash
# Stop what slurm-up.sh started in DIR: cancel its jobs, stop its daemons (by pid file), then end
# any job step it left behind (found by pid through the job scripts under DIR/spool). Never by name.
# Adapted from the team recipe (recipes/slurm-down.sh); CI has only this copy.
D=$(readlink -f "${1:?usage: slurm-down.sh DIR}")
if [ -f "$D/slurm.conf" ] && kill -0 "$(cat "$D/run/slurmctld.pid" 2>/dev/null)" 2>/dev/null; then
  SLURM_CONF="$D/slurm.conf" timeout 10 scancel --user="$(id -un)" >/dev/null 2>&1
  for i in $(seq 1 20); do
    [ -z "$(SLURM_CONF="$D/slurm.conf" timeout 5 squeue -h -t R,CG 2>/dev/null)" ] && break; sleep 0.25
  done
fi
# A pid file may outlive its daemon (e.g. after a crash), and a pid freed while we wait below may
# be handed to a new process (pid_max is 32768 in small containers, and the suite forks fast):
# a pid is signalled only while it is still ours -- DIR on its command line, or (slurmdbd)
# SLURM_CONF in its environment -- checked again right before every signal.
ours() {
  tr '\0' '\n' 2>/dev/null < "/proc/$1/cmdline" | grep -q -F "$D/" \
    || tr '\0' '\n' 2>/dev/null < "/proc/$1/environ" | grep -q -x -F "SLURM_CONF=$D/slurm.conf"
}
pids=""
for f in run/slurmd run/slurmctld run/slurmdbd db/mysql run/mariadbd run/munged; do
  p=$(cat "$D/$f.pid" 2>/dev/null || true)
  [ -n "$p" ] || continue
  ours "$p" || continue
  case " $pids " in *" $p "*) ;; *) pids="$pids $p";; esac
done
alive=""
if [ -n "$pids" ]; then
  kill $pids 2>/dev/null
  for i in $(seq 1 60); do
    alive=""; for p in $pids; do kill -0 "$p" 2>/dev/null && ours "$p" && alive="$alive $p"; done
    [ -z "$alive" ] && break; sleep 0.25
  done
fi
# slurmd ignores SIGTERM while it retries registering with a dead slurmctld
if [ -n "$alive" ]; then
  killed=""; for p in $alive; do ours "$p" && kill -KILL "$p" 2>/dev/null && killed="$killed $p"; done
  sleep 0.5; echo "had to SIGKILL:$killed" >&2
fi
# leftover steps: job scripts run from DIR/spool; their parents are the slurmstepd processes
left=""
for c in /proc/[0-9]*/cmdline; do
  p=${c#/proc/}; p=${p%/cmdline}
  if tr '\0' ' ' 2>/dev/null < "$c" | grep -q -F "$D/spool/"; then
    pp=$(awk '/^PPid:/{print $2}' /proc/$p/status 2>/dev/null)
    left="$left $p"
    [ "$(cat /proc/$pp/comm 2>/dev/null)" = slurmstepd ] && left="$left $pp"
  fi
done
for p in $left; do [ "$p" -gt 1 ] 2>/dev/null && kill -KILL "$p" 2>/dev/null; done
exit 0
