"""A fake Slurm for bench/status_load.py: squeue, sacct, scontrol, scancel, sbatch.

Jobs live in a JSON state file named by $FAKE_SLURM_STATE (written by status_load.py):

    {"epoch": <unix time>, "min_job_age": 300,
     "jobs": [[id, start, end, exit, pending_reason], ...]}

``start``/``end`` are seconds after ``epoch`` (null: never), so job states move with the clock
without anyone rewriting the file: pending before ``start``, running until ``end``, then
finished and still listed by squeue for ``min_job_age`` seconds (as Slurm's MinJobAge), after
that known to sacct only.  Output follows Slurm 22.05 (see backends/slurm_parse.py and the
captured outputs in tests/unit/test_slurm_parse.py).  $FAKE_SLURM_DELAY (seconds) is added to
every squeue and sacct call, to play a slow slurmctld/slurmdbd.
"""
import json
import os
import re
import sys
import time

DEFAULT_SQUEUE_FORMAT = "%i|%T|%r|%B"


def load():
    with open(os.environ["FAKE_SLURM_STATE"]) as f:
        state = json.load(f)
    return time.time() - state["epoch"], state


def final_state(exit_code):
    return "COMPLETED" if exit_code == "0:0" else "FAILED"


def squeue(argv):
    fmt = argv[argv.index("-o") + 1] if "-o" in argv else DEFAULT_SQUEUE_FORMAT
    names = [a.split("=", 1)[1] for a in argv if a.startswith("--name=")]
    t, state = load()
    out = []
    for jid, start, end, exit_code, reason in state["jobs"]:
        if names:  # pyblahp's find_by_key: no bench job carries a pyblahp name
            continue
        if start is None or t < start:
            st, why, host = "PENDING", reason, "n/a"
        elif end is None or t < end:
            st, why, host = "RUNNING", "None", "node01"
        elif t < end + state["min_job_age"]:
            st, why, host = final_state(exit_code), "None", "node01"
        else:
            continue  # purged from slurmctld: only sacct knows it
        fields = {"i": jid, "T": st, "r": why, "B": host, "j": "bench", "k": "(null)"}
        out.append(re.sub(r"%(\w)", lambda m: fields.get(m.group(1), ""), fmt))
    sys.stdout.write("".join(line + "\n" for line in out))


def sacct(argv):
    wanted = set(argv[argv.index("-j") + 1].split(",")) if "-j" in argv else None
    fields = argv[argv.index("-o") + 1].split(",")
    t, state = load()
    out = []
    for jid, start, end, exit_code, reason in state["jobs"]:
        if wanted is not None and jid not in wanted:
            continue
        started = start is not None and t >= start
        done = started and end is not None and t >= end
        st = final_state(exit_code) if done else "RUNNING" if started else "PENDING"
        elapsed = int((min(t, end) if end is not None else t) - start) if started else 0
        wall = "%02d:%02d:%02d" % (elapsed // 3600, elapsed // 60 % 60, elapsed % 60)
        alloc = {"JobIDRaw": jid, "State": st, "ExitCode": exit_code if done else "0:0",
                 "UserCPU": "00:00:01" if started else "00:00:00", "SystemCPU": "00:00.002",
                 "MaxRSS": "", "AllocCPUS": "1" if started else "0", "Elapsed": wall,
                 "NodeList": "node01" if started else "None assigned", "ReqMem": "2000M"}
        out.append(alloc)
        if started:
            out.append(dict(alloc, JobIDRaw=jid + ".batch", MaxRSS="102400K", ReqMem=""))
    sys.stdout.write("".join("|".join(row.get(f, "") for f in fields) + "\n" for row in out))


def scontrol(argv):
    if "show" in argv:
        print("No jobs in the system")  # the bench never needs scontrol's view


def sbatch(argv):
    print("%d" % (int(time.time() * 1000) % 10 ** 9))  # --parsable; the bench never submits


def main(name):
    argv = sys.argv[1:]
    if name in ("squeue", "sacct"):
        time.sleep(float(os.environ.get("FAKE_SLURM_DELAY") or 0))
    {"squeue": squeue, "sacct": sacct, "scontrol": scontrol, "scancel": lambda a: None,
     "sbatch": sbatch}[name](argv)


if __name__ == "__main__":
    main(sys.argv.pop(1))
