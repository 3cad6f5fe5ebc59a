from collections import deque

import pytest
from hypothesis import settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from gahp.commands import CommandTable
from gahp.protocol import Notice, Quit, ServerProtocol, StartJob

BANNER = r"$GahpVersion: 1.8.0 Mar 31 2008 INFN\ blahpd\ (poly,new_esc_format) $"


def make(max_in_flight=50, max_line=1 << 20, limits_pending=False):
    t = CommandTable()
    t.add_async("BLAH_PING", 2, result_fields=2)
    t.add_async("BLAH_JOB_SUBMIT", 2, result_fields=3, error_placeholders=("N/A",))
    t.add_async("BLAH_JOB_STATUS", 2, result_fields=4, error_placeholders=("0", "N/A"))
    t.add_sync("BLAH_SET_GLEXEC_OFF", 0, lambda a: ["S", "Glexec mode off"])
    t.add_async("HIDDEN_ONE", 1, result_fields=2, advertised=False)
    core = ServerProtocol(t, BANNER, max_in_flight=max_in_flight, max_line_bytes=max_line,
                          limits_pending=limits_pending)
    assert core.data_to_send() == BANNER.encode() + b"\r\n"
    return core


def send(core, text):
    core.receive_data(text.encode() if isinstance(text, str) else text)
    return core.data_to_send().decode().split("\r\n")[:-1]


def test_builtin_replies_are_exact():
    core = make()
    assert send(core, "COMMANDS\r\n") == [
        "S ASYNC_MODE_OFF ASYNC_MODE_ON BLAH_JOB_STATUS BLAH_JOB_SUBMIT BLAH_PING BLAH_SET_GLEXEC_OFF "
        "COMMANDS QUIT RESULTS VERSION"]
    assert send(core, "VERSION\r\n") == ["S " + BANNER]
    assert send(core, "RESULTS\r\n") == ["S 0"]
    assert send(core, "ASYNC_MODE_ON\r\n") == [r"S Async\ mode\ on"]
    assert send(core, "ASYNC_MODE_OFF\r\n") == [r"S Async\ mode\ off"]
    assert send(core, "BLAH_SET_GLEXEC_OFF\r\n") == [r"S Glexec\ mode\ off"]
    assert send(core, "QUIT\r\n") == [r"S Server\ exiting"]
    assert isinstance(core.events()[-1], Quit)
    assert send(core, "COMMANDS\r\n") == []   # nothing is read after QUIT


def test_names_are_case_insensitive_ascii_only():
    core = make()
    assert send(core, "commands\nVersion\n")[1] == "S " + BANNER
    assert send(core, "qu\u0131t\n") == [r"E Unknown\ command"]   # dotless i does not fold to QUIT


@pytest.mark.parametrize("line,reply", [
    ("NOSUCHCOMMAND", r"E Unknown\ command"),
    ("NOSUCHCOMMAND with args", r"E Unknown\ command"),
    ("\t", r"E Unknown\ command"),
    ("BLAH_PING", r"E expected\ 2\ parameters,\ 0\ found"),
    ("BLAH_PING 1 slurm extra", r"E expected\ 2\ parameters,\ 3\ found"),
    ("BLAH_JOB_SUBMIT 1 [Cmd=\"/bin/true\"] extra", r"E expected\ 2\ parameters,\ 3\ found"),
    ("COMMANDS extra", r"E expected\ 0\ parameters,\ 1\ found"),
    ("RESULTS extra", r"E expected\ 0\ parameters,\ 1\ found"),
    ("QUIT extra", r"E expected\ 0\ parameters,\ 1\ found"),
    ("HIDDEN_ONE 1", "S"),   # known but unadvertised commands still work
])
def test_error_replies(line, reply):
    core = make()
    assert send(core, line + "\r\n") == [reply]
    assert send(core, "RESULTS\r\n") == ["S 0"]   # and the server keeps serving


def test_blank_and_space_only_lines_are_ignored():
    core = make()
    assert send(core, "\r\n\n   \r\n \n\x00VERSION\r\n") == ["S " + BANNER]


def test_over_long_line_gets_an_error_and_the_next_line_is_served():
    core = make(max_line=1024)
    out = send(core, "BLAH_PING 1 " + "x" * 2000 + "\r\nVERSION\r\n")
    assert out == [r"E Line\ too\ long", "S " + BANNER]
    assert any(isinstance(e, Notice) for e in core.events())


