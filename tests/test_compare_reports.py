"""benchmarks/compare_reports.py: two eval reports on one test set, paired function by function."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest

from passlm.errors import InputError
from passlm.evaluate.report import FUNCTIONS_JSON, REPORT_JSON

from .conftest import BENCHMARKS, benchmark_module

SCRIPT = BENCHMARKS / "compare_reports.py"


def _report(path: Path, rows: list[tuple[str, int, int, int]]) -> Path:
    """A stored eval report whose functions are (hash, -Oz, autotuner, sample-10) counts."""
    functions = [
        {
            "hash": h,
            "function": f"f{h}",
            "oz_count": oz,
            "-Oz": {"count": oz, "passes": "-Oz"},
            "sample-10": {"count": s, "passes": "-O1"},
            "autotuner": {"count": ref, "passes": "-O1 -gvn"},
        }
        for h, oz, ref, s in rows
    ]
    path.mkdir()  # the two files read_report reads, as write_report leaves them
    (path / FUNCTIONS_JSON).write_bytes(gzip.compress(json.dumps(functions).encode()))
    (path / REPORT_JSON).write_text(json.dumps({"title": "t", "rows": []}))
    return path


def test_shares_difference_and_functions_ahead(tmp_path):
    # the autotuner saves 4 + 6 = 10; base finds 4 + 0, other 2 + 6
    base = _report(tmp_path / "a", [("1", 10, 6, 6), ("2", 20, 14, 20), ("3", 5, 5, 5)])
    other = _report(tmp_path / "b", [("1", 10, 6, 8), ("2", 20, 14, 14), ("3", 5, 5, 5)])
    r = benchmark_module("compare_reports").compare(base, other, ["sample-10"])
    m = r["methods"]["sample-10"]
    assert (r["functions"], m["base_share"], m["other_share"]) == (3, 0.4, 0.8)
    assert (m["other_ahead"], m["base_ahead"]) == (1, 1)
    lo, hi = m["difference_interval"]
    assert lo <= 0.4 <= hi
    same = benchmark_module("compare_reports").compare(base, base, ["sample-10"])["methods"][
        "sample-10"
    ]
    assert same["difference_interval"] == [0.0, 0.0] and same["other_ahead"] == 0


def test_rows_named_apart_are_compared_by_base_name_equals_other_name(tmp_path):
    base = _report(tmp_path / "a", [("1", 10, 6, 6), ("2", 20, 14, 20), ("3", 5, 5, 5)])
    other = _report(tmp_path / "b", [("1", 10, 6, 8), ("2", 20, 14, 14), ("3", 5, 5, 5)])
    records = json.loads(gzip.decompress((other / FUNCTIONS_JSON).read_bytes()))
    for r in records:  # the other model's row under another name, as a margin of its own
        r["sample-10 (b)"] = r.pop("sample-10")
    (other / FUNCTIONS_JSON).write_bytes(gzip.compress(json.dumps(records).encode()))
    compare = benchmark_module("compare_reports").compare
    r = compare(base, other, ["sample-10=sample-10 (b)"])["methods"]["sample-10=sample-10 (b)"]
    assert (r["base_share"], r["other_share"], r["other_ahead"], r["base_ahead"]) == (
        0.4, 0.8, 1, 1,
    )  # fmt: skip
    with pytest.raises(InputError, match="no 'sample-10' result"):
        compare(base, other, ["sample-10"])


def test_different_test_sets_and_missing_methods_are_refused(tmp_path):
    base = _report(tmp_path / "a", [("1", 10, 6, 6), ("2", 20, 14, 20)])
    fewer = _report(tmp_path / "b", [("1", 10, 6, 8)])
    other_llvm = _report(tmp_path / "c", [("1", 11, 6, 8), ("2", 20, 14, 14)])
    compare = benchmark_module("compare_reports").compare
    with pytest.raises(InputError, match="hold different functions"):
        compare(base, fewer, ["sample-10"])
    with pytest.raises(InputError, match="another LLVM"):
        compare(base, other_llvm, ["sample-10"])
    with pytest.raises(InputError, match="no 'sample-3' result"):
        compare(base, base, ["sample-3"])


def test_cli_writes_json_and_reports_a_missing_report_in_one_line(tmp_path):
    base = _report(tmp_path / "a", [("1", 10, 6, 6), ("2", 20, 14, 20)])
    out = tmp_path / "cmp.json"
    cmd = [sys.executable, str(SCRIPT), str(base), str(base), "--methods", "sample-10"]
    res = subprocess.run([*cmd, "-o", str(out)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert json.loads(out.read_text())["methods"]["sample-10"]["base_share"] == 0.4
    res = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path / "NO"), str(base)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2 and len(lines) == 1, res.stderr
    assert "NO: no passlm eval report" in lines[0]
