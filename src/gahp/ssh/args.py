"""remote_gahp's command line, parsed into an ``Invocation`` (pure: no I/O, no asyncssh).

Parsing follows HTCondor's ``remote_gahp`` (src/condor_gridmanager/remote_gahp, 24.x/25.x) token for
token, with these deliberate differences:

* The GAHP name the gridmanager appends (``blahpd``, ``batch_gahp``, ``condor_ft-gahp``) is a keyword.
  remote_gahp's unconditional ``shift`` after the loop drops the first leftover argument (``host
  blahpd a b`` sends only ``b``); here every leftover argument is kept in ``gahp_args``, and a GAHP
  name at the end of the leftovers is taken as the channel, not as an argument. So
  ``host --rgahp-script S blahpd`` runs ``S`` (as remote_gahp), and ``host -x blahpd`` runs blahpd
  with ``-x`` (remote_gahp: "Missing remote command").
* ``batch_gahp`` (the old name) runs ``bin/blahpd``: pyblahp installs no ``bin/batch_gahp``.
* ``[ipv6]:port`` hosts are accepted (remote_gahp's host regex has no brackets).
* An option missing its value is a usage error (remote_gahp's ``shift 2`` fails and loops forever).
* A port outside 1-65535 is a usage error (ssh would reject it with status 255).
* Usage and help go to stderr (stdout is the GAHP protocol pipe); ``--help`` still exits 0.

Kept as remote_gahp does it, although odd:

* A host token that does not match the regex is skipped silently, so the next bare word becomes the
  host candidate (recorded in ``Invocation.warnings`` / ``UsageError.notes``).
* The last writer wins for user and port: ``alice@h --rgahp-user bob`` is bob, ``--rgahp-user bob
  alice@h`` is alice.
* Any other ``-x`` option stops option parsing; it and what follows are GAHP arguments.
* ``condor_ft-gahp`` overrides ``--rgahp-script`` (the transfer channel always runs the stock ft-gahp).
"""
from __future__ import annotations

# The launcher parses its command line on every GAHP start: no typing, re, shlex or ipaddress at
# import time (re alone drags in enum, functools and collections). The host syntax is matched by
# plain string code equivalent to remote_gahp's regex; ipaddress is imported for bracketed hosts
# only, re and shlex by the remote-command builder (master side).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, List, Optional, Tuple

BLAHPD = "blahpd"
FT_GAHP = "condor_ft-gahp"
# remote_gahp's ``$REMOTE_CMD == "blahpd" || == "batch_gahp"`` branch
_GAHP_KEYWORDS = {"blahpd": BLAHPD, "batch_gahp": BLAHPD, FT_GAHP: FT_GAHP}

# remote_gahp HEAD (dotted user names since HTCONDOR-3581); every group is optional and an empty
# group keeps the previous value (``${BASH_REMATCH[n]:-$OLD}``).
#   ^(([A-Za-z_][A-Za-z0-9_.-]*)@)?([A-Za-z0-9.-]+)(:([0-9]*))?$
# and, for IPv6 (ours),
#   ^(([A-Za-z_][A-Za-z0-9_.-]*)@)?\[([0-9A-Fa-f:.]+(%[A-Za-z0-9_.-]+)?)\](:([0-9]*))?$
# are matched by _parse_host with string operations (see there).
_ALPHA = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_DIGITS = "0123456789"
_USER_FIRST = _ALPHA + "_"
_USER_CHARS = _ALPHA + _DIGITS + "_.-"
_HOST_CHARS = _ALPHA + _DIGITS + ".-"
_ADDR6_CHARS = _DIGITS + "ABCDEFabcdef:."
_ZONE_CHARS = _USER_CHARS

# Characters that need no quoting in the remote shell; ``~`` stays bare so it expands remotely.
_SAFE_PATH_RE = r"[A-Za-z0-9_./~-]*"  # whole string (fullmatch): a trailing newline needs quoting too
_TILDE_PREFIX_RE = r"^~[A-Za-z0-9_.-]*/"

