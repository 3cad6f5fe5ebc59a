"""The recorded sessions (conformance/sessions/recorded/) against the C blahpd's own recordings.

Every session there names the transcript it was converted from (``@ source:``).  Played back by
``conformance.playback`` (a fake server answering with the recorded lines), a session without
``@ deviation:`` must pass: its expectations hold for the real C blahpd.  A session with one must
fail: it checks pyblahp's behaviour where the C blahpd has a bug we do not copy.

Playback answers at once, so the sessions' waiting bounds (``= retry N``, ``= results within N``)
only cost time here: they are shortened in a copy of each session before it is run.
"""
import io
import os
import re
import subprocess
import sys

import pytest

from conformance import playback
from conformance.session import parse

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RECORDED = os.path.join(ROOT, "conformance", "sessions", "recorded")
RECORDINGS = os.path.join(ROOT, "conformance", "recordings")
CRLF = b"\r\n"
BANNER = rb"$GahpVersion: 1.8.0 Mar 31 2008 INFN\ blahpd\ (poly,new_esc_format) $" + CRLF

def _recorded_sessions():
    found = []
    for d, _, files in os.walk(RECORDED):
        for f in sorted(files):
            if f.endswith(".session"):
                path = os.path.join(d, f)
                with open(path, encoding="utf-8") as fh:
                    s = parse(fh.read(), path)
                if s.first("source"):
                    found.append(pytest.param(path, id=os.path.relpath(path, RECORDED)))
    return sorted(found, key=lambda p: p.id)


def _source(path):
    with open(path, encoding="utf-8") as f:
        s = parse(f.read(), path)
    return s, os.path.normpath(os.path.join(ROOT, s.first("source")))


def _shortened(text):
    """The same session with waits fit for a server that answers at once."""
    text = re.sub(r"^= retry [0-9.]+$", "= retry 3", text, flags=re.M)
    return re.sub(r"^= results within [0-9.]+$", "= results within 5", text, flags=re.M)


def _run_against_playback(session_path, source, tmp_path):
    copy = tmp_path / os.path.basename(session_path)
    with open(session_path, encoding="utf-8") as f:
        copy.write_text(_shortened(f.read()), encoding="utf-8")
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    server = "%s -m conformance.playback %s" % (sys.executable, source)
    cmd = [sys.executable, "-m", "conformance.cli", "--server", server, "--provide", "slurm,sge",
           "--require-all", "--scratch", str(tmp_path), str(copy)]
    return subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, timeout=110)


def test_every_transcript_has_a_session():
    for lrms in ("protocol", "sge", "slurm"):
        names = {f[:-len(".gahp")] for f in os.listdir(os.path.join(RECORDINGS, lrms)) if f.endswith(".gahp")}
        sessions = {f[:-len(".session")] for f in os.listdir(os.path.join(RECORDED, lrms))
                    if f.endswith(".session")}
        assert names <= sessions, "transcripts without a session: %s" % sorted(names - sessions)


@pytest.mark.parametrize("path", _recorded_sessions())
def test_session_against_its_recording(path, tmp_path):
    session, source = _source(path)
    assert os.path.isfile(source), "@ source: %s does not exist" % session.first("source")
    run = _run_against_playback(path, source, tmp_path)
    if session.deviations:
        # the C blahpd really behaves differently here: the session must catch it
        assert run.returncode == 1 and "\nFAIL " in "\n" + run.stdout, run.stdout
    else:
        assert run.returncode == 0, run.stdout


# --- the playback server itself ------------------------------------------------------------------

def _transcript(name):
    with open(os.path.join(RECORDINGS, name), "rb") as f:
        return playback.parse(f.read())


def _play(transcript, lines):
    out = io.BytesIO()
    player = playback.Player(transcript, out)
    player.start()
    statuses = [player.feed(line) for line in lines]
    return out.getvalue(), statuses


