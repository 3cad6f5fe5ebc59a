"""What the runner prints, and its JUnit XML."""
from __future__ import annotations

import socket
import sys
import time
import xml.etree.ElementTree as ET
from typing import IO, List

from conformance.replay import Outcome
from conformance.server import visible

LABEL = {"passed": "PASS", "failed": "FAIL", "skipped": "SKIP", "error": "ERROR"}


def progress(o: Outcome, args) -> None:
    line = "%-5s %s" % (LABEL[o.status], o.session.name)
    verbose = getattr(args, "verbose", False)
    if o.status == "skipped":
        line += ": " + o.reason
    elif verbose:
        line += " (%.1f s, %d steps)" % (o.seconds, o.steps)
    else:
        line += " (%.1f s)" % o.seconds
    print(line, flush=True)
    if o.status in ("failed", "error"):
        for f in o.failures:
            print("      " + f.replace("\n", "\n      "))
        if o.session.deviations:
            print("      (this session marks a deliberate difference from the C blahp: %s)" % "; ".join(o.session.deviations))
        if verbose and o.transcript is not None:
            print("      whole exchange:")
            for t, k, d in o.transcript.events:
                print("      %8.3f %s %s" % (t, k, visible(d)))
        if o.stderr:
            print("      server stderr (last lines):")
            for ln in o.stderr[-5:]:
                print("        " + visible(ln))
    sys.stdout.flush()


def summary(outcomes: List[Outcome], elapsed: float, args, out: IO[str]) -> None:
    counts = {k: sum(1 for o in outcomes if o.status == k) for k in LABEL}
    out.write("\n%d sessions: %d passed, %d failed, %d skipped, %d errors in %.1f s\n" % (
        len(outcomes), counts["passed"], counts["failed"], counts["skipped"], counts["error"], elapsed))
    bad = [o for o in outcomes if o.status in ("failed", "error")]
    if bad:
        out.write("failed: %s\n" % " ".join(o.session.name for o in bad))
    if counts["skipped"] and getattr(args, "require_all", False):
        out.write("skipped (counted as failures, --require-all): %s\n"
                  % " ".join(o.session.name for o in outcomes if o.status == "skipped"))


def write_junit(outcomes: List[Outcome], elapsed: float, path: str, server: str) -> None:
    suite = ET.Element("testsuite", {
        "name": "gahp-conformance", "tests": str(len(outcomes)),
        "failures": str(sum(o.status == "failed" for o in outcomes)),
        "errors": str(sum(o.status == "error" for o in outcomes)),
        "skipped": str(sum(o.status == "skipped" for o in outcomes)),
        "time": "%.3f" % elapsed, "hostname": socket.gethostname(),
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())})
    props = ET.SubElement(suite, "properties")
    ET.SubElement(props, "property", {"name": "server", "value": server})
    for o in outcomes:
        group, _, name = o.session.name.rpartition("/")
        case = ET.SubElement(suite, "testcase", {"classname": "gahp." + (group.replace("/", ".") or "sessions"),
                                                 "name": name, "file": o.session.path, "time": "%.3f" % o.seconds})
        if o.status == "skipped":
            ET.SubElement(case, "skipped", {"message": o.reason})
        elif o.status in ("failed", "error"):
            el = ET.SubElement(case, "failure" if o.status == "failed" else "error",
                               {"message": o.failures[0].split("\n")[0] if o.failures else o.status})
            el.text = _xml_text("\n\n".join(o.failures))
        if o.transcript is not None and o.status != "skipped":
            out = ET.SubElement(case, "system-out")
            out.text = _xml_text("\n".join("%8.3f %s %s" % (t, k, visible(d)) for t, k, d in o.transcript.events))
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)


def _xml_text(text: str) -> str:
    """XML 1.0 cannot carry most control characters (``visible`` already escaped the wire's)."""
    return "".join(c if c in "\t\n" or ord(c) >= 0x20 else "\\x%02x" % ord(c) for c in text)
