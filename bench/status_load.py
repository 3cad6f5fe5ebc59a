"""Status load: many tracked jobs probed the way HTCondor's gridmanager probes them.

    .venv/bin/python bench/status_load.py --jobs 1000 --duration 120 [--system S] [--fake | --real]

blahpd runs on pipes.  First every job is asked once (at most --warmup-in-flight requests
outstanding, so the server's blah_max_threaded_cmds limit is not hit), so that all --jobs are
tracked; then, for --duration seconds, one BLAH_JOB_STATUS every 1/--rate s, round robin over
the jobs (the gridmanager's GRIDMANAGER_JOB_PROBE_RATE is 5/s), plus --burst-size requests at
once every --burst-every s.  An ``F Threads limit reached`` reply is retried, its latency still
counted from the first send.  Latency is send -> result line read (after the ``R`` and our
``RESULTS``), i.e. what the gridmanager sees.

Batch commands are counted by wrappers in ``<lrms>_binpath`` that log each call and run:
  slurm   the fake Slurm in bench/fake_slurm/ (--fake, the default) or a private Slurm 22.05
          cluster (--real; tests/clusters/slurm.py; jobs submitted with --begin=now+2hours, a
          few --real-finished ones allowed to run so that sacct has work);
  pbs, pbs-pro, lsf, condor
          the simulated systems of conformance/sim with played jobs (nothing really runs; job
          states move with the clock: pending, running, held, finished in the queue, finished
          and purged to history);
  sge     a private Grid Engine cell (tests/clusters/sge.py) with held jobs and a few that run.

Goals (the issue): at most one bulk query (squeue, qstat, bjobs, condor_q) and one accounting
query (sacct, qstat -x, bhist, condor_history; qacct) per cycle whatever the job count; p99
status latency under one cycle; peak RSS under 100 MB at 10,000 tracked jobs.  Results are
printed and written to bench/results/status_load-<system>-<mode>-<jobs>.json.
"""
from __future__ import annotations

import argparse
import bisect
import collections
import json
import math
import os
import queue
import random
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from gahp.escaping import read_argv

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


class Profile:
    """What differs between batch systems: the commands, and which calls are the cycle's queries."""

    def __init__(self, lrms, commands, bulk, resolve, ids, config="", sim=None, sim_settings=None, sim_hold=None):
        self.lrms = lrms
        self.commands = commands
        self.is_bulk = bulk        # (cmd, argv) -> the bulk status query
        self.is_resolve = resolve  # (cmd, argv) -> the accounting / history query
        self.ids = ids             # argv of a resolve call -> job ids asked
        self.config = config
        self.sim = sim
        self.sim_settings = sim_settings or {}
        self.sim_hold = sim_hold or {}  # job fields of a held job besides the generic flag


def _opt_ids(flag):
    def ids(argv):
        i = argv.index(flag) + 1 if flag in argv else len(argv)
        return argv[i].split(",") if i < len(argv) else []  # sge's `qacct ... -j` lists every job
    return ids


def _digit_args(argv):
    return [a for a in argv if a.isdigit()]


PROFILES = {
    "slurm": Profile("slurm", ("squeue", "sacct", "scontrol", "scancel", "sbatch"),
                     lambda c, a: c == "squeue" and not any(x.startswith("--name") for x in a),
                     lambda c, a: c in ("sacct", "scontrol"), _opt_ids("-j")),
    "pbs": Profile("pbs", ("qsub", "qstat", "qdel", "qhold", "qrls"),
                   lambda c, a: c == "qstat" and "-x" not in a, lambda c, a: c == "qstat" and "-x" in a,
                   _digit_args, sim="pbs", sim_settings={"flavour": "torque"}),
    "pbs-pro": Profile("pbs", ("qsub", "qstat", "qdel", "qhold", "qrls"),
                       lambda c, a: c == "qstat" and "-x" not in a, lambda c, a: c == "qstat" and "-x" in a,
                       _digit_args, config="pbs_pro=yes\n", sim="pbs", sim_settings={"flavour": "pro"}),
    "lsf": Profile("lsf", ("bsub", "bjobs", "bkill", "bstop", "bresume", "bhist"),
                   lambda c, a: c == "bjobs", lambda c, a: c == "bhist", _digit_args, sim="lsf",
                   sim_hold={"lsf_hold": "user"}),
    "condor": Profile("condor", ("condor_submit", "condor_q", "condor_history", "condor_rm", "condor_hold",
                                 "condor_release"),
                      lambda c, a: c == "condor_q", lambda c, a: c == "condor_history", _digit_args, sim="condor"),
    "sge": Profile("sge", ("qsub", "qstat", "qacct", "qdel", "qhold", "qrls"),
                   lambda c, a: c == "qstat" and "-xml" in a, lambda c, a: c == "qacct", _opt_ids("-j")),
}
FAKE_FIRST_ID = 1000001
RSS_GOAL_MB = 100
RSS_GOAL_JOBS = 10000