def test_playback_parses_replies_and_results():
    t = _transcript("protocol/06-escapes.gahp")
    assert t.banner == BANNER and t.exit_status == 0 and t.fatal is None
    by_id = {r.reqid: r for r in t.requests if r.reqid}
    assert by_id["1"].reply == [b"S" + CRLF] and by_id["1"].results == [b"1 0 No\\ error" + CRLF]
    # the C blahpd wrote this request id unescaped; it still belongs to its request
    assert by_id["2\\ x"].results == [b"2 x 0 No\\ error" + CRLF]
    assert by_id["7"].results == [b"7.0 0 No\\ error" + CRLF, b"7.1 0 No\\ error" + CRLF]
    assert by_id["5"].results == []          # never answered in the recording
    assert [r.key for r in t.requests].count(("RESULTS", None)) == 8


def test_playback_answers_like_the_recording():
    t = _transcript("protocol/10-async-R-and-reqid-reuse.gahp")
    out, statuses = _play(t, [b"ASYNC_MODE_ON", b"BLAH_PING 1 slurm", b"BLAH_PING 2 slurm", b"RESULTS",
                              b"RESULTS", b"blah_ping 5 slurm", b"BLAH_PING 5 slurm", b"RESULTS",
                              b"BLAH_PING 9 slurm", b"QUIT"])
    assert out == (BANNER + b"S Async\\ mode\\ on\r\n"
                   + b"S\r\nR\r\n" + b"S\r\n"                         # one R for the batch
                   + b"S 2\r\n1 0 No\\ error\r\n2 0 No\\ error\r\n"
                   + b"S 0\r\n"
                   + b"S\r\nR\r\n" + b"S\r\n"                         # re-armed by the non-empty RESULTS
                   + b"S 2\r\n5 0 No\\ error\r\n5 0 No\\ error\r\n"
                   + b"E Unknown\\ command\r\n"                       # nothing recorded for this one
                   + b"S Server\\ exiting\r\n")
    assert statuses[-1] == 0 and statuses[:-1] == [None] * 9


def test_playback_keeps_raw_lines_and_sync_mode():
    t = _transcript("protocol/03-arg-counts.gahp")
    # same command and request id: the recorded requests are taken in order
    out, _ = _play(t, [b"BLAH_JOB_STATUS", b"BLAH_JOB_STATUS 1", b"BLAH_JOB_STATUS 1 a b"])
    # recorded without CRLF (#raw): an escaped CR, then a bare LF
    assert out == BANNER + b"E expected\\ 2\\ parameters,\\ 0\\ found\\r\n" \
        + b"E expected\\ 2\\ parameters,\\ 1\\ found\\r\n" + b"E expected\\ 2\\ parameters,\\ 3\\ found\\r\n"
    t = _transcript("protocol/15-sync-mode-ping.gahp")
    out, _ = _play(t, [b"BLAH_PING 1 slurm", b"RESULTS"])
    assert out == BANNER + b"S\r\nS 1\r\n1 0 No\\ error\r\n"   # no R in sync mode


def test_playback_dies_where_the_recorded_server_died():
    t = _transcript("protocol/16-SEGFAULT-spaces-only-line.gahp")
    assert t.exit_signal == 11 and t.fatal is not None and t.fatal.line == b"   "
    out, statuses = _play(t, [b"COMMANDS", b"   "])
    assert statuses == [None, -11] and out.startswith(BANNER + b"S ASYNC_MODE_OFF")


def test_playback_as_a_process():
    source = os.path.join(RECORDINGS, "protocol", "09-eof-without-quit.gahp")
    env = dict(os.environ, PYTHONPATH=ROOT)
    run = subprocess.run([sys.executable, "-m", "conformance.playback", source], input=b"COMMANDS\r\n",
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    assert run.stdout.startswith(BANNER + b"S ASYNC_MODE_OFF ") and run.stdout.endswith(b" VERSION\r\n")
    assert run.returncode == 1 and b"Connection closed by remote host" in run.stderr
    source = os.path.join(RECORDINGS, "protocol", "18-single-space-line.gahp")
    run = subprocess.run([sys.executable, "-m", "conformance.playback", source], input=b"COMMANDS\r\n \r\n",
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    assert run.returncode == -11    # SIGSEGV, as recorded
