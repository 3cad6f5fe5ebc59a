"""A deliberately broken GAHP server: a filter between a real server and the runner.

    python -m conformance.broken MODE -- blahpd [args]

It relays stdin unchanged and damages stdout in one way, so the harness can show it catches
each kind of damage the gridmanager would die of.  Modes:

``drop-cr``       every line after the banner ends in LF alone
``short-field``   result lines (those after ``S <n>``) lose their last field
``double-space``  the first space of every result line is doubled (an empty field)
``extra-r``       every ``R`` line is written twice
``slow``          the return line of every request after the first two comes 21 s late
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time

MODES = ("drop-cr", "short-field", "double-space", "extra-r", "slow")


def damage(mode: str, lines, write) -> None:
    in_results = 0
    for n, line in enumerate(lines):
        body = line[:-2] if line.endswith(b"\r\n") else line.rstrip(b"\n")
        is_result = in_results > 0
        if is_result:
            in_results -= 1
        m = re.match(rb"S ([0-9]+)$", body)
        if m:
            in_results = int(m.group(1))
        if n == 0:
            write(line)
            continue
        if mode == "drop-cr":
            write(body + b"\n")
        elif mode == "short-field" and is_result:
            fields = re.findall(rb"(?:[^ \\]|\\.)+", body)
            write(b" ".join(fields[:-1]) + b"\r\n")
        elif mode == "double-space" and is_result:
            write(body.replace(b" ", b"  ", 1) + b"\r\n")
        elif mode == "extra-r" and body == b"R":
            write(line + line)
        elif mode == "slow" and n > 2 and body != b"R" and not is_result:
            time.sleep(float(os.environ.get("GAHP_BROKEN_DELAY", "21")))
            write(line)
        else:
            write(line)


def main(argv=None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 3 or args[0] not in MODES or args[1] != "--":
        print("usage: python -m conformance.broken {%s} -- SERVER [ARGS]" % ",".join(MODES), file=sys.stderr)
        return 2
    mode, server = args[0], args[2:]
    proc = subprocess.Popen(server, stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def relay_in() -> None:
        try:
            for chunk in iter(lambda: os.read(0, 65536), b""):
                proc.stdin.write(chunk)
                proc.stdin.flush()
        except OSError:
            pass
        finally:
            try:
                proc.stdin.close()
            except OSError:
                pass

    threading.Thread(target=relay_in, daemon=True).start()
    out = sys.stdout.buffer

    def write(data: bytes) -> None:
        out.write(data)
        out.flush()
    damage(mode, iter(proc.stdout.readline, b""), write)
    return proc.wait()


if __name__ == "__main__":
    sys.exit(main())
