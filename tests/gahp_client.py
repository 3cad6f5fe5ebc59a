"""A gridmanager-like client for the lifecycle tests: the installed blahpd on pipes, driven by
gahp-shell's client (async mode, R answered with RESULTS), with the tests' own checks: every line
ends in CRLF, every request is accepted with ``S``."""
import os
import time

from blahp.classad import parse_ad
from gahp.shell.client import CAPTURE, GahpError, ServerDied, ShellClient
from tests.conftest import blahpd_command


class GahpClient(ShellClient):
    def __init__(self, env, args=(), cwd=None):
        super().__init__(blahpd_command() + list(args), env=env, cwd=cwd, reply_timeout=30, stderr=CAPTURE,
                         first_id=101, strict=True)
        assert ("<", "S Async\\ mode\\ on") in self.transcript, self.transcript

    def _died(self, waiting_for):
        e = super()._died(waiting_for)
        tail = self.stderr_tail(20)
        return ServerDied("%s; blahpd's stderr: %s" % (e, " | ".join(tail) or "(nothing)"), e.status)

    def received(self):
        """Every line blahpd wrote, as on the wire (CRLF included: strict mode checked it)."""
        return [line + "\r\n" for kind, line in self.transcript if kind == "<"]

    def start(self, name, *args):
        request = self.maker.request(name, args)
        reply = self.send(request)
        assert reply == "S", (name, reply)
        return request.reqid

    def wait(self, reqid, timeout=120, command=None):
        return super().wait(reqid, timeout, command)

    def call(self, name, *args, timeout=120):
        return self.wait(self.start(name, *args), timeout)

    # -- BLAH conveniences ---------------------------------------------------------------
    def submit(self, ad_text, timeout=240):
        row = self.call("BLAH_JOB_SUBMIT", ad_text, timeout=timeout)
        assert len(row) == 4, row
        return row

    def status(self, job_id, timeout=120):
        row = self.call("BLAH_JOB_STATUS", job_id, timeout=timeout)
        assert len(row) == 5, row
        ad = parse_ad(row[4]) if row[4] != "N/A" else None
        if ad is not None:
            assert ad.evaluate("JobStatus") == int(row[3]), row
        return row, ad

    def wait_status(self, job_id, wanted, timeout=90, interval=0.5):
        """Poll until the status is in ``wanted``; every reply must be a well-formed success."""
        deadline = time.time() + timeout
        seen = []
        while True:
            row, ad = self.status(job_id)
            if row[1] != "0":
                raise AssertionError("status error for %s: %s" % (job_id, row))
            st = int(row[3])
            if not seen or seen[-1] != st:
                seen.append(st)
            if st in wanted:
                return ad, seen
            if time.time() > deadline:
                raise TimeoutError("%s still in %s (history %s; last %s)" % (job_id, st, seen, row))
            time.sleep(interval)

    def wait_vanished(self, job_id, timeout=60, interval=0.5):
        """Poll a job the batch system does not know until the status is an error (the vanished
        ladder gave up): IDLE ("not yet visible") meanwhile, never COMPLETED."""
        deadline = time.time() + timeout
        while True:
            row = self.call("BLAH_JOB_STATUS", job_id)
            assert row[1:4] != ["0", "No Error", "4"], "completion reported without a record: %s" % row
            if row[1] != "0":
                return row
            assert row[3] == "1", row
            assert time.time() < deadline, row
            time.sleep(interval)

    def close(self, timeout=30):
        """QUIT (the gridmanager's goodbye), then wait for the exit status."""
        if self.alive:
            try:
                self.sync("QUIT")
            except GahpError:
                pass
        return super().close(timeout)


def ad(**attrs):
    """A submit ad in new ClassAd syntax from Python values."""
    from blahp.classad import ClassAd, unparse
    from blahp.classad.nodes import literal_of
    a = ClassAd()
    for k, v in attrs.items():
        a[k] = literal_of(v)
    return unparse(a, keep_order=True)


def env_for(home, config_text, extra=None):
    os.makedirs(home, exist_ok=True)
    cfg = os.path.join(home, "blah.config")
    with open(cfg, "w") as f:
        f.write(config_text)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BLAHPD_", "GLITE_", "SLURM_"))}
    env.update(extra or {})
    # after ``extra``: a cluster's environment carries the test process's own HOME
    env["HOME"] = home
    env["BLAHPD_CONFIG_LOCATION"] = cfg
    return env
