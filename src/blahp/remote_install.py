"""``blahp-bootstrap``: put pyblahp on a head node in the ``~/bosco/glite`` layout, remove it, test it.

What ``condor_remote_cluster --add/--remove/--test`` does for the C blahp (client.md §8), for
pyblahp: no tarball and no rsync, but a self-contained zipapp (blahp/zipapp_build.py) uploaded
over SFTP, a small ``bin/blahpd`` launcher, and a ``blah.config`` for the batch system found in
the login shell's PATH.  The SSH options mean what they mean for gahp-ssh, and the connection is
made by gahp-ssh's own code (gahp.ssh.connect): known_hosts checked, key authentication only.
"""
from __future__ import annotations

import argparse
import asyncio
import datetime
import hashlib
import json
import os
import secrets
import shlex
import shutil
import sys
import tempfile
import time
from typing import Any, Awaitable, Callable, List, Optional, Sequence, Tuple

from . import __version__
from . import remote_layout as layout
from .remote_layout import LayoutError

EX_USAGE = 2
PROG = "blahp-bootstrap"


class BootstrapError(Exception):
    """A failed step; the message is for the user, one line."""


# --- command line -------------------------------------------------------------------------------

def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        usage="%(prog)s [options] [user@]host[:port] [lrms]\n"
              "       %(prog)s [options] --remove [user@]host[:port]\n"
              "       %(prog)s [options] --test [user@]host[:port] [lrms]",
        description="Install pyblahp's blahpd on a batch head node under ~/<base>/glite (what "
                    "condor_remote_cluster --add does), remove it, or test it end to end through gahp-ssh. "
                    "lrms: slurm, pbs, lsf, sge, condor (htcondor); detected from the login shell's PATH "
                    "when omitted.")
    p.add_argument("target", help="[user@]host[:port] (as for gahp-ssh / remote_gahp)")
    p.add_argument("lrms", nargs="?", help="batch system (slurm|pbs|lsf|sge|condor|htcondor, or local: "
                                           "pyblahp's own, jobs run on the head node)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--remove", action="store_true", help="delete pyblahp's files from ~/<base>/glite")
    mode.add_argument("--test", action="store_true",
                      help="submit /bin/echo Hello through gahp-ssh and wait for it (exit 0 = it worked)")
    p.add_argument("-b", "--base-dir", default="bosco", metavar="NAME", help="directory under the remote home (bosco)")
    p.add_argument("--force-config", action="store_true",
                   help="replace an existing blah.config (default: keep it, write blah.config.new)")
    p.add_argument("--python", metavar="PATH", help="interpreter on the head node (default: newest usable python3)")
    p.add_argument("--no-check", action="store_true", help="after installing, do not start blahpd once to check it")
    p.add_argument("--no-precompile", action="store_true",
                   help="do not byte-compile the bundle on the head node (blahpd then compiles at each start)")
    key = p.add_mutually_exclusive_group()
    key.add_argument("--rgahp-key", metavar="FILE", help="private key (default ~/.ssh/bosco_key.rsa if present)")
    key.add_argument("--rgahp-nokey", action="store_true", help="no bosco key: ssh config / default identities / agent")
    pw = p.add_mutually_exclusive_group()
    pw.add_argument("--rgahp-pass", metavar="FILE",
                    help="file whose first line is the key's passphrase (~/.bosco/.pass)")
    pw.add_argument("--rgahp-nopass", action="store_true", help="the key has no passphrase")
    p.add_argument("--rgahp-nologin", action="store_true", help="run remote commands without bash -l")
    p.add_argument("--known-hosts", action="append", metavar="FILE",
                   help="known_hosts file (repeatable; default ~/.ssh/known_hosts and /etc/ssh/ssh_known_hosts)")
    p.add_argument("--ssh-config", metavar="FILE|none", help="OpenSSH client config (default ~/.ssh/config)")
    p.add_argument("--gahp-command", metavar="CMD",
                   help="--test: the GAHP transport to run instead of gahp-ssh (a shell-quoted command line)")
    p.add_argument("--timeout", type=float, default=300.0, metavar="SECONDS",
                   help="--test: how long to wait for the job (300)")
    p.add_argument("-v", "--verbose", action="store_true", help="say more")
    p.add_argument("--version", action="version", version="%(prog)s (pyblahp " + __version__ + ")")
    return p


