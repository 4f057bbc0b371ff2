"""benchmarks/device_samples.py: prompts here, samples anywhere, counts here, as eval's sample-N."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest

from passlm.evaluate.testset import load_test_set
from passlm.llvm.backend import InProcessCompiler
from passlm.llvm.denylist import load_denylist
from passlm.llvm.toolchain import default_toolchain
from passlm.model import default_model_dir, load
from passlm.optimize.strategies import parse_strategy, propose

ROOT = Path(__file__).parent.parent
SCRIPT = ROOT / "benchmarks" / "device_samples.py"


def _run(*args: str, cwd: Path) -> None:
    res = subprocess.run(
        [sys.executable, str(SCRIPT), *args], cwd=cwd, capture_output=True, text=True, timeout=600
    )
    assert res.returncode == 0, res.stderr


@pytest.mark.slow
def test_split_sampling_gives_the_lists_and_counts_of_sample_n(tmp_path):
    source = f"{ROOT / 'data' / 'tuned.parquet'}:heldout"
    prompts, samples = tmp_path / "prompts.jsonl.gz", tmp_path / "samples"
    model_dir = default_model_dir()
    _run("prompts", "--model", str(model_dir), "--source", source, "--limit", "3",
         "--workers", "1", "-o", str(prompts), cwd=tmp_path)  # fmt: skip
    _run("sample", str(prompts), "--model", f"m={model_dir}", "--n", "3", "--workers", "2",
         "-o", str(samples), cwd=tmp_path)  # fmt: skip
    _run("sample", str(prompts), "--model", f"hot={model_dir}", "--n", "3", "--workers", "2",
         "--temperature", "1.5", "--seed", "3", "-o", str(samples), cwd=tmp_path)  # fmt: skip
    lists = tmp_path / "lists.json.gz"
    _run("score", str(prompts), str(samples / "m.jsonl.gz"), "--workers", "1",
         "-o", str(tmp_path / "summary.json"), "--lists", str(lists), cwd=tmp_path)  # fmt: skip
    got = json.loads(gzip.decompress(lists.read_bytes()))[source]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["splits"][source]["functions"] == 3

    tc = default_toolchain()
    model, tok = load(model_dir)
    with InProcessCompiler(tc) as compiler:
        functions = load_test_set(
            [ROOT / "data" / "tuned.parquet"], splits=["heldout"], toolchain=tc,
            compiler=compiler, limit=3,
        ).functions  # fmt: skip
        expected = propose(model, tok, [f.ir for f in functions], parse_strategy("sample-3"),
                           denylist=load_denylist(), compiler=compiler)  # fmt: skip
        hot = parse_strategy("sample-3", sampling="temperature", temperature=1.5, seed=3)
        drawn = propose(model, tok, [f.ir for f in functions], hot, denylist=load_denylist(),
                        compiler=compiler)  # fmt: skip
        hot_rows = [json.loads(line) for line in
                    gzip.decompress((samples / "hot.jsonl.gz").read_bytes()).splitlines()]  # fmt: skip
        assert [r["lists"] for r in hot_rows] == [[str(p) for p in ls] for ls in drawn]
        assert [r["hash"] for r in got] == [f.hash for f in functions]
        for f, row, lists in zip(functions, got, expected, strict=True):
            assert row["lists"] == [str(p) for p in lists]  # what eval's sample-3 compiles
            real = compiler.run_grid([f.ir], lists)[0]
            assert row["counts"] == [r.count if r.ok else None for r in real]
            assert (row["oz"], row["best"]) == (f.oz_count, min(f.best_count, f.oz_count))
