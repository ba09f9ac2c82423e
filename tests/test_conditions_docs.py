"""The worked examples of docs/conditions.md, run as scripts.

Each fenced ``python`` block is written to a file and run in a fresh
interpreter; the ``output`` block that follows it must equal its stdout
(``<file>`` stands for the script's path, ``<basename>`` for its name)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import resurrect

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "conditions.md"
PYTHON_DIR = Path(resurrect.__file__).resolve().parent.parent

# Blocks whose behaviour depends on a known core bug, by the first words of
# their heading: (condition, reason).
KNOWN_CORE_BUGS: dict[str, tuple[bool, str]] = {}

# The names the examples use as `resurrect.X`; until the package's __init__
# exports them, the runner adds them (the contract is INTERFACE.md's).
RUNNER = """
import runpy, sys
import resurrect
from resurrect import conditions, skip
for module in (conditions, skip):
    for name in module.__all__:
        if not hasattr(resurrect, name):
            setattr(resurrect, name, getattr(module, name))
path = sys.argv[1]
sys.argv = sys.argv[1:]
runpy.run_path(path, run_name="__main__")
"""


def blocks():
    text = DOC.read_text()
    out = []
    heading = ""
    pattern = re.compile(r"^(#+ [^\n]*)$|^```(\w+)\n(.*?)^```$", re.M | re.S)
    items = list(pattern.finditer(text))
    for i, m in enumerate(items):
        if m.group(1):
            heading = m.group(1).lstrip("#").strip()
            continue
        if m.group(2) != "python":
            continue
        expected = None
        if i + 1 < len(items) and items[i + 1].group(2) == "output":
            expected = items[i + 1].group(3)
        n = sum(1 for _, h, _, _ in out if h == heading)
        out.append((f"{heading} #{n + 1}", heading, m.group(3), expected))
    return out


BLOCKS = blocks()


def test_the_page_has_examples():
    assert len(BLOCKS) >= 10
    assert all(expected is not None for _, _, _, expected in BLOCKS)


@pytest.mark.parametrize(
    ("name", "heading", "source", "expected"), BLOCKS, ids=[b[0] for b in BLOCKS]
)
def test_doc_example(tmp_path, name, heading, source, expected):
    for prefix, (condition, reason) in KNOWN_CORE_BUGS.items():
        if heading.startswith(prefix) and condition:
            pytest.xfail(reason)
    script = tmp_path / "example.py"
    script.write_text(source)
    runner = tmp_path / "runner.py"
    runner.write_text(RUNNER)
    env = dict(os.environ)
    env["PYTHONPATH"] = str(PYTHON_DIR) + os.pathsep + env.get("PYTHONPATH", "")
    p = subprocess.run(
        [sys.executable, str(runner), str(script)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert p.returncode == 0, p.stderr
    if expected is not None:
        want = expected.replace("<file>", str(script)).replace("<basename>", script.name)
        assert p.stdout == want, p.stderr
