"""gahp-shell's completer and session recorder (pure parts)."""
import re

from conformance.session import parse
from gahp.shell.complete import Completer
from gahp.shell.interactive import ALL_COMMANDS
from gahp.shell.lines import LineMaker
from gahp.shell.record import Recorder

JOBS = ["local/20261122/17", "local/20261122/18", "slurm/20261122/9@clusterA"]


def completer():
    return Completer(ALL_COMMANDS, lambda: JOBS, lambda: ["BLAH_JOB_SUBMIT", "BLAH_PING", "QUIT"])


def complete(line):
    begidx = len(line) - len(line.split(" ")[-1])
    return completer().complete(line, begidx, line[begidx:])


def test_first_word_is_a_command():
    assert complete("") == [c + " " for c in ALL_COMMANDS]
    assert complete("st") == ["status "]
    assert complete("w") == ["watch "]
    assert complete("nothing") == []


def test_job_ids_after_job_commands():
    for cmd in ("status", "cancel", "hold", "resume", "watch", "refresh"):
        assert complete(cmd + " local/") == ["local/20261122/17 ", "local/20261122/18 "]
    assert complete("status local/20261122/17 sl") == ["slurm/20261122/9@clusterA "]


def test_submit_attributes_without_case():
    assert complete("submit Cm") == ["Cmd="]
    assert complete("submit cm") == ["Cmd="]
    assert "gridtype=" in complete("submit g") and "GPUNumber=" in complete("submit g")
    assert "-f " in complete("submit ")
    assert "-f " not in complete("submit Cmd=/bin/true ")
    assert complete("submit Cmd=/bin/true gridtype=s") == ["gridtype=sge ", "gridtype=slurm "]


def test_files_after_submit_f(tmp_path):
    (tmp_path / "job.ad").write_text("[ Cmd = \"/bin/true\" ]")
    (tmp_path / "jobs").mkdir()
    prefix = str(tmp_path / "jo")
    assert complete("submit -f " + prefix) == [str(tmp_path / "job.ad"), str(tmp_path / "jobs") + "/"]


def test_help_ping_raw():
    assert complete("help wa") == ["watch"]
    assert complete("help BLAH_P") == ["BLAH_PING"]
    assert complete("ping s") == ["sge", "slurm"]
    assert complete("raw BLAH_P") == ["BLAH_PING "]
    assert complete("raw BLAH_PING 3 ") == []


def steps(recorder, maker, text, reply, results):
    request = maker.make(text)
    recorder.exchange(request, reply, results)
    return request


def test_recording_generalises_job_ids_workdir_and_status(tmp_path):
    rec = Recorder(["blahpd"], workdir="/home/me/work dir")
    maker = LineMaker()
    rec.sync("ASYNC_MODE_ON", "S Async\\ mode\\ on")
    steps(rec, maker, 'submit Cmd=/bin/echo Iwd="/home/me/work dir" gridtype=local', "S",
          ["1 0 No\\ error local/20261122/17"])
    steps(rec, maker, "status local/20261122/17", "S",
          ['2 0 No\\ Error 2 [\\ BatchJobId\\ =\\ "17";\\ JobStatus\\ =\\ 2\\ ]'])
    steps(rec, maker, "status local/20261122/17", "S",
          ['3 0 No\\ Error 4 [\\ BatchJobId\\ =\\ "17";\\ JobStatus\\ =\\ 4;\\ ExitCode\\ =\\ 3\\ ]'])
    steps(rec, maker, "cancel local/20261122/17", "S", ["4 0 No\\ error"])
    text = rec.session("purpose here")
    assert "{workdir}" in text and "/home/me" not in text
    assert "< 1 0 No\\ error {job1}" in text
    assert "> BLAH_JOB_STATUS 2 {job1}" in text and "< 2 0 No\\ Error {any} {any}" in text
    assert "(?=.*\\bExitCode\\\\ =\\\\ 3\\b)" in text
    assert "@ needs: local" in text
    session = parse(text, "recorded.session")   # the harness accepts it
    kinds = [s.kind for s in session.steps]
    assert kinds.count("retry") == 1 and kinds.count("results") == 3
    # the final-state pattern matches the line it came from, and not another exit code
    pattern = re.search(r"\{/(.*)/\}", text).group(1)
    line = '[\\ BatchJobId\\ =\\ "17";\\ JobStatus\\ =\\ 4;\\ ExitCode\\ =\\ 3\\ ]'
    assert re.match(pattern, line) and not re.match(pattern, line.replace("ExitCode\\ =\\ 3", "ExitCode\\ =\\ 0"))


def test_recording_keeps_errors_and_braces_literal():
    rec = Recorder(["blahpd"], workdir="/")
    maker = LineMaker()
    steps(rec, maker, "ping nosuch", "S", ["1 1 Unknown\\ lrms\\ {nosuch}"])
    rec.sync("VERSION", "S $GahpVersion:\\ x\\ $")
    text = rec.session()
    assert "< 1 1 Unknown\\ lrms\\ {{nosuch}}" in text
    assert "@ needs: protocol" in text
    parse(text, "r.session")


def test_help_carries_the_protocol_reference():
    from gahp.shell.helptext import help_text
    text = help_text("status")
    assert "wire:    BLAH_JOB_STATUS <reqid> <jobid>" in text and "5 fields" in text and "4 COMPLETED" in text
    assert help_text("BLAH_JOB_SUBMIT") == help_text("submit") and "4 fields" in help_text("submit")
    assert "no help on 'frob'" in help_text("frob")
    assert "watch JOBID [SECONDS]" in help_text()
