"""A realistic job: 300 records written to a file opened in a `with` block; one
malformed record fails deep in a helper. At the prompt the user fixes the
value (or the record) and retries; the output file is then identical to that of
a run on clean data."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_helpers import REPO, Session, in_order, marker, python, resurrect

BAD = 117
GOOD_PRICE = f"{1.25 * (BAD % 11) + 0.5:.2f}"
GOOD_LINE = f"item-{BAD:03d},{BAD % 7 + 1},{GOOD_PRICE}"


@pytest.fixture
def clean_output(tmp_path) -> str:
    out = tmp_path / "clean.out"
    r = python("records_job.py", str(out))
    assert r.status == 0
    text = out.read_text()
    assert len(text.splitlines()) == 301
    return text


def _paused_job(out: Path) -> Session:
    s = Session("records_job.py", str(out), "--bad", str(BAD))
    in_order(
        s.opened(),
        "ValueError: could not convert string to float: 'n/a'",
        f"records_job.py:{marker('records_job.py', 'fail')} in parse_price()",
        "text = 'n/a'",
    )
    return s


def test_fix_the_value_and_retry(tmp_path, clean_output):
    out = tmp_path / "job.out"
    with _paused_job(out) as s:
        s.do(f"text = {GOOD_PRICE!r}")
        result, status = s.finish("retry")
    assert status == 0
    assert "wrote 300 records" in result
    assert out.read_text() == clean_output


def test_use_a_value_for_the_failing_return(tmp_path, clean_output):
    out = tmp_path / "job.out"
    with _paused_job(out) as s:
        _, status = s.finish(f"use {float(GOOD_PRICE)}")
    assert status == 0
    assert out.read_text() == clean_output


def test_fix_the_record_in_an_outer_frame_and_retry_there(tmp_path, clean_output):
    out = tmp_path / "job.out"
    with _paused_job(out) as s:
        where = s.do("up 2")
        assert f"records_job.py:{marker('records_job.py', 'process')} in process()" in where
        assert s.do("p out.closed").strip() == "False"  # the `with` block is still open
        assert s.do("p line").strip() == f"'item-{BAD:03d},{BAD % 7 + 1},n/a'"
        s.do(f"line = {GOOD_LINE!r}")
        _, status = s.finish("retry")
    assert status == 0
    assert out.read_text() == clean_output


def test_raise_loses_the_job_as_python_would(tmp_path):
    out = tmp_path / "job.out"
    plain = python("records_job.py", str(tmp_path / "plain.out"), "--bad", str(BAD))
    with _paused_job(out) as s:
        result, status = s.finish("raise")
    assert status == plain.status == 1
    assert result.endswith(plain.stderr.replace("plain.out", "job.out"))
    # the `with` block closed the file on the way out: the lines before the bad one
    assert len(out.read_text().splitlines()) == BAD


def test_the_example_finishes_under_skip(tmp_path):
    out = tmp_path / "example.out"
    r = resurrect("run", "--on-error", "skip", "examples/records_job.py", str(out), cwd=REPO)
    assert r.status == 0
    assert "processed 300 records" in r.stdout
    assert "resurrect: skipped " in r.stderr
    assert "could not convert string to float: 'n/a'" in r.stderr
    lines = out.read_text().splitlines()
    assert f"item-{BAD:03d}" not in out.read_text()  # the bad record was skipped
    assert len(lines) == 300  # the 299 good records and the total