def test_threads_limit_and_recovery():
    core = make(max_in_flight=3)
    assert send(core, "BLAH_PING 1 a\nBLAH_PING 2 a\nBLAH_PING 3 a\nBLAH_PING 4 a\n") == ["S", "S", "S",
                                                                                  r"F Threads\ limit\ reached"]
    jobs = core.events()
    assert [j.reqid for j in jobs] == ["1", "2", "3"]
    core.complete(jobs[0].token, [["1", "0", "No error"]])
    # queued results do not count against the limit
    assert send(core, "BLAH_PING 4 a\n") == ["S"]


def test_results_in_completion_order_and_escaped():
    core = make()
    send(core, "BLAH_PING 1 a\nBLAH_PING 2\\ x a\n")
    j1, j2 = core.events()
    core.complete(j2.token, [["2 x", "0", "No error"]])
    core.complete(j1.token, [["1", "1", "a\\b failed\nbadly"]])
    assert send(core, "RESULTS\n") == ["S 2", r"2\ x 0 No\ error", r"1 1 a\\b\ failed-badly"]


def test_malformed_results_are_replaced_with_the_commands_error_form():
    core = make()
    send(core, "BLAH_JOB_SUBMIT 7 [x]\nBLAH_JOB_STATUS 8 id\nBLAH_PING 9 a\n")
    sub, st_, ping = core.events()
    core.complete(sub.token, [["7", "0", "No error"]])          # one field short
    core.complete(st_.token, [["8", "0", "No Error", "", "[]"]])  # empty field
    core.complete(ping.token, [])                               # no row at all
    out = send(core, "RESULTS\n")
    assert out[0] == "S 3"
    assert out[1].startswith("7 1 Internal\\ error:") and out[1].endswith(" N/A")
    assert out[2].startswith("8 1 Internal\\ error:") and out[2].endswith(" 0 N/A")
    assert out[3].startswith("9 1 Internal\\ error:")
    assert sum(isinstance(e, Notice) for e in core.events()) == 2


def test_multi_row_results():
    core = make()
    send(core, "BLAH_JOB_STATUS 5 a/1\\ a/2\n")
    (job,) = core.events()
    core.complete(job.token, [["5.0", "0", "No Error", "2", "[]"], ["5.1", "0", "No Error", "1", "[]"]])
    assert send(core, "RESULTS\n") == ["S 2", "5.0 0 No\\ Error 2 []", "5.1 0 No\\ Error 1 []"]


def test_no_R_after_quit():
    core = make()
    send(core, "ASYNC_MODE_ON\nBLAH_PING 1 a\nQUIT\n")
    job = [e for e in core.events() if isinstance(e, StartJob)][0]
    core.complete(job.token, [["1", "0", "No error"]])
    assert core.data_to_send() == b""
    assert core.flush_results_block() == b"S 1\r\n1 0 No\\ error\r\n"


# ---- the async/RESULTS state machine, exhaustively ---------------------------------------
# Model state: (async_on, armed, queued results).  Inputs: the five things that can happen.
INPUTS = ("ON", "OFF", "RESULTS", "JOB_DONE", "NEW_JOB")


def model_step(state, inp):
    """protocol.md 6.2, written as a table: returns (new state, expected output lines)."""
    async_on, armed, queued = state
    if inp == "ON":
        if queued:
            return (True, False, queued), [r"S Async\ mode\ on", "R"]
        return (True, True, queued), [r"S Async\ mode\ on"]
    if inp == "OFF":
        return (False, armed, queued), [r"S Async\ mode\ off"]
    if inp == "RESULTS":
        lines = ["S %d" % queued] + ["%d 0 No\\ error" % i for i in range(queued)]
        return (async_on, True if queued else armed, 0), lines
    if inp == "JOB_DONE":
        if async_on and armed:
            return (True, False, queued + 1), ["R"]
        return (async_on, armed, queued + 1), []
    if inp == "NEW_JOB":
        return state, ["S"]
    raise AssertionError(inp)


def reachable_states(max_queue=2):
    start = (False, False, 0)
    paths = {start: []}
    todo = deque([start])
    while todo:
        s = todo.popleft()
        for inp in INPUTS:
            n, _ = model_step(s, inp)
            if n[2] <= max_queue and n not in paths:
                paths[n] = paths[s] + [inp]
                todo.append(n)
    return paths


