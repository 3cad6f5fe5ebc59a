"""The trio runtime in-process, over real pipes, with real batch-command processes."""
import os
import random

import trio

from blahp.app import BlahApp
from blahp.backend import Backend, BackendContext
from blahp.commands import BANNER, Session, build_table
from blahp.config import Config
from blahp.runner import CommandRunner
from gahp.protocol import ServerProtocol
from gahp.runtime import NullLog, Options, Server
from tests.clusters.sharing import is_live


class HangBackend(Backend):
    """A batch system whose health query never returns (a stalled controller)."""
    name = "hang"
    marker = ""

    async def bulk_query(self, cluster):
        await self.context.runner.run(["sleep", self.marker], timeout=3600)
        return {}

    # only the health query matters here
    render = submit = find_by_key = map = cancel = None


def processes_with(marker):
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if cmd == b"sleep\x00" + marker.encode() + b"\x00" and is_live(int(pid)):
            found.append(int(pid))
    return found


def make_server(options, max_in_flight=50, handler=None):
    """A server on fresh pipes; requests go to ``handler`` or to a BlahApp with the hang backend."""
    session = Session()
    core = ServerProtocol(build_table(session), BANNER, max_in_flight=max_in_flight)
    runner = CommandRunner(os.environ, kill_grace=2)
    ctx = BackendContext(Config(), runner, "/nonexistent", NullLog())
    hang = HangBackend(ctx)
    hang.marker = "%d.%06d" % (600, random.randrange(10 ** 6))
    handler = handler or BlahApp(Config(), {"hang": hang}, NullLog()).run
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    for fd in (in_r, out_w):
        os.set_blocking(fd, False)
    server = Server(core, handler, options, stdin_fd=in_r, stdout_fd=out_w)
    return server, hang.marker, (in_r, in_w, out_r, out_w)


class LineReader:
    def __init__(self, stream):
        self.stream = stream
        self.buf = b""

    async def line(self):
        while b"\r\n" not in self.buf:
            chunk = await self.stream.receive_some(65536)
            assert chunk, "server closed its output; had %r" % self.buf
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode()


def run_client(server, fds, client):
    """Serve on the pipes while ``client(to_server, reader)`` talks to the server, then close
    the server's ends.  Returns after the server has shut down."""
    in_r, in_w, out_r, out_w = fds

    async def scenario():
        async with trio.open_nursery() as n:
            n.start_soon(server.serve)
            reader = LineReader(trio.lowlevel.FdStream(out_r))
            assert await reader.line() == BANNER
            await client(trio.lowlevel.FdStream(in_w), reader)

    trio.run(scenario)
    os.close(in_r)
    os.close(out_w)


def test_fifty_hung_requests_do_not_block_the_reader_and_the_51st_is_refused():
    server, marker, fds = make_server(Options(shutdown_grace=1))

    async def client(to_server, reader):
        request = b"".join(b"BLAH_PING %d hang\r\n" % i for i in range(1, 51))
        await to_server.send_all(request + b"COMMANDS\r\nBLAH_PING 51 hang\r\nRESULTS\r\n")
        replies = [await reader.line() for _ in range(53)]
        assert replies[:50] == ["S"] * 50
        assert replies[50].startswith("S ASYNC_MODE_OFF ") and "BLAH_PING" in replies[50]
        assert replies[51] == r"F Threads\ limit\ reached"
        assert replies[52] == "S 0"
        # every request really is stuck in a live batch command
        with trio.fail_after(20):
            while len(processes_with(marker)) < 50:
                await trio.sleep(0.05)
        assert server.core.in_flight == 50
        await to_server.aclose()   # EOF: the gridmanager went away

    run_client(server, fds, client)
    assert server.stop_reason == "eof"
    # shutdown killed every batch command's process group: nothing orphaned
    assert processes_with(marker) == []


def test_deadline_turns_a_hung_request_into_an_error_result():
    server, marker, fds = make_server(Options(job_deadline=0.5))

    async def client(to_server, reader):
        await to_server.send_all(b"ASYNC_MODE_ON\r\nBLAH_PING 9 hang\r\n")
        assert [await reader.line() for _ in range(2)] == [r"S Async\ mode\ on", "S"]
        with trio.fail_after(10):
            assert await reader.line() == "R"
        await to_server.send_all(b"RESULTS\r\n")
        assert [await reader.line() for _ in range(2)] == ["S 1", r"9 1 Request\ timed\ out\ after\ 0.5\ s"]
        await to_server.aclose()

    run_client(server, fds, client)
    assert processes_with(marker) == []


def test_graceful_requests_get_the_grace_period_others_are_cancelled():
    done = []

    async def handler(job):
        if job.reqid.startswith("g"):
            await trio.sleep(0.3)
            done.append(job.reqid)
            return [[job.reqid, "0", "No error"]]
        await trio.sleep(3600)

    opts = Options(shutdown_grace=5, graceful=lambda job: job.reqid.startswith("g"))
    server, _, (in_r, in_w, out_r, out_w) = make_server(opts, handler=handler)
    os.write(in_w, b"BLAH_PING g1 x\r\nBLAH_PING h1 x\r\nBLAH_PING g2 x\r\nQUIT\r\n")

    async def scenario():
        with trio.fail_after(10):
            return await server.serve()

    assert trio.run(scenario) == "quit"
    assert sorted(done) == ["g1", "g2"]
    assert server.core.results_pending == 2 and server.core.in_flight == 0
    for fd in (in_r, in_w, out_w, out_r):
        os.close(fd)
