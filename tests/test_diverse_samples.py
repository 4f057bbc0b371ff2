"""benchmarks/diverse_samples.py: N of a pool of samples chosen to differ, without compiling."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys

from .conftest import BENCHMARKS, benchmark_module

SCRIPT = BENCHMARKS / "diverse_samples.py"


LISTS = ["-a -O2", "-b -O2", "-c -O2", "-a -gvn", "-O2 -a", "-b -sroa"]


def test_each_rule_picks_in_priority_order_what_it_allows():
    m = benchmark_module("diverse_samples")
    rules = m.rules()
    assert rules["first"](LISTS, 3) == [0, 1, 2]
    # one list per last pass: -O2, -gvn, -a, -sroa, then the rest in order
    assert rules["last pass ≤ 1"](LISTS, 4) == [0, 3, 4, 5]
    assert rules["last pass ≤ 1"](LISTS, 6) == [0, 3, 4, 5, 1, 2]
    assert rules["last pass ≤ 2"](LISTS, 3) == [0, 1, 3]
    assert rules["first pass ≤ 2"](LISTS, 6) == [0, 1, 2, 3, 4, 5]
    # "-O2 -a" has "-a -O2"'s passes
    assert rules["distinct pass set"](LISTS, 5) == [0, 1, 2, 3, 5]
    # a large weight takes the list that shares least with the picks (-b -sroa: nothing), then
    # of those sharing a third with one pick, the first
    assert m.mmr(LISTS, 3, 10.0) == [0, 5, 1]
    assert m.mmr(LISTS, 3, 0.0) == [0, 1, 2]


def test_it_scores_the_rules_and_reports_the_one_val_chooses(tmp_path):
    rows = [
        {"hash": "f", "oz": 10, "best": 6, "lists": LISTS, "counts": [10, 10, 10, 6, 10, 9]},
        {"hash": "g", "oz": 20, "best": 15, "lists": LISTS, "counts": [18, 18, 15, 20, 18, 20]},
    ]
    assert (
        benchmark_module("diverse_samples").repeated(rows, 3) == 3 / 6
    )  # f: 10 10 10; g: 18 18 15
    samples = tmp_path / "samples.json.gz"
    samples.write_bytes(gzip.compress(json.dumps({"x:val": rows, "y:test": rows}).encode()))
    out = tmp_path / "diverse.json"
    run = subprocess.run(
        [sys.executable, str(SCRIPT), str(samples), "--n", "2", "--choose-on", "x:val",
         "-o", str(out)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    report = json.loads(out.read_text())
    val = report["splits"]["x:val"]["rules"]
    assert val["first"]["share"] == round(100 * (0 + 2) / (4 + 5), 2)  # f: -Oz's 10, g: 18
    assert val["last pass ≤ 1"]["share"] == round(100 * (4 + 2) / (4 + 5), 2)  # "-a -gvn" 2nd
    assert report["chosen on x:val"] == "last pass ≤ 1"
    bad = subprocess.run(
        [sys.executable, str(SCRIPT), str(samples), "--choose-on", "z:val"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert bad.returncode != 0 and "--choose-on z:val" in bad.stderr + bad.stdout
    assert "Traceback" not in bad.stderr