def rgahp_options(opts: argparse.Namespace) -> List[str]:
    """The options shared with gahp-ssh, in its syntax (also what --test passes to it)."""
    out: List[str] = []
    if opts.rgahp_key:
        out += ["--rgahp-key", opts.rgahp_key]
    if opts.rgahp_nokey:
        out.append("--rgahp-nokey")
    if opts.rgahp_pass:
        out += ["--rgahp-pass", opts.rgahp_pass]
    if opts.rgahp_nopass:
        out.append("--rgahp-nopass")
    if opts.rgahp_nologin:
        out.append("--rgahp-nologin")
    for kh in opts.known_hosts or ():
        out += ["--known-hosts", kh]
    if opts.ssh_config:
        out += ["--ssh-config", opts.ssh_config]
    return out


def invocation(opts: argparse.Namespace) -> Any:
    """gahp-ssh's view of the target (one parser for both tools)."""
    from gahp.ssh import args as rargs
    argv = rgahp_options(opts) + ["--rgahp-glite", "~/%s/glite" % opts.base_dir, opts.target, "blahpd"]
    try:
        inv = rargs.parse(argv)
    except rargs.UsageError as e:
        raise BootstrapError("%s%s" % (e, "".join("; " + n for n in e.notes)))
    if inv.warnings:
        raise BootstrapError("; ".join(inv.warnings))
    return inv


# --- SSH ------------------------------------------------------------------------------------------

async def open_connection(inv: Any) -> Any:
    """An asyncssh connection made exactly as gahp-ssh makes its own (gahp.ssh.connect): known_hosts
    checked, the bosco key and pass file, no password or keyboard-interactive prompts."""
    from gahp.ssh import connect as sshconnect
    try:
        return await sshconnect.connect(inv)
    except Exception as e:  # every connect failure (KeyLoadError too) is one line for the user
        text = sshconnect.describe(e, inv)
        raise BootstrapError(text[len("gahp-ssh: "):] if text.startswith("gahp-ssh: ") else text) from None


def login_command(inv: Any, script: str) -> str:
    return ("/bin/bash -l -c " if inv.login else "/bin/bash -c ") + shlex.quote(script)


# --- the steps ------------------------------------------------------------------------------------

class Out:
    def __init__(self, verbose: bool, stream: Any = None) -> None:
        self.verbose = verbose
        self.stream = stream or sys.stdout
        self.t0 = time.monotonic()

    def say(self, text: str) -> None:
        self.stream.write("%s\n" % text)
        self.stream.flush()

    def step(self, text: str) -> None:
        self.say("[%6.2fs] %s" % (time.monotonic() - self.t0, text))

    def debug(self, text: str) -> None:
        if self.verbose:
            self.step(text)


async def probe(conn: Any, inv: Any, base: str, python: Optional[str], out: Out) -> layout.Probe:
    r = await conn.run(login_command(inv, layout.probe_script(base, python)), input="", check=False,
                       timeout=120)
    stdout = r.stdout if isinstance(r.stdout, str) else (r.stdout or b"").decode("utf-8", "replace")
    try:
        p = layout.parse_probe(stdout)
    except LayoutError as e:
        raise BootstrapError("%s; stderr: %s" % (e, (r.stderr or "").strip()[-300:]))
    if p.noise.strip():
        out.say("note: the login shell prints %r on stdout before any command runs; gahp-ssh withholds it, "
                "but plain remote_gahp/ssh would feed it to the gridmanager (fix ~/.bashrc or use "
                "--rgahp-nologin)" % p.noise.strip()[:120])
    out.debug("probe: home %s, %s, commands %s, pythons %s, existing %s"
              % (p.home, p.uname, p.commands, p.pythons, p.existing))
    return p


async def _replace(sftp: Any, path: str, mode: int, fill: Callable[[str], Awaitable[None]]) -> None:
    """``fill(tmp)`` writes a temporary file beside ``path``, which then replaces ``path`` in one
    rename: a blahpd starting meanwhile sees the old file or the new one, never half of one."""
    d, name = path.rsplit("/", 1)
    tmp = "%s/.%s.tmp-%s" % (d, name, secrets.token_hex(4))
    try:
        await fill(tmp)
        await sftp.chmod(tmp, mode)
        await _rename(sftp, tmp, path)
    except BaseException:
        try:
            await sftp.remove(tmp)
        except Exception:
            pass
        raise


async def _write_atomic(sftp: Any, path: str, data: bytes, mode: int) -> None:
    async def fill(tmp: str) -> None:
        async with sftp.open(tmp, "wb") as f:
            await f.write(data)
    await _replace(sftp, path, mode, fill)