# --- batch systems -----------------------------------------------------------------------

def write_wrappers(bindir, calls_log, target, commands):
    """<lrms>_binpath scripts that run ``target(cmd)`` and log ``cmd start end rc argv...`` per call."""
    os.makedirs(bindir)
    for cmd in commands:
        path = os.path.join(bindir, cmd)
        with open(path, "w") as f:
            # $EPOCHREALTIME (bash 5): no extra fork to read the clock
            f.write('#!/bin/bash\nt0=$EPOCHREALTIME\n%s "$@"\nrc=$?\necho "%s $t0 $EPOCHREALTIME $rc $*" >> %s\n'
                    'exit $rc\n' % (target(cmd), cmd, shlex.quote(calls_log)))
        os.chmod(path, 0o755)


def fake_jobs(n, rng):
    """[id, start, end, exit, pending reason] rows (seconds from now) for fake_slurm.py.

    Mostly running and pending; 5 % finished but still in squeue (exit code from sacct only)
    and 5 % already purged from squeue (sacct only); about 1 % of the running ones finish
    during a 2-minute run.
    """
    jobs = []
    for i in range(n):
        r = rng.random()
        exit_code = rng.choice(["0:0"] * 8 + ["1:0", "0:9"])
        if r < 0.05:
            start, end = -7200, -rng.uniform(400, 3600)
        elif r < 0.10:
            start, end = -3600, -rng.uniform(10, 250)
        elif r < 0.70:
            start, end = -rng.uniform(60, 7200), rng.uniform(30, 7200)
        elif r < 0.99:
            start = rng.uniform(600, 7200)
            end = start + 3600
        else:
            start = end = None  # held
        reason = "JobHeldUser" if start is None else rng.choice(["Priority", "Resources"])
        jobs.append([str(FAKE_FIRST_ID + i), start, end, exit_code, reason])
    return jobs


def setup_fake(work, args, calls_log):
    now = time.time()
    jobs = fake_jobs(args.jobs, random.Random(args.seed))
    state = {"epoch": now, "min_job_age": 300, "jobs": jobs}
    path = os.path.join(work, "fake_slurm_state.json")
    with open(path, "w") as f:
        json.dump(state, f)
    fake = os.path.join(HERE, "fake_slurm")
    # -I -S: a bare, fast interpreter (the fake needs the standard library only)
    write_wrappers(os.path.join(work, "bin"), calls_log,
                   lambda cmd: "%s -I -S %s" % (shlex.quote(sys.executable), shlex.quote(os.path.join(fake, cmd))),
                   PROFILES["slurm"].commands)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BLAHPD_", "GLITE_", "SLURM_"))}
    env.update(FAKE_SLURM_STATE=path, FAKE_SLURM_DELAY=str(args.delay))
    counts = collections.Counter("finished" if r[2] is not None and r[2] < 0 else
                                 "pending" if r[1] is None or r[1] > 0 else "running" for r in jobs)
    return [r[0] for r in jobs], env, {"job_mix_at_start": dict(counts), "fake_delay_s": args.delay}


