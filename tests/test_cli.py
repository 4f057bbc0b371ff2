"""The passlm command end to end: real files in, one-line errors for bad input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from passlm.llvm import ir as irmod

from .conftest import FIXTURES, run_passlm

SAMPLE = FIXTURES / "sample.c"
ROOT = Path(__file__).parent.parent


def test_ir_and_normalize(tmp_path):
    out = tmp_path / "s.ll"
    res = run_passlm("ir", str(SAMPLE), "-o", str(out), "--normalize")
    assert res.returncode == 0, res.stderr
    text = out.read_text()
    assert irmod.normalize(text) == text
    assert irmod.defined_functions(text)[0] == "sum_array"


def test_split_writes_one_module_per_function(tmp_path):
    res = run_passlm("split", str(SAMPLE), "-o", str(tmp_path / "fns"))
    assert res.returncode == 0, res.stderr
    files = sorted(p.name for p in (tmp_path / "fns").iterdir())
    assert files == sorted(
        f"{n}.ll"
        for n in (
            "sum_array",
            "manhattan",
            "classify",
            "clamp",
            "hash_string",
            "fib_lookup",
            "bubble_sort",
            "main",
        )
    )


def test_passes_lists_action_space():
    res = run_passlm("passes")
    assert res.returncode == 0
    assert "instcombine" in res.stdout and "-Oz" in res.stdout
    res = run_passlm("passes", "--excluded")
    assert res.returncode == 0 and "print" in res.stdout


@pytest.mark.parametrize("backend", ["inprocess", "opt"])
def test_run_reports_counts_and_writes_ir(tmp_path, backend):
    out = tmp_path / "o.ll"
    res = run_passlm(
        "run",
        str(SAMPLE),
        "--passes",
        "-mem2reg -simplifycfg",
        "-o",
        str(out),
        "--backend",
        backend,
    )
    assert res.returncode == 0, res.stderr
    assert "235 ->" in res.stderr
    assert "alloca" in out.read_text()  # mem2reg leaves the array and struct allocas


def test_optimize_reports_every_function(tmp_path):
    out = tmp_path / "opt.ll"
    res = run_passlm("optimize", str(SAMPLE), "-o", str(out), "-j", "1")
    assert res.returncode == 0, res.stderr
    for name in ("sum_array", "bubble_sort", "total"):
        assert name in res.stderr
    assert irmod.count_instructions(out.read_text()) < 235


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "MISSING.ll", "-p", "-Oz"], "no such file"),
        (["run", "EMPTY.ll", "-p", "-Oz"], "empty file"),
        (["run", "BAD.ll", "-p", "-Oz"], "error"),
        (["run", str(SAMPLE), "-p", "-instcombin"], "did you mean instcombine"),
        (["run", str(SAMPLE), "-p", "-Oz -Oz"], "-Oz"),
        (["ir", str(FIXTURES / "broken.c")], "does not compile"),
        (["optimize", "NOFUNCS.ll"], "NOFUNCS.ll: the module defines no functions"),
        (["optimize", "NOFUNCS.ll", "--seed", "3"], "--seed apply to --sampling temperature"),
        (
            ["optimize", "NOFUNCS.ll", "--strategy", "predict", "--sampling", "temperature"],
            "--sampling applies to sample-N, not predict",
        ),
        (
            ["train", "EMPTY.ll", "-o", "run", "--steps", "5"],
            "--warmup 100: must be between 0 and --steps (5)",
        ),
        (["train", "EMPTY.ll", "-o", "run", "--batch-size", "0"], "--batch-size 0: must be at"),
        (["train", "EMPTY.ll", "-o", "run", "--gain-repeats", "-1"], "--gain-repeats -1: must be"),
        (["outcomes", str(ROOT / "data" / "corpus.parquet"), "-o", "o.parquet"], "found a corpus"),
        (["split", "NOFUNCS.ll", "-o", "out"], "NOFUNCS.ll: the module defines no functions"),
    ],
)
def test_bad_input_gives_one_line_error(tmp_path, args, message):
    (tmp_path / "EMPTY.ll").write_text("")
    (tmp_path / "BAD.ll").write_text("define i32 @f() {\n ret i64 0\n}\n")
    (tmp_path / "NOFUNCS.ll").write_text("@g = global i32 0\n")
    before = set(tmp_path.iterdir())
    res = run_passlm(*args, cwd=tmp_path)
    assert set(tmp_path.iterdir()) == before  # nothing left behind (outcomes' store, a run)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), res.stderr
    assert message in lines[0]
    assert "Traceback" not in res.stderr


def test_output_is_not_left_partial_on_error(tmp_path):
    out = tmp_path / "never.ll"
    res = run_passlm("run", str(FIXTURES / "broken.c"), "-p", "-Oz", "-o", str(out))
    assert res.returncode == 2
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "args",
    [
        ["ir", str(SAMPLE)],
        ["optimize", str(SAMPLE), "--no-model"],
        ["autotune", str(ROOT / "data" / "corpus.parquet")],
        ["outcomes", str(ROOT / "data" / "tuned.parquet")],
        ["dataset", "make", str(ROOT / "data" / "tuned.parquet")],
    ],
)
def test_an_output_file_in_a_missing_directory_fails_before_the_work(tmp_path, args):
    # these would compile or tune for seconds to hours before writing (corpus build creates
    # the directory instead: tests/test_corpus.py interrupts one that did)
    res = run_passlm(*args, "-o", str(tmp_path / "nodir" / "out"), cwd=tmp_path)
    assert res.returncode == 2
    assert res.stderr.strip() == f"error: {tmp_path / 'nodir'}: no such directory", res.stderr
    assert res.stdout == ""  # nothing was done, not even a report printed
    assert list(tmp_path.iterdir()) == []
    res = run_passlm(*args[:2], "-o", str(tmp_path), cwd=tmp_path)
    assert res.returncode == 2 and "is a directory, expected a file path" in res.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["split", str(SAMPLE)],
        ["verify", str(SAMPLE), "--passes", "-Oz"],
        ["eval", "--test", str(SAMPLE), "--strategies", "sample-1"],
        ["train", str(ROOT / "data" / "tuned.parquet"), "--steps", "1"],
        ["model", "export", str(ROOT / "src" / "passlm" / "model" / "default")],
    ],
)
def test_an_output_directory_where_a_file_is_fails_before_the_work(tmp_path, args):
    # eval ran for a minute before refusing; model export replaced the file with a model
    target = tmp_path / "taken"
    target.write_text("keep me\n")
    res = run_passlm(*args, "-o", str(target), cwd=tmp_path)
    assert res.returncode == 2
    assert res.stderr.strip() == f"error: {target}: exists and is not a directory", res.stderr
    assert target.read_text() == "keep me\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def test_a_model_is_never_written_over_a_file(tmp_path):
    from passlm.errors import InputError
    from passlm.model import default_model_dir
    from passlm.model.checkpoint import export_model

    target = tmp_path / "taken"
    target.write_text("keep me\n")
    with pytest.raises(InputError, match="exists and is not a directory"):
        export_model(default_model_dir(), target)
    assert target.read_text() == "keep me\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


@pytest.mark.parametrize(
    ("script", "args", "message"),
    [
        ("strategies.py", ["--model", "NO_MODEL"], "NO_MODEL: no such model directory"),
        ("strategies.py", ["--margin", "banana"], "--margin: expected a number"),
        ("random_seeds.py", ["--margin", "-1"], "--margin: must be at least 0 nats"),
        ("sample_selection.py", ["--source", "test"], "--source test: expected PATH:SPLIT"),
        ("sample_selection.py", ["--source", "NO.parquet:test"], "no such file NO.parquet"),
        (
            "sample_selection.py",
            ["--source", f"{ROOT / 'data' / 'tuned.parquet'}:test", "--second", "NO.json.gz"],
            "--second NO.json.gz: not a samples file",
        ),
        ("compile_reuse.py", ["--strategies", "banana"], "unknown strategy 'banana'"),
        (
            "anonymize_names.py",
            ["prompts", "NO.jsonl.gz", "out.jsonl.gz"],
            "NO.jsonl.gz: not a gzipped JSON-lines file",
        ),
        ("guided_search.py", ["--tuned", "NO.parquet"], "NO.parquet: no such file"),
        (
            "device_samples.py",
            ["prompts", "--model", "M", "--source", "test", "-o", "p.jsonl.gz"],
            "--source test: expected PATH:SPLIT",
        ),
        (
            "device_samples.py",
            ["sample", "NO.jsonl.gz", "--model", "a=NO", "-o", "out"],
            "NO.jsonl.gz: not a gzipped JSON-lines file",
        ),
    ],
)
def test_benchmark_scripts_report_bad_input_in_one_line(tmp_path, script, args, message):
    """The benchmarks run their main through the CLI's error reporting: no traceback."""
    res = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), res.stderr
    assert message in lines[0]


def test_ctrl_c_in_a_command_says_so_and_exits_130(capsys):
    # typer turns a KeyboardInterrupt inside a command into a silent exit 130
    import typer

    from passlm.cli import report_errors

    app = typer.Typer()

    @app.command()
    def work() -> None:
        raise KeyboardInterrupt

    @app.command()
    def other() -> None:
        pass

    with pytest.raises(SystemExit) as exc:
        report_errors(lambda: app(["work"]))
    assert exc.value.code == 130
    assert capsys.readouterr().err.strip() == (
        "interrupted; run the same command again (resumable work goes on where it stopped)"
    )
    with pytest.raises(SystemExit) as exc:
        report_errors(lambda: app(["other"]))
    assert exc.value.code == 0 and capsys.readouterr().err == ""