async def _put_atomic(sftp: Any, local: str, path: str, mode: int,
                      before_rename: Optional[Callable[[str], Awaitable[None]]] = None) -> None:
    async def fill(tmp: str) -> None:
        await sftp.put(local, tmp)
        if before_rename is not None:
            await before_rename(tmp)
    await _replace(sftp, path, mode, fill)


async def _rename(sftp: Any, src: str, dst: str) -> None:
    import asyncssh
    try:
        await sftp.posix_rename(src, dst)
    except asyncssh.SFTPOpUnsupported:
        # without the OpenSSH extension, rename refuses to overwrite: remove first (not atomic)
        if await sftp.exists(dst):
            await sftp.remove(dst)
        await sftp.rename(src, dst)


async def _read_head(sftp: Any, path: str, size: int = 4096) -> bytes:
    async with sftp.open(path, "rb") as f:
        return await f.read(size)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def build_bundle(out: Out) -> Tuple[str, Any]:
    """Build the zipapp into a private temp dir; (path, BuildResult)."""
    from .zipapp_build import BuildError, build
    d = tempfile.mkdtemp(prefix="pyblahp-bundle-")
    path = os.path.join(d, "pyblahp.pyz")
    try:
        result = build(path)
    except BuildError as e:
        shutil.rmtree(d, ignore_errors=True)
        raise BootstrapError("cannot build the pyblahp bundle: %s" % e)
    dists = ", ".join("%s %s" % kv for kv in sorted(result.manifest["distributions"].items()))
    out.step("built %s: %d bytes, sha256 %s..., needs Python >= %d.%d (%s)"
             % (os.path.basename(path), result.size, result.sha256[:12], result.min_python[0],
                result.min_python[1], dists))
    return path, result


async def install(conn: Any, inv: Any, opts: argparse.Namespace, out: Out) -> int:
    base = opts.base_dir
    bundle, built = build_bundle(out)
    try:
        p = await probe(conn, inv, base, opts.python, out)
        out.step("connected to %s (home %s, %s)" % (inv.target, p.home, p.uname))
        if opts.lrms:
            lrms = layout.normalise_lrms(opts.lrms)
            why = "given on the command line"
            detected, dwhy = layout.detect_lrms(p.commands)
            if detected and detected != lrms and lrms != "local":
                out.say("note: the login shell's PATH suggests %s (%s), installing for %s as asked"
                        % (detected, dwhy, lrms))
        else:
            lrms, why = layout.detect_lrms(p.commands)
            if lrms is None:
                raise BootstrapError("cannot tell the batch system: %s; give it as the last argument "
                                     "(slurm|pbs|lsf|sge|condor)" % why)
            why = "detected: " + why
        out.step("batch system %s (%s)" % (lrms, why))
        bin_dir = layout.binpath(lrms, p.commands)
        if bin_dir is None and lrms in layout.SUBMIT_TOOL:
            out.say("warning: %s is not on the login shell's PATH; set %s_binpath in blah.config"
                    % (layout.SUBMIT_TOOL[lrms], lrms))
        python, pv = layout.choose_python(p.pythons, tuple(built.manifest["min_python"]),
                                          built.manifest.get("python_problems", {}), opts.python)
        out.step("head-node interpreter %s (Python %d.%d.%d)" % ((python,) + pv))
        if "." in p.existing and "glite/etc/pyblahp-install.json" not in p.existing \
                and "glite/bin/blahpd" in p.existing:
            out.say("note: ~/%s/glite/bin/blahpd exists and was not installed by blahp-bootstrap; "
                    "it is kept as bin/blahpd.orig" % base)
        await _install_files(conn, inv, opts, out, p, lrms, why, bin_dir, python, bundle, built)
    finally:
        shutil.rmtree(os.path.dirname(bundle), ignore_errors=True)
    if not opts.no_check:
        await check_installed(conn, inv, base, lrms, out)
    out.say("installed pyblahp %s for %s in ~/%s on %s; grid_resource = batch %s %s"
            % (__version__, lrms, base, inv.target, lrms, opts.target))
    return 0