def setup_real(work, args, calls_log, cluster):
    """Start the cluster and submit the jobs; returns (batch ids, env, facts)."""
    t0 = time.monotonic()
    cluster.start()
    facts = {"cluster_start_s": round(time.monotonic() - t0, 1)}
    ids = []
    t0 = time.monotonic()
    for i in range(args.jobs):
        later = [] if i < args.real_finished else ["--begin=now+2hours"]  # pending for the whole run
        r = cluster.run(["sbatch", "--parsable"] + later + ["-o", "/dev/null", "--wrap", "true"], check=True)
        ids.append(r.stdout.strip().split(";")[0])
    facts["submit_s"] = round(time.monotonic() - t0, 1)
    facts["submit_per_s"] = round(args.jobs / facts["submit_s"], 1)
    facts["finished_jobs"] = args.real_finished
    write_wrappers(os.path.join(work, "bin"), calls_log, lambda cmd: "/usr/bin/" + cmd, PROFILES["slurm"].commands)
    env = {k: v for k, v in cluster.env.items() if not k.startswith(("BLAHPD_", "GLITE_"))}
    return ids, env, facts


def setup_sim(work, args, calls_log, profile):
    """A simulated system (conformance/sim) whose played jobs are put straight into its state."""
    sys.path.insert(0, ROOT)
    from conformance.sim import core
    state, simbin = os.path.join(work, "sim-state"), os.path.join(work, "sim-bin")
    settings = dict(profile.sim_settings, execute=False, queue_delay=0, keep_seconds=300, history=True)
    core.install(profile.sim, simbin, state, profile.commands, settings)
    rng = random.Random(args.seed)
    now = time.time()
    counts = collections.Counter()
    with core.locked_world(state) as w:
        for _ in range(args.jobs):
            r = rng.random()
            job = w.new_job("true\n", name="bench", cwd=work)
            job["played_exit"] = rng.choice([0] * 8 + [1, 3])
            if r < 0.10:  # finished: half still in the queue, half purged to history at the first tick
                end = now - (rng.uniform(400, 3600) if r < 0.05 else rng.uniform(10, 250))
                job.update(state="finished", start_time=end - 600, end_time=end, exit_status=job["played_exit"],
                           host="node01", submit_time=end - 700)
                counts["finished"] += 1
            elif r < 0.70:
                start = now - rng.uniform(60, 7200)
                job.update(state="running", start_time=start, host="node01", submit_time=start - 60,
                           run_seconds=now - start + rng.uniform(30, 7200))
                counts["running"] += 1
            elif r < 0.99:
                job["submit_time"] = now + rng.uniform(600, 7200)  # queued until then
                counts["pending"] += 1
            else:
                job["held"] = True
                job.update(profile.sim_hold)
                counts["held"] += 1
        ids = sorted(w.jobs, key=int)
    write_wrappers(os.path.join(work, "bin"), calls_log, lambda cmd: shlex.quote(os.path.join(simbin, cmd)),
                   profile.commands)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BLAHPD_", "GLITE_"))}
    return ids, env, {"job_mix_at_start": dict(counts)}


def setup_sge(work, args, calls_log, cell):
    """A private Grid Engine cell: held jobs (they stay pending) and a few that run and finish."""
    t0 = time.monotonic()
    cell.start()
    facts = {"cell_start_s": round(time.monotonic() - t0, 1)}
    ids = []
    t0 = time.monotonic()
    for i in range(args.jobs):
        hold = [] if i < args.real_finished else ["-h"]
        r = cell.run(["qsub", "-terse", "-b", "y", "-o", "/dev/null", "-e", "/dev/null"] + hold + ["/bin/true"],
                     check=True)
        ids.append(r.stdout.strip())
    facts["submit_s"] = round(time.monotonic() - t0, 1)
    facts["finished_jobs"] = args.real_finished
    write_wrappers(os.path.join(work, "bin"), calls_log, lambda cmd: "/usr/bin/" + cmd, PROFILES["sge"].commands)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BLAHPD_", "GLITE_"))}
    env.update(cell.env)
    return ids, env, facts


# --- the client --------------------------------------------------------------------------