_PROG = "gahp-ssh"


class UsageError(Exception):
    """A bad command line; the message is one line for stderr (exit 1, as remote_gahp).

    ``notes``: extra lines worth showing (e.g. a host token that was skipped as unparsable).
    """

    def __init__(self, message: str, notes: Optional[List[str]] = None) -> None:
        super().__init__(message)
        self.notes: List[str] = list(notes or [])


class HelpRequested(Exception):
    """``-h``/``--help``: print ``usage()`` to stderr and exit 0."""


class Invocation:
    """What to run where.

    user/port are None when neither ``user@``/``:port`` nor ``--rgahp-user`` gave them (then the
    SSH config or the local account decides, as with OpenSSH since HTCondor 23.1).
    host is bare (no brackets for IPv6).
    key/passfile: None = the remote_gahp defaults (``~/.ssh/bosco_key.rsa``, ``~/.bosco/.pass``)
    used only when the file exists; "" = ``--rgahp-nokey`` / ``--rgahp-nopass``.
    gahp: "blahpd" | "condor_ft-gahp" | other (a command string: ``--rgahp-script`` or a bare word
    after the host, remote_gahp's REMOTE_CMD). script: the ``--rgahp-script`` value as given.
    """

    def __init__(self) -> None:
        self.host: str = ""
        self.user: Optional[str] = None
        self.port: Optional[int] = None
        self.key: Optional[str] = None
        self.passfile: Optional[str] = None
        self.glite: str = "~/bosco/glite"
        self.script: Optional[str] = None
        self.batchmode: bool = True
        self.login: bool = True
        self.rvgahp_socket: Optional[str] = None
        self.gahp: str = "blahpd"
        self.gahp_args: List[str] = []
        # gahp-ssh's own options (not in remote_gahp)
        self.known_hosts: Optional[List[str]] = None  # None: ~/.ssh/known_hosts + /etc/ssh/ssh_known_hosts
        self.ssh_config: Optional[str] = None          # None: ~/.ssh/config when it exists; "none": no config
        self.control_dir: Optional[str] = None         # None: ~/.pyblahp/ssh
        self.share: bool = True                         # False: --no-share, a direct connection of our own
        self.persist: float = 300.0                     # idle master lifetime, seconds
        self.connect_timeout: float = 30.0
        self.keepalive: float = 30.0                    # 0: no keepalives
        self.warnings: List[str] = []                   # non-fatal parse remarks for stderr

    def __repr__(self) -> str:
        return "Invocation(%r)" % self.__dict__

    @property
    def target(self) -> str:
        """user@host:port for messages."""
        host = "[%s]" % self.host if ":" in self.host else self.host
        t = "%s@%s" % (self.user, host) if self.user else host
        return "%s:%d" % (t, self.port) if self.port else t

    @property
    def is_ft(self) -> bool:
        return self.gahp == FT_GAHP


