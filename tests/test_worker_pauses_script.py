"""`benchmarks/worker_pauses.py` runs on the installed SDK, prints its three cases and puts the
pacing back as it found it (its figures are not checked: no timing is asserted in tests)."""

from __future__ import annotations

import runpy
import sys
import time
from pathlib import Path

from tollmeter import pacing

SCRIPT = Path(__file__).parent.parent / "benchmarks" / "worker_pauses.py"


def test_the_pauses_script_prints_each_case_and_restores_the_pacing(monkeypatch, capsys) -> None:
    before = pacing.SLICE
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), "--batch", "20", "--rounds", "2"])
    runpy.run_path(str(SCRIPT), run_name="__main__")
    printed = capsys.readouterr().out.splitlines()
    rows = {line[:11].strip(): line[11:].split() for line in printed[2:]}
    assert set(rows) == {"floor", "no pauses", "pauses"}
    assert len(rows["floor"]) == 7 and len(rows["pauses"]) == 8  # the cost column for the batches only
    assert all(float(value.rstrip("%")) >= 0 for row in rows.values() for value in row)
    assert pacing.SLICE == before
    assert pacing._due < time.perf_counter() + pacing.SLICE  # no case's slice of a day left behind
