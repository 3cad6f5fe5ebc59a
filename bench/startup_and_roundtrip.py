"""Start-up latency and sequential round-trip rate of a GAHP server.

    python bench/startup_and_roundtrip.py [--runs 20] [--roundtrips 20000] [--json FILE] [-- CMD...]

exec->banner: from fork/exec until the banner line is read.
exec->first reply: the gridmanager's view, COMMANDS sent as soon as the banner arrives,
until its reply is read.
round trips/s: sequential request/reply pairs (``VERSION``, then ``RESULTS``), one at a time,
as the gridmanager's reader does them.

Goals (issue 2): first reply within 150 ms of exec on a 2-core machine; >= 20,000 round trips/s.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def default_command():
    script = os.path.join(os.path.dirname(sys.executable), "blahpd")
    return [script] if os.path.exists(script) else [sys.executable, "-m", "blahp"]


def read_line(fd, buf):
    while b"\n" not in buf:
        chunk = os.read(fd, 65536)
        if not chunk:
            raise RuntimeError("server closed its output")
        buf += chunk
    line, _, rest = buf.partition(b"\n")
    return line, rest


def start(cmd, env):
    return subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, bufsize=0)


def one_start(cmd, env):
    t0 = time.perf_counter()
    p = start(cmd, env)
    fd = p.stdout.fileno()
    line, buf = read_line(fd, b"")
    t_banner = time.perf_counter() - t0
    os.write(p.stdin.fileno(), b"COMMANDS\r\n")
    line, buf = read_line(fd, buf)
    t_first = time.perf_counter() - t0
    p.stdin.close()
    p.wait(timeout=30)
    return t_banner, t_first


def roundtrips(cmd, env, n):
    p = start(cmd, env)
    fd_in, fd_out = p.stdin.fileno(), p.stdout.fileno()
    _, buf = read_line(fd_out, b"")
    # warm up (and make sure the async runtime, not the start-up loop, is serving)
    os.write(fd_in, b"BLAH_PING 1 local\r\n")
    _, buf = read_line(fd_out, buf)
    time.sleep(0.5)
    reqs = (b"VERSION\r\n", b"RESULTS\r\n")
    t0 = time.perf_counter()
    for i in range(n):
        os.write(fd_in, reqs[i & 1])
        _, buf = read_line(fd_out, buf)
    dt = time.perf_counter() - t0
    p.stdin.close()
    p.wait(timeout=30)
    return n / dt


def pct(values, q):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--roundtrips", type=int, default=20000)
    ap.add_argument("--json")
    ap.add_argument("cmd", nargs="*")
    args = ap.parse_args()
    cmd = args.cmd or default_command()
    home = tempfile.mkdtemp(prefix="pyblahp-bench-")
    cfg = os.path.join(home, "blah.config")
    with open(cfg, "w") as f:
        f.write("# bench\n")
    env = dict(os.environ, HOME=home, BLAHPD_CONFIG_LOCATION=cfg)
    try:
        one_start(cmd, env)  # warm the page cache and .pyc files
        starts = [one_start(cmd, env) for _ in range(args.runs)]
        banner = [s[0] * 1000 for s in starts]
        first = [s[1] * 1000 for s in starts]
        rates = [roundtrips(cmd, env, args.roundtrips) for _ in range(3)]
    finally:
        shutil.rmtree(home, ignore_errors=True)
    result = {
        "command": cmd, "cpus": os.cpu_count(), "runs": args.runs,
        "exec_to_banner_ms": {"median": statistics.median(banner), "p90": pct(banner, 0.9), "max": max(banner)},
        "exec_to_first_reply_ms": {"median": statistics.median(first), "p90": pct(first, 0.9), "max": max(first)},
        "roundtrips_per_s": {"median": statistics.median(rates), "min": min(rates), "n": args.roundtrips},
    }
    print("command            %s" % " ".join(cmd))
    print("exec -> banner      median %6.1f ms  p90 %6.1f ms  max %6.1f ms" % tuple(result["exec_to_banner_ms"].values()))
    print("exec -> 1st reply   median %6.1f ms  p90 %6.1f ms  max %6.1f ms   (goal < 150 ms)" %
          tuple(result["exec_to_first_reply_ms"].values()))
    print("round trips/s       median %8.0f   min %8.0f   (goal >= 20000)" %
          (result["roundtrips_per_s"]["median"], result["roundtrips_per_s"]["min"]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