class Client:
    """blahpd on pipes; one writer thread and one reader thread, so that neither side can
    block the other (the reader never writes: it queues ``RESULTS`` for the writer)."""

    def __init__(self, env, work):
        blahpd = os.path.join(os.path.dirname(sys.executable), "blahpd")
        self.stderr = open(os.path.join(work, "blahpd.stderr"), "wb")
        self.proc = subprocess.Popen([blahpd], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.stderr, env=env, cwd=work)
        self.lock = threading.Lock()
        self.replies = collections.deque()  # what each coming reply line answers, in order
        self.sent = {}                       # reqid -> (job, phase, first send time)
        self.retry = collections.deque()     # (job, phase, t0) refused with F
        self.done = []                       # (phase, latency, code, status, ad or error text, job)
        self.threads_limit = 0
        self.odd_replies = []
        self.next_reqid = 0
        self.outbox = queue.Queue()
        banner = self.proc.stdout.readline()
        assert banner.startswith(b"$GahpVersion"), banner
        threading.Thread(target=self._write, daemon=True).start()
        threading.Thread(target=self._read, daemon=True).start()
        self.outbox.put(("ASYNC_MODE_ON", "ASYNC_MODE_ON"))

    @property
    def outstanding(self):
        with self.lock:
            return len(self.sent) + len(self.retry)

    def status(self, job, phase, t0=None):
        with self.lock:
            self.next_reqid += 1
            reqid = str(self.next_reqid)
            self.sent[reqid] = (job, phase, time.monotonic() if t0 is None else t0)
        self.outbox.put((reqid, "BLAH_JOB_STATUS %s %s" % (reqid, job)))

    def resend_refused(self):
        with self.lock:
            todo, self.retry = list(self.retry), collections.deque()
        for job, phase, t0 in todo:
            self.status(job, phase, t0)

    def quit(self):
        self.outbox.put(("QUIT", "QUIT"))
        self.outbox.put(None)

    def _write(self):
        while True:
            item = self.outbox.get()
            if item is None:
                return
            tag, line = item
            with self.lock:
                self.replies.append(tag)
            self.proc.stdin.write(line.encode() + b"\r\n")
            self.proc.stdin.flush()

    def _read(self):
        expect = 0  # result lines still to come in the current RESULTS block
        for raw in self.proc.stdout:
            now = time.monotonic()
            line = raw.decode().rstrip("\r\n")
            with self.lock:
                if expect:
                    expect -= 1
                    row = read_argv(line)
                    job, phase, t0 = self.sent.pop(row[0])
                    self.done.append((phase, now - t0, row[1], row[3], row[2] if row[1] != "0" else row[4], job))
                elif line == "R":
                    self.outbox.put(("RESULTS", "RESULTS"))
                else:
                    tag = self.replies.popleft()
                    if tag == "RESULTS":
                        expect = int(line.split()[1])
                    elif tag in ("ASYNC_MODE_ON", "QUIT"):
                        pass
                    elif line.startswith("F"):
                        self.threads_limit += 1
                        self.retry.append(self.sent.pop(tag))
                    elif line != "S":
                        self.odd_replies.append(line)
                        self.sent.pop(tag)

    def memory(self):
        mem = {}
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("VmHWM", "VmRSS"):
                    mem[key] = int(value.split()[0]) / 1024.0  # kB -> MB
        return mem


def wait_until(cond, timeout, step=0.005):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(step)
    return True


def drive(client, jobs, args, rng):
    """Warm-up (every job once), then the steady probe with bursts; returns phase timings."""
    timings = {}
    t0 = time.monotonic()
    if not args.no_warmup:
        for job in jobs:
            wait_until(lambda: client.outstanding < args.warmup_in_flight, 600)
            client.resend_refused()
            client.status(job, "warmup")
        while client.outstanding:
            client.resend_refused()
            if not wait_until(lambda: not client.sent, 300):
                break
        timings["warmup_s"] = round(time.monotonic() - t0, 2)
    start = time.monotonic()
    next_probe, next_burst, i = start, start + args.burst_every, 0
    while True:
        now = time.monotonic()
        if now >= start + args.duration:
            break
        client.resend_refused()
        if now >= next_burst:
            for job in rng.sample(jobs, min(args.burst_size, len(jobs))):
                client.status(job, "burst")
            next_burst += args.burst_every
        if now >= next_probe:
            client.status(jobs[i % len(jobs)], "probe")
            i += 1
            next_probe += 1.0 / args.rate
        time.sleep(max(0.0, min(next_probe, next_burst, start + args.duration) - time.monotonic()))
    # the server's own limit is pyblahp_command_timeout + 10 s per request
    while client.outstanding and wait_until(lambda: not client.sent, 90):
        client.resend_refused()
    timings["steady_s"] = round(time.monotonic() - start, 2)
    timings["total_s"] = round(time.monotonic() - t0, 2)
    return timings