async def _install_files(conn: Any, inv: Any, opts: argparse.Namespace, out: Out, p: layout.Probe,
                         lrms: str, why: str, bin_dir: Optional[str], python: str, bundle: str,
                         built: Any) -> None:
    base = opts.base_dir
    t = time.monotonic()
    async with conn.start_sftp_client() as sftp:
        for d in layout.DIRS:
            await sftp.makedirs("%s/%s" % (base, d), exist_ok=True)
        zpath = "%s/%s" % (base, layout.ZIPAPP)

        async def precompile(tmp: str) -> None:
            out.step("uploaded ~/%s (%d bytes, %.2f s)" % (zpath, built.size, time.monotonic() - t))
            if opts.no_precompile:
                return
            t1 = time.monotonic()
            label = "%s/%s" % (p.home.rstrip("/"), zpath)
            r = await conn.run(layout.precompile_command(python, tmp, label), check=False, timeout=300)
            if r.exit_status == 0 and (r.stdout or "").strip().isdigit():
                out.step("byte-compiled %s modules with %s on the head node (%.2f s)"
                         % (r.stdout.strip(), python, time.monotonic() - t1))
            else:
                out.say("warning: byte-compiling on the head node failed (blahpd still works, only starts "
                        "slower): %s" % ((r.stderr or r.stdout or "exit %s" % r.exit_status).strip()[-300:]))

        await _put_atomic(sftp, bundle, zpath, 0o644, precompile)

        launcher = layout.launcher_text(python, base).encode()
        lpath = "%s/%s" % (base, layout.LAUNCHER)
        if "glite/bin/blahpd" in p.existing:
            head = await _read_head(sftp, lpath)
            if layout.LAUNCHER_MARK.encode() not in head and not await sftp.exists(lpath + ".orig"):
                await _rename(sftp, lpath, lpath + ".orig")
        await _write_atomic(sftp, lpath, launcher, 0o755)
        out.step("wrote ~/%s/%s (runs %s)" % (base, layout.LAUNCHER, python))

        when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        config = layout.config_text(lrms, bin_dir, why, inv.target, when).encode()
        cpath = "%s/%s" % (base, layout.CONFIG)
        config_written = cpath
        ours = await _config_is_ours_unchanged(sftp, base, p.existing)
        if "glite/etc/blah.config" in p.existing and not opts.force_config and not ours:
            config_written = cpath + ".new"
            await _write_atomic(sftp, config_written, config, 0o644)
            out.step("kept the existing ~/%s/%s; the generated one is %s.new (use --force-config to replace)"
                     % (base, layout.CONFIG, layout.CONFIG))
        else:
            if "glite/etc/blah.config" in p.existing and not ours:
                old = await _read_all(sftp, cpath)
                await _write_atomic(sftp, cpath + ".bak", old, 0o644)
            await _write_atomic(sftp, cpath, config, 0o644)
            if await sftp.exists(cpath + ".new"):
                await sftp.remove(cpath + ".new")  # a proposal from an earlier run, now stale
            out.step("wrote ~/%s/%s: %s" % (base, layout.CONFIG, " ".join(
                line for line in config.decode().splitlines() if not line.startswith("#"))))

        record = {"pyblahp": __version__, "installed": when, "by": PROG, "lrms": lrms, "python": python,
                  "zipapp_sha256": built.sha256, "launcher_sha256": _sha256(launcher),
                  "config": os.path.basename(config_written), "config_sha256": _sha256(config)}
        await _write_atomic(sftp, "%s/%s" % (base, layout.RECORD),
                            (json.dumps(record, indent=1, sort_keys=True) + "\n").encode(), 0o644)


async def _config_is_ours_unchanged(sftp: Any, base: str, existing: List[str]) -> bool:
    """blah.config is the one an earlier run wrote and nobody edited since: replace it freely."""
    if layout.RECORD not in existing or layout.CONFIG not in existing:
        return False
    try:
        record = json.loads((await _read_all(sftp, "%s/%s" % (base, layout.RECORD))).decode("utf-8"))
        current = await _read_all(sftp, "%s/%s" % (base, layout.CONFIG))
    except Exception:  # unreadable or not JSON: not provably ours
        return False
    return record.get("config") == "blah.config" and record.get("config_sha256") == _sha256(current)


async def _read_all(sftp: Any, path: str) -> bytes:
    async with sftp.open(path, "rb") as f:
        return await f.read()


