"""A small gridmanager-like client: runs blahpd on pipes, sends requests, collects results."""
import os
import queue
import subprocess
import threading
import time

from blahp.classad import parse_ad
from gahp.escaping import quote_arg, read_argv
from tests.conftest import blahpd_command


class GahpClient:
    def __init__(self, env, args=(), cwd=None):
        self.proc = subprocess.Popen(blahpd_command() + list(args), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=env, cwd=cwd)
        self.lines = queue.Queue()
        self.results = {}
        self.transcript = []
        self._reqid = 100
        threading.Thread(target=self._read, daemon=True).start()
        banner = self._line(30)
        assert banner.startswith("$GahpVersion"), banner
        assert self.command("ASYNC_MODE_ON") == "S Async\\ mode\\ on"

    def _read(self):
        for raw in self.proc.stdout:
            self.lines.put(raw.decode())
        self.lines.put(None)

    def _line(self, timeout):
        line = self.lines.get(timeout=timeout)
        if line is None:
            raise EOFError("blahpd closed its output; stderr: %s" % self.proc.stderr.read().decode()[-2000:])
        assert line.endswith("\r\n"), repr(line)
        self.transcript.append(line)
        return line[:-2]

    def send(self, line):
        self.proc.stdin.write(line.encode() + b"\r\n")
        self.proc.stdin.flush()

    def command(self, line, timeout=20):
        """A request whose reply is the next non-R line (the client's 20 s limit applies)."""
        self.send(line)
        while True:
            reply = self._line(timeout)
            if reply != "R":
                return reply

    def next_reqid(self):
        self._reqid += 1
        return str(self._reqid)

    def start(self, name, *args):
        reqid = self.next_reqid()
        reply = self.command(" ".join([name, reqid] + [quote_arg(a) for a in args]))
        assert reply == "S", (name, reply)
        return reqid

    def _poll(self):
        reply = self.command("RESULTS")
        fields = read_argv(reply)
        assert fields[0] == "S", reply
        for _ in range(int(fields[1])):
            row = read_argv(self._line(20))
            self.results[row[0]] = row

    def wait(self, reqid, timeout=120):
        deadline = time.time() + timeout
        while reqid not in self.results:
            if time.time() > deadline:
                raise TimeoutError("no result for request %s within %s s" % (reqid, timeout))
            self._poll()
            if reqid not in self.results:
                time.sleep(0.2)
        return self.results.pop(reqid)

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

    def close(self, timeout=30):
        if self.proc.poll() is None:
            try:
                self.send("QUIT")
            except BrokenPipeError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                f.close()
            except OSError:
                pass
        return self.proc.returncode

    def kill(self):
        self.proc.kill()
        self.proc.wait()


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