class Driver:
    """Applies model inputs to a real core; results carry sequence numbers as reqids."""

    def __init__(self):
        self.core = make(max_in_flight=10 ** 6)
        self.pending = deque()
        self.done_queue = 0

    def apply(self, inp):
        c = self.core
        if inp == "ON":
            c.receive_data(b"ASYNC_MODE_ON\r\n")
        elif inp == "OFF":
            c.receive_data(b"ASYNC_MODE_OFF\r\n")
        elif inp == "RESULTS":
            c.receive_data(b"RESULTS\r\n")
            self.done_queue = 0
        elif inp == "NEW_JOB":
            c.receive_data(b"BLAH_PING x a\r\n")
            self.pending.extend(c.events())
        elif inp == "JOB_DONE":
            if not self.pending:
                c.receive_data(b"BLAH_PING x a\r\n")
                self.pending.extend(c.events())
                assert c.data_to_send() == b"S\r\n"
            job = self.pending.popleft()
            c.complete(job.token, [[str(self.done_queue), "0", "No error"]])
            self.done_queue += 1
        return c.data_to_send().decode().split("\r\n")[:-1]


def test_state_machine_every_reachable_state_times_every_input():
    paths = reachable_states()
    assert len(paths) >= 8   # sanity: the BFS explores more than the trivial states
    checked = 0
    for state, path in paths.items():
        for inp in INPUTS:
            d = Driver()
            s = (False, False, 0)
            for p in path:
                s, expect = model_step(s, p)
                assert d.apply(p) == expect, (path, p)
            assert (d.core.async_mode, d.core._armed, d.core.results_pending) == s
            s2, expect = model_step(s, inp)
            assert d.apply(inp) == expect, (state, inp)
            assert (d.core.async_mode, d.core._armed, d.core.results_pending) == s2
            checked += 1
    assert checked == len(paths) * len(INPUTS)


class AsyncMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.d = Driver()
        self.state = (False, False, 0)

    def step(self, inp):
        self.state, expect = model_step(self.state, inp)
        assert self.d.apply(inp) == expect

    @rule(inp=st.sampled_from(INPUTS))
    def any_input(self, inp):
        self.step(inp)

    @invariant()
    def at_most_one_R_between_results(self):
        assert (self.d.core.async_mode, self.d.core._armed, self.d.core.results_pending) == self.state


AsyncMachine.TestCase.settings = settings(max_examples=300, stateful_step_count=40)
TestAsyncMachine = AsyncMachine.TestCase


# -- limits not known yet (the server still reads its configuration) --------------------------------

def test_pending_limits_answer_sync_commands_and_hold_the_rest_in_order():
    t = CommandTable()
    t.add_async("BLAH_PING", 2, result_fields=2)
    core = ServerProtocol(t, BANNER, limits_pending=True)
    core.data_to_send()
    # COMMANDS is answered at once; from the first async request on, everything waits
    assert send(core, "COMMANDS\r\nBLAH_PING 1 x\r\nVERSION\r\nBLAH_PING 2 x\r\nBLAH_PING 3 x\r\n") == [
        "S ASYNC_MODE_OFF ASYNC_MODE_ON BLAH_PING COMMANDS QUIT RESULTS VERSION"]
    assert core.events() == []
    core.set_limits(max_in_flight=2, max_line_bytes=1 << 20)
    assert core.data_to_send().decode().split("\r\n")[:-1] == [
        "S", "S " + BANNER, "S", r"F Threads\ limit\ reached"]
    assert [e.reqid for e in core.events() if isinstance(e, StartJob)] == ["1", "2"]


def test_pending_limits_judge_held_lines_by_the_configured_length():
    core = make(limits_pending=True)
    long_line = "BLAH_SET_GLEXEC_OFF " + "a" * 2000   # a sync command, but longer than any limit may be
    assert send(core, long_line + "\r\nRESULTS\r\n") == []
    core.set_limits(max_in_flight=50, max_line_bytes=1024)
    assert core.data_to_send().decode().split("\r\n")[:-1] == [r"E Line\ too\ long", "S 0"]


def test_pending_limits_keep_what_came_before_eof_and_stop_at_quit():
    core = make(limits_pending=True)
    assert send(core, "BLAH_PING 1 x\r\nQUIT\r\nBLAH_PING 2 x\r\n") == []
    core.receive_eof()
    core.set_limits(max_in_flight=50, max_line_bytes=1 << 20)
    assert core.data_to_send().decode().split("\r\n")[:-1] == ["S", r"S Server\ exiting"]
    assert [e.reqid for e in core.events() if isinstance(e, StartJob)] == ["1"]