async def check_installed(conn: Any, inv: Any, base: str, lrms: str, out: Out) -> None:
    """Start the installed blahpd once as the gridmanager would (login shell), ask COMMANDS and
    BLAH_PING; the banner must be the first thing it prints."""
    t = time.monotonic()
    r = await conn.run(layout.check_command(base, inv.login), input="COMMANDS\r\nBLAH_PING 1 %s\r\n" % lrms,
                       check=False, timeout=120)
    stdout = r.stdout or ""
    lines = stdout.split("\r\n")
    gate = stdout.find("$GahpVersion")
    if gate < 0:
        raise BootstrapError("the installed blahpd printed no banner (exit %s): stdout %r, stderr %r"
                             % (r.exit_status, stdout[-300:], (r.stderr or "")[-500:]))
    if gate > 0:
        out.say("note: %d bytes of login-shell output came before the banner: %r" % (gate, stdout[:gate][:120]))
        lines = stdout[gate:].split("\r\n")
    ping = [ln for ln in lines if ln.startswith("1 ")]
    commands_ok = any(ln.startswith("S ") and "BLAH_JOB_SUBMIT" in ln for ln in lines)
    if not commands_ok:
        raise BootstrapError("the installed blahpd did not answer COMMANDS: %r" % stdout[-300:])
    verdict = ping[0][2:].replace("\\ ", " ") if ping else "no reply"
    out.step("installed blahpd answers (%.2f s): %s; BLAH_PING %s: %s"
             % (time.monotonic() - t, lines[0], lrms, verdict))
    if not ping or not ping[0].startswith("1 0 "):
        out.say("warning: BLAH_PING %s failed on the head node: %s (check that %s's commands work for this "
                "account in a login shell, and %s_binpath in blah.config)" % (lrms, verdict, lrms, lrms))


async def remove(conn: Any, inv: Any, opts: argparse.Namespace, out: Out) -> int:
    """Delete what blahp-bootstrap installed; keep anything else (and a config the admin changed)."""
    base = opts.base_dir
    async with conn.start_sftp_client() as sftp:
        rpath = "%s/%s" % (base, layout.RECORD)
        if not await sftp.exists(rpath):
            if await sftp.exists(base):
                raise BootstrapError("~/%s on %s was not installed by %s (no %s): refusing to touch it"
                                     % (base, inv.target, PROG, layout.RECORD))
            raise BootstrapError("~/%s does not exist on %s" % (base, inv.target))
        try:
            record = json.loads((await _read_all(sftp, rpath)).decode("utf-8"))
        except ValueError:
            record = {}
        removed, kept = [], []

        async def drop(rel: str, sha: Optional[str] = None) -> None:
            path = "%s/%s" % (base, rel)
            if not await sftp.exists(path):
                return
            if sha is not None and _sha256(await _read_all(sftp, path)) != sha:
                kept.append(rel + " (changed since it was installed)")
                return
            await sftp.remove(path)
            removed.append(rel)

        lpath = "%s/%s" % (base, layout.LAUNCHER)
        if await sftp.exists(lpath) and layout.LAUNCHER_MARK.encode() in await _read_head(sftp, lpath):
            await sftp.remove(lpath)
            removed.append(layout.LAUNCHER)
            if await sftp.exists(lpath + ".orig"):
                await _rename(sftp, lpath + ".orig", lpath)
                kept.append(layout.LAUNCHER + " (the blahpd that was there before, restored)")
        await drop(layout.ZIPAPP)
        config_name = record.get("config", "blah.config")
        await drop("glite/etc/" + config_name, record.get("config_sha256"))
        if config_name != "blah.config.new":
            await drop("glite/etc/blah.config.new")
        await drop(layout.RECORD)
        for d in ("glite/bin", "glite/lib", "glite/etc", "glite/log", "glite", "sandbox", "."):
            path = "%s/%s" % (base, d) if d != "." else base
            try:
                await sftp.rmdir(path)  # refused while anything else is left in it
                removed.append((d + "/") if d != "." else "~/%s/" % base)
            except Exception:
                pass
    out.step("removed from ~/%s on %s: %s" % (base, inv.target, ", ".join(removed) or "nothing"))
    if kept:
        out.say("kept: %s" % ", ".join(kept))
    return 0


def importlib_spec_ok() -> bool:
    """Is gahp-ssh's launcher importable here (the same code as this installer)?"""
    import importlib.util
    try:
        return importlib.util.find_spec("gahp.ssh.launcher") is not None
    except ImportError:
        return False