def usage() -> str:
    """remote_gahp's usage text plus gahp-ssh's own options (for stderr)."""
    return (
        "Usage: {p} [options] remote_hostname [options] REMOTE_CMD [remote arguments]\n"
        "       {p} [options] remote_hostname [remote options and arguments]\n"
        "Options:\n"
        "  --rgahp-user REMOTE_USER      user name on the remote host\n"
        "  --rgahp-key PRIVATE-KEY-PATH  location of ssh private key (~/.ssh/bosco_key.rsa)\n"
        "  --rgahp-nokey                 no ssh private key or key already enabled (same as empty rgahp-key)\n"
        "  --rgahp-pass PASSPHRASE       location of passphrase protecting ssh private key (~/.bosco/.pass)\n"
        "  --rgahp-nopass                no passphrase protecting ssh private key (same as empty rgahp-pass)\n"
        "  --rgahp-glite PATH            path to the directory of the script (~/bosco/glite)\n"
        "  --rgahp-script SCRIPT         command to start up the blahp instead of PATH/bin/blahpd\n"
        "  --rgahp-nobatchmode           disable SSH BatchMode (allow password/keyboard-interactive)\n"
        "  --rgahp-nologin               disable the bash -l flag\n"
        "  --rvgahp-socket SOCKET_FILE   use the reverse gahp with the given socket file\n"
        "  --help, -h                    print this\n"
        "gahp-ssh options:\n"
        "  --known-hosts FILE            known_hosts file (repeatable; default ~/.ssh/known_hosts\n"
        "                                and /etc/ssh/ssh_known_hosts)\n"
        "  --ssh-config FILE|none        OpenSSH client config (default ~/.ssh/config if present)\n"
        "  --control-dir DIR             directory of the shared-connection sockets (~/.pyblahp/ssh)\n"
        "  --no-share                    use a connection of our own, no shared master\n"
        "  --persist SECONDS             idle lifetime of the shared master (300)\n"
        "  --connect-timeout SECONDS     SSH connect timeout (30)\n"
        "  --keepalive SECONDS           keepalive interval, 0 to disable (30)\n"
        " remote_hostname: [USER@]HOST[:PORT] or [USER@][IPV6]:PORT\n"
        " remote arguments are passed to the REMOTE_CMD;\n"
        " REMOTE_CMD (blahpd, condor_ft-gahp) can be expressed as argument or option\n"
    ).format(p=_PROG)


def _only(text: str, chars: str) -> bool:
    """Every character of ``text`` is in ``chars`` (a regex ``[...]*``); True for ""."""
    return not text.strip(chars)


def _parse_host(token: str) -> Optional[Tuple[str, str, str]]:
    """(user, host, port) strings ("" = not given) or None when the token is not a host.

    The regexes above, by hand: none of their classes holds ``@``, ``:`` (outside the brackets),
    ``[``, ``]`` or a newline, so the token splits at those characters without backtracking, and
    ``$`` also matches before one final newline, as in Python's ``re``.
    """
    if token.endswith("\n"):
        token = token[:-1]
    user, at, rest = token.rpartition("@")
    if at and not (user[:1] and user[0] in _USER_FIRST and _only(user[1:], _USER_CHARS)):
        return None     # an "@" the user group cannot take: neither regex matches
    if rest.startswith("["):
        addr, close, port = rest[1:].partition("]")
        if not close or (port and not (port[0] == ":" and _only(port[1:], _DIGITS))):
            return None
        ip, pct, zone = addr.partition("%")
        if not (ip and _only(ip, _ADDR6_CHARS)) or (pct and not (zone and _only(zone, _ZONE_CHARS))):
            return None
        import ipaddress
        try:
            ipaddress.IPv6Address(ip)
        except ValueError:
            return None
        return user, addr, port[1:]
    host, colon, port = rest.partition(":")
    if not (host and _only(host, _HOST_CHARS)) or (colon and not _only(port, _DIGITS)):
        return None
    return user, host, port


def _seconds(opt: str, value: str, positive: bool = False) -> float:
    try:
        v = float(value)
    except ValueError:
        v = -1.0
    if v != v or v < 0 or (positive and v == 0) or v == float("inf"):
        raise UsageError("Invalid value for %s: %s" % (opt, value))
    return v


_VALUE_OPTS = {
    "--rgahp-user", "--rgahp-key", "--rgahp-pass", "--rgahp-glite", "--rgahp-script",
    "--rvgahp-socket", "--known-hosts", "--ssh-config", "--control-dir", "--persist",
    "--connect-timeout", "--keepalive",
}
# gahp-ssh's own options also take --opt=value (remote_gahp's never did).
_OWN_OPTS = {"--known-hosts", "--ssh-config", "--control-dir", "--persist", "--connect-timeout",
             "--keepalive"}


