import pytest

from blahp.jobid import JobRef, MalformedJobId, lrms_of, parse_dated


@pytest.mark.parametrize("raw,lrms,batch,cluster,date", [
    ("slurm/20250315/4567", "slurm", "4567", None, "20250315"),
    ("slurm/20250315/4567@other", "slurm", "4567", "other", "20250315"),
    ("sge/20250315100003/12", "sge", "12", None, "20250315100003"),
    ("local/notadate/9", "local", "9", None, None),
    ("nqs/77", "nqs", "77", None, None),
])
def test_parse(raw, lrms, batch, cluster, date):
    assert parse_dated(raw) == JobRef(raw, lrms, batch, cluster, date)


@pytest.mark.parametrize("raw", ["garbage", "slurm", "slurm/", "/20260101/5", "Slurm/2026/5",
                                 "slurm/20260101/", "slurm/20260101/5@", "slurm/20260101/5@a b",
                                 "../x/1", "slurm/20260101/12x"])
def test_malformed(raw):
    with pytest.raises(MalformedJobId):
        parse_dated(raw, r"\d+")


def test_lrms_of():
    assert lrms_of("pbs/20260101/1.server") == "pbs"
    with pytest.raises(MalformedJobId):
        lrms_of("nolrms")