def gahp_ssh_argv(opts: argparse.Namespace) -> List[str]:
    """How --test reaches blahpd: gahp-ssh with our options (or --gahp-command verbatim)."""
    if opts.gahp_command:
        return shlex.split(opts.gahp_command)
    tail = rgahp_options(opts) + ["--rgahp-glite", "~/%s/glite" % opts.base_dir, opts.target, "blahpd"]
    # the launcher of the gahp package we run with first: the same code, whatever PATH holds
    if importlib_spec_ok():
        return [sys.executable, "-m", "gahp.ssh.launcher"] + tail
    script = shutil.which("gahp-ssh")
    if script:
        return [script] + tail
    raise BootstrapError("gahp-ssh is not available (no gahp.ssh.launcher, no gahp-ssh on PATH); "
                         "use --gahp-command to name a GAHP transport")


async def prepare_test(conn: Any, inv: Any, opts: argparse.Namespace, out: Out) -> Tuple[str, str, str]:
    """(lrms, sandbox dir, job name): reads blah.config's batch system, makes a sandbox dir."""
    base = opts.base_dir
    async with conn.start_sftp_client() as sftp:
        home = await sftp.realpath(".")
        lrms = opts.lrms
        if not lrms:
            cpath = "%s/%s" % (base, layout.CONFIG)
            if not await sftp.exists(cpath):
                raise BootstrapError("~/%s/%s not found on %s: install first, or give the batch system"
                                     % (base, layout.CONFIG, inv.target))
            text = (await _read_all(sftp, cpath)).decode("utf-8", "replace")
            found = [ln.split("=", 1)[1].strip().strip("'\"") for ln in text.splitlines()
                     if ln.strip().startswith("supported_lrms=")]
            if not found or not found[-1]:
                raise BootstrapError("no supported_lrms in ~/%s/%s; give the batch system" % (base, layout.CONFIG))
            lrms = found[-1].split(",")[0].split()[0]
        else:
            lrms = layout.normalise_lrms(lrms)
        name = "pyblahp-selftest-%s-%s" % (time.strftime("%Y%m%d-%H%M%S"), secrets.token_hex(3))
        sandbox = "%s/%s/sandbox/%s" % (home.rstrip("/"), base, name)
        await sftp.makedirs(sandbox, exist_ok=True)
    out.step("test sandbox %s on %s" % (sandbox, inv.target))
    return lrms, sandbox, name


async def fetch_text(conn: Any, path: str) -> Optional[str]:
    async with conn.start_sftp_client() as sftp:
        try:
            return (await _read_all(sftp, path)).decode("utf-8", "replace")
        except Exception:
            return None


async def cleanup_test(conn: Any, sandbox: str) -> None:
    async with conn.start_sftp_client() as sftp:
        try:
            for n in await sftp.listdir(sandbox):
                if n not in (".", ".."):
                    try:
                        await sftp.remove("%s/%s" % (sandbox, n))
                    except Exception:
                        pass
            await sftp.rmdir(sandbox)
        except Exception:
            pass


async def self_test(conn: Any, inv: Any, opts: argparse.Namespace, out: Out) -> int:
    from . import remote_selftest
    lrms, sandbox, name = await prepare_test(conn, inv, opts, out)
    argv = gahp_ssh_argv(opts)
    loop = asyncio.get_running_loop()

    def fetch(path: str) -> Optional[str]:
        return asyncio.run_coroutine_threadsafe(fetch_text(conn, path), loop).result(60)

    result = await loop.run_in_executor(None, lambda: remote_selftest.run(
        argv, lrms, sandbox, out.stream, name=name, timeout=opts.timeout, t0=out.t0, fetch_output=fetch))
    if result.ok:
        await cleanup_test(conn, sandbox)
    else:
        out.say("the test sandbox %s is left for inspection" % sandbox)
    return 0 if result.ok else 1


async def _run(opts: argparse.Namespace, out: Out) -> int:
    inv = invocation(opts)
    t = time.monotonic()
    conn = await open_connection(inv)
    out.debug("SSH connection to %s in %.2f s" % (inv.target, time.monotonic() - t))
    try:
        if opts.remove:
            return await remove(conn, inv, opts, out)
        if opts.test:
            return await self_test(conn, inv, opts, out)
        return await install(conn, inv, opts, out)
    finally:
        conn.close()
        await conn.wait_closed()


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = _parser()
    opts = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    out = Out(opts.verbose)
    try:
        layout.check_base(opts.base_dir)
        if opts.remove and opts.lrms:
            parser.error("--remove takes no batch system")
        if opts.lrms:
            layout.normalise_lrms(opts.lrms)
        return asyncio.run(_run(opts, out))
    except (BootstrapError, LayoutError) as e:
        sys.stderr.write("%s: %s\n" % (PROG, e))
        return 1
    except KeyboardInterrupt:
        return 130


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
