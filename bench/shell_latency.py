"""gahp-shell in a pseudo-terminal against the local blahpd: start to first prompt, and the
round trip of a typed synchronous command (``version``) from Enter to the next prompt.

    python bench/shell_latency.py [--rounds 5] [--commands 20] [--json FILE]

Uses pexpect (a test dependency) with its send delay off, a private HOME and no history file.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

import pexpect

PROMPT = "gahp> "


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--commands", type=int, default=20)
    p.add_argument("--json")
    a = p.parse_args()
    home = tempfile.mkdtemp(prefix="gsh-bench-")
    cfg = os.path.join(home, "blah.config")
    with open(cfg, "w") as f:
        f.write("supported_lrms=local\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HOME=home, BLAHPD_CONFIG_LOCATION=cfg, TERM="xterm", NO_COLOR="1")
    starts, trips = [], []
    try:
        measure(a, env, home, starts, trips)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    result = {"start_to_prompt_ms_median": round(1000 * statistics.median(starts), 1),
              "version_round_trip_ms_median": round(1000 * statistics.median(trips), 2),
              "version_round_trip_ms_p95": round(1000 * sorted(trips)[int(0.95 * (len(trips) - 1))], 2),
              "rounds": a.rounds, "commands": len(trips)}
    print(json.dumps(result, indent=2))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


def measure(a, env, home, starts, trips):
    for _ in range(a.rounds):
        t0 = time.monotonic()
        child = pexpect.spawn(sys.executable, ["-m", "gahp.shell.cli", "--history", ""], env=env, cwd=home,
                              encoding="utf-8", timeout=30)
        child.delaybeforesend = None
        child.expect_exact(PROMPT)
        starts.append(time.monotonic() - t0)
        for _ in range(a.commands):
            t1 = time.monotonic()
            child.sendline("version")
            child.expect_exact("S $GahpVersion")
            child.expect_exact(PROMPT)
            trips.append(time.monotonic() - t1)
        child.sendline("exit")
        child.expect(pexpect.EOF)
        child.close()


if __name__ == "__main__":
    sys.exit(main())
