#!/bin/bash
# Stop what sge-up.sh started in DIR: delete its jobs, stop sge_execd and sge_qmaster (by pid
# file), then end any job it left behind (found through the shepherds' working directories under
# DIR/spool/execd). Never by name.
# Adapted from the team recipe (recipes/sge-down.sh); CI has only this copy.
D=$(readlink -f "${1:?usage: sge-down.sh DIR}")
R=$D/root

# Ours: a process whose environment names this cell's SGE_ROOT. Pid files outlive crashes, and a
# pid freed while we wait below may be handed to a new process (pid_max is 32768 in small
# containers): a pid is signalled only while it is ours, checked again right before the signal.
ours() { tr '\0' '\n' 2>/dev/null < "/proc/$1/environ" | grep -q -x -F "SGE_ROOT=$R"; }
qmaster=$(cat "$D/spool/qmaster/qmaster.pid" 2>/dev/null || true)
execd=$(cat "$D/spool/execd/localhost/execd.pid" 2>/dev/null || true)

# sge_execd leaves running jobs (and their sge_shepherd) alive when it stops: delete them first.
if [ -n "$qmaster" ] && kill -0 "$qmaster" 2>/dev/null && ours "$qmaster" && [ -f "$D/env.sh" ]; then
  . "$D/env.sh"
  timeout 10 qdel -f -u '*' >/dev/null 2>&1
  for i in $(seq 1 20); do
    [ -z "$(timeout 5 qstat -u '*' -s rs 2>/dev/null)" ] && break; sleep 0.25
  done
fi

pids=""
for p in $execd $qmaster; do
  [ -n "$p" ] && kill -0 "$p" 2>/dev/null && ours "$p" && pids="$pids $p"
done
alive=""
if [ -n "$pids" ]; then
  kill $pids 2>/dev/null
  for i in $(seq 1 80); do
    alive=""; for p in $pids; do kill -0 "$p" 2>/dev/null && ours "$p" && alive="$alive $p"; done
    [ -z "$alive" ] && break; sleep 0.25
  done
fi
if [ -n "$alive" ]; then
  killed=""; for p in $alive; do ours "$p" && kill -KILL "$p" 2>/dev/null && killed="$killed $p"; done
  sleep 0.5; echo "had to SIGKILL:$killed" >&2
fi

# Leftover jobs: each runs under an sge_shepherd whose working directory is
# DIR/spool/execd/localhost/active_jobs/<job>; end the shepherds and everything below them.
left=""
for c in /proc/[0-9]*/cwd; do
  p=${c#/proc/}; p=${p%/cwd}
  case "$(readlink "$c" 2>/dev/null)" in "$D/spool/execd/"*) left="$left $p";; esac
done
if [ -n "$left" ]; then
  # "pid ppid" of every process (the command name in stat may hold spaces)
  table=$(awk '{line=$0; sub(/^.*\) /, "", line); split(line, f, " "); print FILENAME, f[2]}' \
          /proc/[0-9]*/stat 2>/dev/null | sed -e 's#^/proc/##' -e 's#/stat##')
  todo=$left
  while [ -n "$todo" ]; do
    next=$(echo "$table" | awk -v parents=" $todo " 'index(parents, " " $2 " ") {printf " %s", $1}')
    left="$left$next"; todo=$next
  done
  for p in $left; do [ "$p" -gt 1 ] 2>/dev/null && kill -KILL "$p" 2>/dev/null; done
  echo "killed leftover job processes:$left" >&2
fi
exit 0