def parse(argv: List[str]) -> Invocation:
    """``remote_gahp`` arguments (the gridmanager appends the GAHP name) -> Invocation."""
    inv = Invocation()
    args = list(argv)
    host_set = False
    cmd = ""         # remote_gahp's REMOTE_CMD
    port = ""
    user = ""
    i = 0
    n = len(args)
    while i < n:
        tok = args[i]
        opt, eq, inline = tok.partition("=")
        if eq and opt in _OWN_OPTS:
            tok, value = opt, inline
            consumed = 1
        elif tok in _VALUE_OPTS:
            if i + 1 >= n:
                raise UsageError("Option %s requires an argument" % tok)
            value = args[i + 1]
            consumed = 2
        else:
            value, consumed = "", 1

        if tok in ("-h", "--help"):
            raise HelpRequested()
        elif tok == "--rgahp-user":
            user = value
        elif tok == "--rgahp-nokey":
            inv.key = ""
        elif tok == "--rgahp-key":
            inv.key = value
        elif tok == "--rgahp-pass":
            inv.passfile = value
        elif tok == "--rgahp-nopass":
            inv.passfile = ""
        elif tok == "--rgahp-glite":
            inv.glite = value
        elif tok == "--rgahp-script":
            inv.script = value
            cmd = value
        elif tok == "--rgahp-nobatchmode":
            inv.batchmode = False
        elif tok == "--rgahp-nologin":
            inv.login = False
        elif tok.startswith("--rgahp-"):
            raise UsageError("Unknown option: %s" % tok)
        elif tok == "--rvgahp-socket":
            inv.rvgahp_socket = value
        elif tok == "--known-hosts":
            inv.known_hosts = (inv.known_hosts or []) + [value]
        elif tok == "--ssh-config":
            inv.ssh_config = value
        elif tok == "--control-dir":
            inv.control_dir = value
        elif tok == "--no-share":
            inv.share = False
        elif tok == "--persist":
            inv.persist = _seconds(tok, value)
        elif tok == "--connect-timeout":
            inv.connect_timeout = _seconds(tok, value, positive=True)
        elif tok == "--keepalive":
            inv.keepalive = _seconds(tok, value)
        elif tok == "--":
            i += 1
            if i < n and (cmd == "" or args[i] == FT_GAHP):
                cmd = args[i]
                i += 1
            break
        elif tok.startswith("-"):
            # remote_gahp: ``-* ) break``; the option and the rest become GAHP arguments.
            break
        elif not host_set:
            parsed = _parse_host(tok)
            if parsed is None:
                inv.warnings.append("Ignoring unparsable hostname: %s" % tok)
            else:
                u, h, p = parsed
                user = u or user
                inv.host = h
                port = p or port
                host_set = True
        elif tok in _GAHP_KEYWORDS:
            # The channel name the gridmanager appends; with --rgahp-script already given,
            # remote_gahp keeps the script for the batch channel, and the ft-gahp always wins.
            if cmd == "" or _GAHP_KEYWORDS[tok] == FT_GAHP:
                cmd = tok
        elif cmd == "":
            cmd = tok
        else:
            break
        i += consumed

    rest = args[i:]
    if rest and rest[-1] in _GAHP_KEYWORDS:
        tail = rest.pop()
        if cmd == "" or _GAHP_KEYWORDS[tail] == FT_GAHP:
            cmd = tail

    if not host_set:
        raise UsageError("Missing hostname", inv.warnings)
    if cmd == "":
        raise UsageError("Missing remote command", inv.warnings)

    inv.user = user or None
    if port:
        p = int(port)
        if not 0 < p < 65536:
            raise UsageError("Bad port '%s'" % port)
        inv.port = p
    inv.gahp = _GAHP_KEYWORDS.get(cmd, cmd)
    inv.gahp_args = rest
    return inv


