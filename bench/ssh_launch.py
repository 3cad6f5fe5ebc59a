"""Launch-to-first-reply time of a GAHP reached through SSH: gahp-ssh against plain OpenSSH.

    python bench/ssh_launch.py [--rounds 5] [--warm 5] [--json FILE]

Needs root (a private sshd on 127.0.0.1 and the test user blahtest, tests/clusters/sshd.py).
pyblahp is installed into blahtest's home with blahp-bootstrap (the zipapp, the local backend),
then each launch runs what the gridmanager runs, ``<launcher> blahtest@127.0.0.1:PORT blahpd``,
sends COMMANDS as soon as the banner arrives and stops at its reply:

- cold: gahp-ssh with no master running (spawns one, connects, authenticates, opens a channel);
- warm: gahp-ssh while the master of the previous launch is up (one channel on its connection);
- no-share: gahp-ssh --no-share (its own connection every time);
- openssh: remote_gahp's own command line, ``ssh -o BatchMode=yes ... /bin/bash -l -c '...'``.

The goal (issue 7): a warm launch under 50 ms to the first reply.  The sshd log tells how many
TCP connections the warm launches opened (they must open none).
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tests.clusters.sshd import Sshd, ensure_test_user  # noqa: E402
from tests.ssh_helpers import master_pids  # noqa: E402


def first_reply(argv, env):
    """Seconds from exec to the banner and to the COMMANDS reply."""
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    banner = p.stdout.readline()
    t_banner = time.perf_counter() - t0
    p.stdin.write(b"COMMANDS\r\n")
    p.stdin.flush()
    reply = p.stdout.readline()
    t_reply = time.perf_counter() - t0
    p.stdin.write(b"QUIT\r\n")
    p.stdin.flush()
    p.stdin.close()
    p.wait(timeout=30)
    err = p.stderr.read().decode("utf-8", "replace")
    if not banner.startswith(b"$GahpVersion") or not reply.startswith(b"S "):
        raise SystemExit("bad exchange through %s:\nbanner %r\nreply %r\nstderr %s" % (argv[0], banner, reply, err))
    return t_banner, t_reply


def stop_masters(home):
    for pid in master_pids(home):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while master_pids(home) and time.monotonic() < deadline:
        time.sleep(0.05)


def summary(samples):
    ms = sorted(1000 * s for s in samples)
    return {"n": len(ms), "median_ms": round(statistics.median(ms), 1), "min_ms": round(ms[0], 1),
            "max_ms": round(ms[-1], 1)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5, help="cold launches (each followed by --warm warm ones)")
    ap.add_argument("--warm", type=int, default=5)
    ap.add_argument("--json", help="write the figures here too")
    a = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root: it starts a private sshd and logs in as the test user blahtest")
    ensure_test_user()
    server = Sshd(tempfile.mkdtemp(prefix="pyblahp-sshd-bench-", dir="/tmp"))
    server.start()
    home = tempfile.mkdtemp(prefix="gsh-bench-", dir="/tmp")
    base = "bosco-bench-%s" % secrets.token_hex(3)
    env = dict(os.environ, HOME=home)
    env.pop("SSH_AUTH_SOCK", None)
    target = "%s@%s:%d" % (server.user, server.host, server.port)
    common = ["--rgahp-key", server.client_key, "--known-hosts", server.known_hosts, "--ssh-config", "none"]
    try:
        subprocess.run([sys.executable, "-m", "blahp.remote_install"] + common + ["-b", base, target, "local"],
                       check=True, stdout=subprocess.DEVNULL, env=env)
        glite = "~/%s/glite" % base
        gahp_ssh = [sys.executable, "-m", "gahp.ssh.launcher"] + common + ["--rgahp-glite", glite, target, "blahpd"]
        inner = "BLAHPD_LOCATION=%s GLITE_LOCATION=%s %s/bin/blahpd" % (glite, glite, glite)
        openssh = server.ssh_argv("/bin/bash -l -c %s" % shlex.quote(inner))
        first_reply(openssh, env)  # the remote side's first start byte-compiles nothing, but warms caches
        figures = {"cold": ([], []), "warm": ([], []), "no-share": ([], []), "openssh": ([], [])}
        warm_connections = 0
        for _ in range(a.rounds):
            stop_masters(home)
            for kind, argv in (("openssh", openssh), ("no-share", gahp_ssh[:3] + ["--no-share"] + gahp_ssh[3:])):
                b, r = first_reply(argv, env)
                figures[kind][0].append(b)
                figures[kind][1].append(r)
            b, r = first_reply(gahp_ssh, env)
            figures["cold"][0].append(b)
            figures["cold"][1].append(r)
            mark = server.log_mark()
            for _ in range(a.warm):
                b, r = first_reply(gahp_ssh, env)
                figures["warm"][0].append(b)
                figures["warm"][1].append(r)
            warm_connections += server.count_connections(since=mark)
        result = {kind: {"to_banner": summary(b), "to_first_reply": summary(r)} for kind, (b, r) in figures.items()}
        result["warm_launches_new_connections"] = warm_connections
        print("launch -> first reply (COMMANDS), through a private sshd on 127.0.0.1, %d cold / %d warm launches"
              % (a.rounds, a.rounds * a.warm))
        for kind in ("cold", "warm", "no-share", "openssh"):
            f = result[kind]
            print("  %-9s banner median %6.1f ms   first reply median %6.1f ms (min %.1f, max %.1f)" % (
                kind, f["to_banner"]["median_ms"], f["to_first_reply"]["median_ms"],
                f["to_first_reply"]["min_ms"], f["to_first_reply"]["max_ms"]))
        print("  new TCP connections during the warm launches: %d" % warm_connections)
        print("  goal: warm first reply < 50 ms -> %s" % (
            "met" if result["warm"]["to_first_reply"]["median_ms"] < 50 else "NOT met"))
        if a.json:
            with open(a.json, "w") as f:
                json.dump(result, f, indent=2)
    finally:
        stop_masters(home)
        subprocess.run([sys.executable, "-m", "blahp.remote_install"] + common + ["-b", base, "--remove", target],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        server.stop()
        subprocess.run(["rm", "-rf", home])


if __name__ == "__main__":
    main()
