"""`benchmarks/segments.py` runs on the installed SDK and leaves the endpoint as it found it
(its figures are not checked: no timing is asserted in tests)."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

from tollmeter.instrument.openai import ChatCompletions

SCRIPT = Path(__file__).parent.parent / "benchmarks" / "segments.py"


def test_the_steps_script_prints_each_tenant_and_restores_the_endpoint(monkeypatch, capsys) -> None:
    before = {name: ChatCompletions.__dict__.get(name) for name in ("start", "read_response")}
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), "--calls", "3", "--rounds", "2"])
    runpy.run_path(str(SCRIPT), run_name="__main__")
    printed = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line.split()[-6:] for line in printed[2:]}
    assert set(rows) == {"no", "$1M", "$40"}
    assert all(float(value) > 0 for row in rows.values() for value in row)
    assert {name: ChatCompletions.__dict__.get(name) for name in ("start", "read_response")} == before
