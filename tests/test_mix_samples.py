"""benchmarks/mix_samples.py: two samples files of the same functions, mixed."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest

from passlm.errors import InputError

from .conftest import BENCHMARKS, benchmark_module

SCRIPT = BENCHMARKS / "mix_samples.py"


def _record(h: str, lists: list[tuple[str, int | None]], oz: int = 10, best: int = 6) -> dict:
    return {"hash": h, "oz": oz, "best": best, "lists": [p for p, _ in lists],
            "counts": [c for _, c in lists]}  # fmt: skip


FIRST = _record("f", [("-a", 9), ("-b", 8), ("-c", 7)])
SECOND = _record("f", [("-b", 8), ("-e", None), ("-d", 6)])


def test_the_first_m_lists_then_the_others_not_yet_compiled():
    mixed = benchmark_module("mix_samples").then_other
    # m = 0: the second's three; 1: -a, then -b and -e (-d is past the budget); 2: -a -b, then
    # the second's -b is skipped as compiled, -e; 3: the first's own
    assert [mixed(FIRST, SECOND, 3, m) for m in range(4)] == [6, 8, 8, 7]
    # short of lists: the first file's rest fills the budget
    short = _record("f", [("-b", 8)])
    assert mixed(FIRST, short, 3, 1) == 7  # -a, -b, then -c
    assert mixed(FIRST, _record("f", []), 10, 0) == 7  # -Oz and what there is
    assert mixed(_record("f", [("-x", 12)]), _record("f", []), 1, 1) == 10  # never worse than -Oz


def test_it_scores_every_mix_against_both_files(tmp_path):
    def write(path: Path, rows: list[dict]) -> Path:
        path.write_bytes(gzip.compress(json.dumps({"data/x.parquet:val": rows}).encode()))
        return path

    other = _record("g", [("-a", 10), ("-b", 9)], oz=10, best=8)
    first = write(tmp_path / "first.json.gz", [FIRST, other])
    second = write(tmp_path / "second.json.gz", [SECOND])  # "g" is not in it: left out
    out = tmp_path / "mix.json"
    run = subprocess.run(
        [sys.executable, str(SCRIPT), str(first), str(second), "--budgets", "3", "-o", str(out)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    split = json.loads(out.read_text())["splits"]["data/x.parquet:val"]
    assert split["functions"] == 1
    rows = split["budget 3"]
    assert [rows[f"first {m} + second {3 - m}"]["share"] for m in range(4)] == [
        100.0, 50.0, 50.0, 75.0,
    ]  # fmt: skip
    assert rows["first 3 + second 0"]["vs first"] == [0.0, 0.0]
    assert rows["first 0 + second 3"]["vs second"] == [0.0, 0.0]
    with pytest.raises(InputError, match="not a samples file"):
        benchmark_module("mix_samples").read_samples(tmp_path / "mix.json")
    bad = subprocess.run(
        [sys.executable, str(SCRIPT), str(first), str(second), "--budgets", "0"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert bad.returncode != 0 and "--budgets" in bad.stderr + bad.stdout
    assert "Traceback" not in bad.stderr
