"""BannerGate: login-shell noise before $GahpVersion is withheld, the rest passes untouched."""
from __future__ import annotations

from hypothesis import given, settings, strategies as st

from gahp.ssh.banner import BANNER_PREFIX, BannerGate

BANNER = b"$GahpVersion: 1.8.0 Mar 31 2008 INFN\\ blahpd\\ (poly,new_esc_format) $\r\n"


def run(chunks, limit=64 * 1024):
    gate = BannerGate(noise_limit=limit)
    passed, noise = bytearray(), bytearray()
    for c in chunks:
        p, n = gate.feed(c)
        passed += p
        noise += n
    noise += gate.eof()
    return gate, bytes(passed), bytes(noise)


def split(data, cuts):
    cuts = sorted(set(c for c in cuts if 0 < c < len(data)))
    bounds = [0] + cuts + [len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:])]


# a noise line: any bytes without "\n" that do not start with the banner prefix
noise_line = st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")).filter(
    lambda b: not b.startswith(BANNER_PREFIX)).map(lambda b: b + b"\n")
noise_lines = st.lists(noise_line, max_size=8).map(b"".join)
rest = st.binary(max_size=200)
cut_points = st.lists(st.integers(min_value=0, max_value=2000), max_size=30)


@settings(max_examples=400, deadline=None)
@given(noise_lines, st.binary(max_size=30), rest, cut_points)
def test_any_split_passes_banner_and_rest_exactly(noise, banner_tail, rest_bytes, cuts):
    banner = BANNER_PREFIX + banner_tail.replace(b"\n", b"") + b"\n"
    data = noise + banner + rest_bytes
    gate, passed, withheld = run(split(data, cuts))
    assert passed == banner + rest_bytes
    assert withheld == noise
    assert gate.seen and gate.dropped == 0


@settings(max_examples=300, deadline=None)
@given(noise_lines, rest, cut_points, st.integers(min_value=0, max_value=100))
def test_noise_is_capped(noise, rest_bytes, cuts, limit):
    data = noise + BANNER + rest_bytes
    gate, passed, withheld = run(split(data, cuts), limit=limit)
    assert passed == BANNER + rest_bytes
    assert withheld == noise[:limit]
    assert gate.dropped == max(0, len(noise) - limit)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), cut_points, st.integers(min_value=0, max_value=400))
def test_no_banner_nothing_passes(data, cuts, limit):
    if data.startswith(BANNER_PREFIX) or b"\n" + BANNER_PREFIX in data:
        data = data.replace(BANNER_PREFIX, b"$Gahp")
    gate, passed, withheld = run(split(data, cuts), limit=limit)
    assert passed == b""
    assert not gate.seen
    assert withheld == data[:limit]
    assert gate.dropped == max(0, len(data) - limit)


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=20), cut_points)
def test_banner_mid_line_is_noise(prefix, cuts):
    # at least one byte before "$GahpVersion" on the same line, and the line itself not a banner
    prefix = b"x" + prefix.replace(b"\n", b"x")
    line = prefix + BANNER[:-2] + b"\n"
    data = line + BANNER + b"REST"
    gate, passed, withheld = run(split(data, cuts))
    assert withheld == line
    assert passed == BANNER + b"REST"


def test_noise_lines_returned_as_they_complete():
    gate = BannerGate()
    assert gate.feed(b"Disk quota: 90%\nWel") == (b"", b"Disk quota: 90%\n")
    assert gate.feed(b"come\n$Gahp") == (b"", b"Welcome\n")
    assert not gate.seen
    assert gate.feed(b"Version: x $\r\nRESULTS\n") == (b"$GahpVersion: x $\r\nRESULTS\n", b"")
    assert gate.seen
    assert gate.feed(b"more\n") == (b"more\n", b"")
    assert gate.feed(b"") == (b"", b"")
    assert gate.eof() == b""


def test_banner_passes_before_its_newline():
    gate = BannerGate()
    assert gate.feed(b"$GahpVersion") == (b"$GahpVersion", b"")
    assert gate.seen


def test_same_chunk_noise_banner_and_rest():
    gate = BannerGate()
    assert gate.feed(b"a\r\n\n" + BANNER + b"S 1\n") == (BANNER + b"S 1\n", b"a\r\n\n")


def test_prefix_must_be_exact_at_line_start():
    for bad in (b"\r$GahpVersion x\n", b"\xef\xbb\xbf$GahpVersion x\n", b" $GahpVersion x\n",
                b"$gahpversion x\n", b"$GahpVersio\n"):
        gate = BannerGate()
        assert gate.feed(bad) == (b"", bad)
        assert not gate.seen


def test_eof_returns_partial_line():
    gate = BannerGate()
    assert gate.feed(b"line\npartial") == (b"", b"line\n")
    assert gate.eof() == b"partial"
    gate = BannerGate()
    assert gate.feed(b"$Gah") == (b"", b"")
    assert gate.eof() == b"$Gah"


def test_chatty_login_memory_is_bounded():
    gate = BannerGate(noise_limit=1000)
    chunk = b"y" * 65536
    total = 0
    for _ in range(64):                      # 4 MiB of one endless line
        p, n = gate.feed(chunk)
        assert p == b"" and n == b""
        total += len(chunk)
    assert len(gate._line) <= 1000
    p, n = gate.feed(b"\n" + BANNER)
    assert p == BANNER and n == b"y" * 1000
    assert gate.dropped == total + 1 - 1000