# --- report ------------------------------------------------------------------------------

def pct(values, p):
    if not values:
        return None
    s = sorted(values)  # nearest rank
    return s[max(0, math.ceil(p / 100.0 * len(s)) - 1)]


def latency_stats(lat):
    ms = [x * 1000 for x in lat]
    return {"n": len(ms), "p50_ms": pct(ms, 50), "p95_ms": pct(ms, 95), "p99_ms": pct(ms, 99),
            "max_ms": max(ms) if ms else None}


def read_calls(path):
    calls = collections.defaultdict(list)  # cmd -> [(start, end, rc, argv)]
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                cmd, start, end, rc, *argv = line.split()
                calls[cmd].append((float(start), float(end), int(rc), argv))
    for v in calls.values():
        v.sort()
    return calls


def call_stats(calls, minutes, ttl_min, profile):
    """Bulk and accounting calls per cycle; a cycle starts at each bulk query."""
    every = sorted((c[0], cmd, c[3]) for cmd, v in calls.items() for c in v)
    bulk = [t for t, cmd, argv in every if profile.is_bulk(cmd, argv)]
    acct = [(t, argv) for t, cmd, argv in every if profile.is_resolve(cmd, argv)]
    gaps = [b - a for a, b in zip(bulk, bulk[1:])]
    per_cycle = collections.Counter(bisect.bisect_right(bulk, t) for t, _ in acct)
    out = {"minutes": round(minutes, 3), "cycle_s": statistics.median(gaps) if gaps else None,
           "bulk_calls": len(bulk), "accounting_calls": len(acct),
           "min_bulk_gap_s": min(gaps) if gaps else None,
           # two bulk calls closer than the shortest possible cycle = two queries in one cycle
           "bulk_too_close": sum(1 for g in gaps if g < 0.9 * ttl_min),
           "max_accounting_per_cycle": max(per_cycle.values()) if per_cycle else 0,
           "accounting_before_first_bulk": per_cycle.get(0, 0)}
    # how many job ids each accounting call asks for, and how often the same id is asked again
    ids = [profile.ids(argv) for _, argv in acct]
    ids = [chunk for chunk in ids if chunk]
    flat = [i for chunk in ids for i in chunk]
    out["accounting_ids"] = {"total": len(flat), "distinct": len(set(flat)),
                             "per_call_median": statistics.median(map(len, ids)) if ids else None,
                             "per_call_max": max(map(len, ids)) if ids else None}
    for cmd in profile.commands:
        c = calls.get(cmd, [])
        out[cmd] = {"calls": len(c), "per_minute": round(len(c) / minutes, 2) if minutes else None,
                    "failed": sum(1 for x in c if x[2] != 0),
                    "median_s": round(statistics.median([x[1] - x[0] for x in c]), 3) if c else None,
                    "max_s": round(max(x[1] - x[0] for x in c), 3) if c else None}
    return out


def report(args, mode, facts, timings, client, mem, calls, minutes, profile):
    rows = client.done
    steady = [r for r in rows if r[0] != "warmup"]
    errors = [r for r in rows if r[2] != "0"]
    cs = call_stats(calls, minutes, args.ttl_min, profile)
    cycle = cs["cycle_s"] or args.ttl_min
    st = latency_stats([r[1] for r in steady])
    peak = mem.get("VmHWM")
    goals = {
        "bulk_at_most_one_per_cycle": cs["bulk_too_close"] == 0 and cs["bulk_calls"] > 0,
        "accounting_at_most_one_per_cycle": cs["max_accounting_per_cycle"] <= 1,
        "p99_under_one_cycle": st["p99_ms"] is not None and st["p99_ms"] < cycle * 1000,
        "rss_under_100mb_at_10000": (peak < RSS_GOAL_MB) if args.jobs >= RSS_GOAL_JOBS else "not evaluated (jobs < 10000)",
    }
    result = {
        "system": args.system, "mode": mode, "jobs": args.jobs, "duration_s": args.duration, "rate_per_s": args.rate,
        "burst": {"size": args.burst_size, "every_s": args.burst_every},
        "config": {"pyblahp_status_ttl_min": args.ttl_min, "pyblahp_status_ttl_max": args.ttl_max},
        "setup": facts, "timings": timings,
        "requests_sent": client.next_reqid, "results_received": len(rows),
        "jobs_answered": len({r[5] for r in rows}),
        "error_results": len(errors), "error_examples": sorted({r[4] for r in errors})[:5],
        "threads_limit_refusals": client.threads_limit, "odd_replies": client.odd_replies[:5],
        "unanswered": len(client.sent) + len(client.retry),
        "answers_by_status": dict(collections.Counter(r[3] for r in rows if r[2] == "0")),
        "not_yet_visible_answers": sum(1 for r in rows if "not yet visible" in r[4]),
        "latency_steady": st,
        "latency_probe": latency_stats([r[1] for r in rows if r[0] == "probe"]),
        "latency_burst": latency_stats([r[1] for r in rows if r[0] == "burst"]),
        "latency_warmup": latency_stats([r[1] for r in rows if r[0] == "warmup"]),
        "batch_commands": cs,
        "peak_rss_mb": round(peak, 1) if peak else None,
        "final_rss_mb": round(mem["VmRSS"], 1) if "VmRSS" in mem else None,
        "goals": goals,
        "pass": all(v is True or isinstance(v, str) for v in goals.values()),
    }
    return result