def _shell_path(path: str) -> str:
    """A path as one word for the remote bash, quoted only when needed, ``~user/`` left bare."""
    import re
    import shlex
    if re.fullmatch(_SAFE_PATH_RE, path):
        return path
    m = re.match(_TILDE_PREFIX_RE, path)
    head = m.group(0) if m else ""
    tail = path[len(head):]
    return head + (shlex.quote(tail) if tail else "")


def _single_quoted(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def remote_command(inv: Invocation, forward_port: Optional[int] = None) -> str:
    """The command string the remote account's shell runs (remote_gahp's, client.md §6.3).

    Byte-identical to remote_gahp's ssh command words without the trailing space before the closing
    quote. Differences: GAHP arguments are shell-quoted one by one (remote_gahp pasted ``$*`` raw),
    and the ft-gahp command does not start with ``echo Allocated port N for remote forward to 1>&2 ;``:
    the session layer prints that line on the CE once the forward is actually bound (remote_gahp's
    echo ran even when its tunnel had not been set up). ``forward_port`` is therefore not part of the
    string; it is accepted so callers need not care which channel they build.
    """
    del forward_port
    g = _shell_path(inv.glite)
    if inv.gahp == FT_GAHP:
        words = ["CONDOR_CONFIG=%s/etc/condor_config.ft-gahp" % g, "%s/bin/condor_ft-gahp" % g, "-f"]
    else:
        words = ["BLAHPD_LOCATION=%s" % g, "GLITE_LOCATION=%s" % g]
        if inv.gahp == BLAHPD:
            words.append("%s/bin/blahpd" % g)
        else:
            # an admin-given command string (--rgahp-script): run as is, like remote_gahp
            words.append(inv.gahp)
    import shlex
    words.extend(shlex.quote(a) for a in inv.gahp_args)
    bash = "/bin/bash -l -c " if inv.login else "/bin/bash -c "
    return bash + _single_quoted(" ".join(words))


_BOGUS = ("127.0.0.1", 12345)


def gridmanager_address(environ: Dict[str, str]) -> Tuple[str, int, Optional[str]]:
    """(host, port, warning) of the gridmanager from ``CONDOR_INHERIT`` for the ft-gahp tunnel.

    remote_gahp: ``sed 's/[^<]*<\\([^?>]*\\).*/\\1/'``, i.e. the text in the first ``<...>`` up to
    ``?`` or ``>``; ``[v6addr]:port`` for IPv6. When the variable is unset or empty the bogus
    127.0.0.1:12345 is used with remote_gahp's warning; when it holds no usable address (remote_gahp
    would hand the garbage to ``ssh -R``) the same fallback is used with a warning saying so.
    """
    inherit = environ.get("CONDOR_INHERIT", "")
    if not inherit:
        return _BOGUS + ("CONDOR_INHERIT not defined, using bogus value 127.0.0.1:12345 "
                         "for gridmanager address",)
    # re.search(r"<([^?>]*)", inherit): from the first "<" up to "?" or ">"
    addr = inherit.partition("<")[2]
    for stop in "?>":
        addr = addr.partition(stop)[0]
    parsed = _split_hostport(addr)
    if parsed is None:
        return _BOGUS + ("CONDOR_INHERIT has no usable gridmanager address (%r), using bogus value "
                         "127.0.0.1:12345 for gridmanager address" % addr,)
    return parsed + (None,)


def _split_hostport(addr: str) -> Optional[Tuple[str, int]]:
    # ^\[([^\]]+)\]:([0-9]+)$ or ^([^:\[\]]+):([0-9]+)$ ("$" also before one final newline)
    if addr.endswith("\n"):
        addr = addr[:-1]
    if addr.startswith("["):
        host, close, port = addr[1:].partition("]")
        if not close or "]" in host or not port.startswith(":"):
            return None
        port = port[1:]
    else:
        host, _, port = addr.partition(":")
        if "[" in host or "]" in host:
            return None
    if not host or not port or not _only(port, _DIGITS):
        return None
    p = int(port)
    if not 0 < p < 65536:
        return None
    return host, p
