from hypothesis import given, strategies as st

from gahp.framing import LineSplitter, LineTooLong


def feed_all(chunks, max_line=1 << 20, close=True):
    s = LineSplitter(max_line)
    out = []
    for c in chunks:
        out.extend(s.feed(c))
    if close:
        out.extend(s.close())
    return out


def test_every_terminator_ends_a_line():
    assert feed_all([b"A\nB\rC\x00D\r\n"]) == [b"A", b"B", b"C", b"D"]


def test_runs_of_terminators_and_blank_lines_produce_nothing():
    assert feed_all([b"\r\n\r\n\n\n\x00A\r\r\nB\n\n"]) == [b"A", b"B"]


def test_partial_line_waits_for_its_terminator():
    s = LineSplitter()
    assert s.feed(b"COMM") == []
    assert s.feed(b"ANDS") == []
    assert s.feed(b"\r") == [b"COMMANDS"]
    assert s.feed(b"\n") == []


def test_unterminated_last_line_counts_at_eof():
    assert feed_all([b"A\nQUIT"]) == [b"A", b"QUIT"]


def test_line_of_exactly_the_limit_is_kept_one_more_is_rejected():
    assert feed_all([b"x" * 10 + b"\n"], max_line=10) == [b"x" * 10]
    assert feed_all([b"x" * 11 + b"\nOK\n"], max_line=10) == [LineTooLong(11), b"OK"]


def test_long_line_in_many_chunks_is_counted_and_discarded():
    chunks = [b"y" * 7] * 100 + [b"\r\nNEXT\r\n"]
    assert feed_all(chunks, max_line=50) == [LineTooLong(700), b"NEXT"]


def test_eof_in_the_middle_of_a_long_line_still_reports_it():
    assert feed_all([b"z" * 30], max_line=10) == [LineTooLong(30)]


line_bytes = st.binary(min_size=1, max_size=40).filter(lambda b: not any(c in b for c in b"\r\n\x00"))
terminators = st.lists(st.sampled_from([b"\n", b"\r", b"\x00", b"\r\n"]), min_size=1, max_size=3).map(b"".join)


@given(st.lists(st.tuples(line_bytes, terminators), max_size=20), st.data())
def test_any_chunking_gives_the_same_lines(pairs, data):
    stream = b"".join(l + t for l, t in pairs)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    chunks, prev = [], 0
    for c in cuts + [len(stream)]:
        chunks.append(stream[prev:c])
        prev = c
    assert feed_all(chunks) == [l for l, _ in pairs]
    assert feed_all(chunks) == feed_all([stream])


@given(st.lists(st.tuples(st.binary(min_size=1, max_size=30).filter(lambda b: not any(c in b for c in b"\r\n\x00")),
                          terminators), max_size=15), st.integers(1, 20), st.data())
def test_limit_is_applied_per_line_under_any_chunking(pairs, limit, data):
    stream = b"".join(l + t for l, t in pairs)
    step = data.draw(st.integers(1, max(1, len(stream))))
    chunks = [stream[i:i + step] for i in range(0, len(stream), step)]
    expected = [l if len(l) <= limit else LineTooLong(len(l)) for l, _ in pairs]
    assert feed_all(chunks, max_line=limit) == expected