def print_report(r, profile):
    c = r["batch_commands"]
    f = lambda v: "-" if v is None else ("%.1f" % v if isinstance(v, float) else str(v))  # noqa: E731
    lines = [
        "status_load: %s %s, %d jobs, %g s steady at %g/s + %d every %g s" % (
            r["system"], r["mode"], r["jobs"], r["duration_s"], r["rate_per_s"], r["burst"]["size"], r["burst"]["every_s"]),
        "  setup %s; timings %s" % (r["setup"], r["timings"]),
        "  requests %d, results %d (jobs %d), errors %d, F refusals %d, unanswered %d, by status %s, 'not yet visible' %d" % (
            r["requests_sent"], r["results_received"], r["jobs_answered"], r["error_results"], r["threads_limit_refusals"],
            r["unanswered"], r["answers_by_status"], r["not_yet_visible_answers"]),
    ]
    for name in ("steady", "probe", "burst", "warmup"):
        s = r["latency_" + name]
        lines.append("  latency %-6s n=%-6d p50 %s ms  p95 %s ms  p99 %s ms  max %s ms" % (
            name, s["n"], f(s["p50_ms"]), f(s["p95_ms"]), f(s["p99_ms"]), f(s["max_ms"])))
    for cmd in profile.commands:
        if c[cmd]["calls"]:
            lines.append("  %-14s %5d calls  %6.2f/min  failed %d  median %s s  max %s s" % (
                cmd, c[cmd]["calls"], c[cmd]["per_minute"], c[cmd]["failed"], c[cmd]["median_s"], c[cmd]["max_s"]))
    lines.append("  cycle (median gap between bulk queries) %s s, min gap %s s, bulk pairs closer than "
                 "0.9*ttl_min: %d, max accounting calls per cycle %d (before the first bulk query: %d), "
                 "over %.2f min" % (f(c["cycle_s"]), f(c["min_bulk_gap_s"]), c["bulk_too_close"],
                                    c["max_accounting_per_cycle"], c["accounting_before_first_bulk"], c["minutes"]))
    lines.append("  accounting job ids: %(total)d asked, %(distinct)d distinct, per call median "
                 "%(per_call_median)s max %(per_call_max)s" % c["accounting_ids"])
    lines.append("  peak RSS %s MB (final %s MB)" % (f(r["peak_rss_mb"]), f(r["final_rss_mb"])))
    for k, v in r["goals"].items():
        lines.append("  %-32s %s" % (k, v if isinstance(v, str) else ("PASS" if v else "FAIL")))
    lines.append("  overall: %s" % ("PASS" if r["pass"] else "FAIL"))
    print("\n".join(lines))


# --- main --------------------------------------------------------------------------------

def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--fake", action="store_true", help="fake or simulated batch system (default)")
    mode.add_argument("--real", "--real-slurm", dest="real", action="store_true",
                      help="slurm: a private Slurm cluster (tests/clusters); sge is always real")
    p.add_argument("--system", choices=sorted(PROFILES), default="slurm")
    p.add_argument("--jobs", type=int, default=1000)
    p.add_argument("--duration", type=float, default=120.0, help="steady phase, seconds")
    p.add_argument("--rate", type=float, default=5.0, help="probes per second (GRIDMANAGER_JOB_PROBE_RATE)")
    p.add_argument("--burst-size", type=int, default=50)
    p.add_argument("--burst-every", type=float, default=30.0)
    p.add_argument("--warmup-in-flight", type=int, default=40, help="below blah_max_threaded_cmds (50)")
    p.add_argument("--no-warmup", action="store_true", help="do not ask every job once first")
    p.add_argument("--ttl-min", type=float, default=10.0, help="pyblahp_status_ttl_min")
    p.add_argument("--ttl-max", type=float, default=300.0, help="pyblahp_status_ttl_max")
    p.add_argument("--delay", type=float, default=0.0, help="fake: seconds added to each squeue/sacct")
    p.add_argument("--real-finished", type=int, default=10, help="real: jobs submitted to run at once")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", help="JSON file (default bench/results/status_load-<system>-<mode>-<jobs>.json)")
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs, call log)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    profile = PROFILES[args.system]
    mode = "real" if args.real or args.system == "sge" else "fake"
    # /tmp: the cluster's unix socket paths must stay short
    work = tempfile.mkdtemp(prefix="pyblahp-status-load-", dir="/tmp")
    calls_log = os.path.join(work, "calls.log")
    cluster = None
    client = None
    try:
        if args.system == "slurm" and mode == "real":
            sys.path.insert(0, ROOT)
            from tests.clusters.slurm import SlurmCluster
            cluster = SlurmCluster(os.path.join(work, "slurm"))
            ids, env, facts = setup_real(work, args, calls_log, cluster)
        elif args.system == "slurm":
            ids, env, facts = setup_fake(work, args, calls_log)
        elif args.system == "sge":
            sys.path.insert(0, ROOT)
            from tests.clusters.sge import SgeCell
            # the qmaster runs as sgeadmin: its directory must be reachable, the work dir is 0700
            sge_dir = tempfile.mkdtemp(prefix="pyblahp-sge-", dir="/tmp")
            os.chmod(sge_dir, 0o755)
            cluster = SgeCell(sge_dir)
            ids, env, facts = setup_sge(work, args, calls_log, cluster)
        else:
            ids, env, facts = setup_sim(work, args, calls_log, profile)
        home = os.path.join(work, "home")
        os.makedirs(home)
        cfg = os.path.join(home, "blah.config")
        with open(cfg, "w") as f:
            f.write("supported_lrms=%s\n%s_binpath=%s\npyblahp_status_ttl_min=%g\npyblahp_status_ttl_max=%g\n%s"
                    % (profile.lrms, profile.lrms, os.path.join(work, "bin"), args.ttl_min, args.ttl_max,
                       profile.config))
        env.update(HOME=home, BLAHPD_CONFIG_LOCATION=cfg)
        stamp = time.strftime("%Y%m%d%H%M%S" if profile.lrms == "sge" else "%Y%m%d")
        jobs = ["condor/%s//" % i if profile.lrms == "condor" else "%s/%s/%s" % (profile.lrms, stamp, i)
                for i in ids]
        # only calls made while blahpd runs count (not our own submissions)
        if os.path.exists(calls_log):
            os.unlink(calls_log)
        t_start = time.time()
        client = Client(env, work)
        timings = drive(client, jobs, args, random.Random(args.seed))
        mem = client.memory()
        minutes = (time.time() - t_start) / 60.0
        client.quit()
        client.proc.wait(30)
        result = report(args, mode, facts, timings, client, mem, read_calls(calls_log), minutes, profile)
        result["work_dir"] = work if args.keep else None
    finally:
        if client is not None and client.proc.poll() is None:
            client.proc.kill()
            client.proc.wait()
        if cluster is not None:
            cluster.stop()
            if args.system == "sge" and not args.keep:
                shutil.rmtree(cluster.directory, ignore_errors=True)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print_report(result, profile)
    out = args.out or os.path.join(HERE, "results", "status_load-%s-%s-%d.json" % (args.system, mode, args.jobs))
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump(result, f, indent=1, sort_keys=True)
    print("  written to %s" % os.path.relpath(out))
    return 0 if result["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
