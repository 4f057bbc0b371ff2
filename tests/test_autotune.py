"""``passlm autotune`` end to end on a tiny real corpus: output, report, kill and resume."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from passlm.errors import InputError
from passlm.search.report import summarize
from passlm.search.tuned import read_tuned

from .conftest import FIXTURES, file_size_limit, passlm_cmd
from .conftest import run_passlm as run

TUNE_ARGS = ["--trials", "150", "--broadcast", "20", "--seed", "5", "-j", "2"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("src")
    (root / "sample.c").write_text((FIXTURES / "sample.c").read_text())
    (root / "more.c").write_text(
        "int mix(int a, int b) { int r = 0; for (int i = 0; i < b; i++) r += a ^ i; return r; }\n"
        "int pick(int *p, int n) { return n > 0 ? p[n - 1] : p[0]; }\n"
        "long fold(long x) { while (x > 9) x = x / 10 + x % 10; return x; }\n"
    )
    out = root / "corpus.parquet"
    res = run("corpus", "build", f"dir:{root}", "-o", str(out), "-j", "2")
    assert res.returncode == 0, res.stderr
    return out


def store_rows(path: Path) -> set[tuple]:
    with sqlite3.connect(path) as db:
        return set(db.execute("SELECT ir_hash, passes, llvm, count, error_kind FROM trials"))


@pytest.fixture(scope="module")
def reference(corpus, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ref") / "tuned.parquet"
    res = run("autotune", str(corpus), "-o", str(out), *TUNE_ARGS)
    assert res.returncode == 0, res.stderr
    assert "over -Oz" in res.stdout
    return out


def test_output_rows_are_consistent(reference, corpus):
    rows, meta = read_tuned(reference)
    assert len(rows) == 11
    for r in rows:
        assert r.best_count <= r.oz_count <= r.o0_count
        assert r.trials >= 150
        assert r.optimized_ir.startswith("target datalayout")
    assert meta["llvm_version"] and meta["config"]["trials"] == 150
    assert meta["compute"]["compiles_this_run"] == sum(r.trials for r in rows)
    assert summarize(rows).improved >= 1


def test_report_and_plots(reference, tmp_path):
    res = run("autotune", "--report", str(reference), "--plots", str(tmp_path))
    assert res.returncode == 0, res.stderr
    assert "most frequent in best lists" in res.stdout
    assert (tmp_path / "pass_frequency.png").stat().st_size > 1000
    assert (tmp_path / "list_length.png").stat().st_size > 1000


@pytest.mark.slow
def test_killed_run_resumes_without_lost_or_repeated_work(corpus, reference, tmp_path):
    out = tmp_path / "tuned.parquet"
    store = tmp_path / "tuned.parquet.store.sqlite"
    proc = subprocess.Popen(
        passlm_cmd("autotune", str(corpus), "-o", str(out), *TUNE_ARGS),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    _wait_for_rows(store, proc, 300)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists()  # no partial output
    after_kill = store_rows(store)
    total = store_rows(reference.with_name(reference.name + ".store.sqlite"))
    assert 0 < len(after_kill) < len(total)

    res = run("autotune", str(corpus), "-o", str(out), *TUNE_ARGS)
    assert res.returncode == 0, res.stderr
    assert read_tuned(out)[0] == read_tuned(reference)[0]
    assert store_rows(store) == total  # same trials, each stored once
    _, meta = read_tuned(out)
    assert meta["compute"]["compiles_this_run"] == len(total) - len(after_kill)


def test_bad_inputs(tmp_path, corpus):
    res = run("autotune", str(tmp_path / "missing.parquet"), "-o", str(tmp_path / "t.parquet"))
    assert res.returncode == 2 and "no such file" in res.stderr
    res = run("autotune", "--report", str(corpus))
    assert res.returncode == 2 and "expected a passlm tuned file" in res.stderr
    res = run("autotune", str(corpus))
    assert res.returncode == 2 and "needs CORPUS and -o OUTPUT" in res.stderr
    res = run("autotune", str(corpus), "-o", str(tmp_path / "t.parquet"), "--split", "nope")
    assert res.returncode == 2 and "no functions to tune" in res.stderr
    with pytest.raises(InputError):
        read_tuned(corpus)


class _DriftingCompiler:
    """A real compiler whose replays of one pass list disagree with the search (fault injection:
    LLVM 19 has pass orders that are not deterministic, e.g. ``-O1 -gvn-sink`` seen at 54 and 57)."""

    def __init__(self, inner, passes: str) -> None:
        self.inner, self.passes, self.version = inner, passes, inner.version

    def run_tasks(self, tasks):
        import dataclasses

        results = self.inner.run_tasks(tasks)
        return [
            dataclasses.replace(r, count=r.count + 1)
            if t.want_ir and str(t.passes) == self.passes and r.ok
            else r
            for t, r in zip(tasks, results, strict=True)
        ]


def test_unreproducible_best_lists_fall_back_to_oz(toolchain, sample_functions):
    import dataclasses

    from passlm.corpus.store import CorpusFunction
    from passlm.llvm.backend import InProcessCompiler
    from passlm.llvm.ir import content_hash
    from passlm.search.autotune import _final_rows
    from passlm.search.evaluator import Evaluator, Function
    from passlm.search.store import TrialStore
    from passlm.search.tuner import Autotuner, TuneConfig

    irs = sorted(sample_functions.items())
    corpus = [
        CorpusFunction(
            hash=content_hash(ir),
            function=name,
            source="t",
            file="t.c",
            split="train",
            ir=ir,
            instcount=0,
            chars=len(ir),
        )
        for name, ir in irs
    ]
    with InProcessCompiler(toolchain) as inner:
        corpus = [dataclasses.replace(c, instcount=inner.count(c.ir)) for c in corpus]
        store = TrialStore(":memory:", inner.version)
        searches = Autotuner(Evaluator(inner, store), TuneConfig(trials=100, seed=1)).run(
            [Function(c.hash, c.ir) for c in corpus]
        )
        drifting = next(str(s.best) for s in searches if str(s.best) != "-Oz")
        rows, notes = _final_rows(searches, corpus, _DriftingCompiler(inner, drifting))
    affected = [s for s in searches if str(s.best) == drifting]
    assert [n["passes"] for n in notes] == [drifting] * len(affected)
    for row, s in zip(rows, searches, strict=True):
        if str(s.best) == drifting:
            assert row.best_passes == "-Oz" and row.best_count == s.oz_count
        else:
            assert row.best_count == s.best_count


def _wait_for_rows(store: Path, proc: subprocess.Popen, rows: int) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if store.exists():
            try:
                if len(store_rows(store)) >= rows:
                    return
            except sqlite3.OperationalError:
                pass
        time.sleep(0.05)
    raise AssertionError("the run finished (or stalled) before it could be stopped")


def _leftovers(directory: Path) -> list[str]:
    """Files a run should not leave behind: temporary outputs."""
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


@pytest.mark.slow
def test_sigterm_stops_cleanly_and_the_run_resumes(corpus, reference, tmp_path):
    out = tmp_path / "tuned.parquet"
    store = tmp_path / "tuned.parquet.store.sqlite"
    proc = subprocess.Popen(
        passlm_cmd("autotune", str(corpus), "-o", str(out), *TUNE_ARGS),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for_rows(store, proc, 300)
    proc.send_signal(signal.SIGTERM)  # to the parent only, as a service manager would
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "terminated" in err and "Traceback" not in err
    assert not out.exists() and _leftovers(tmp_path) == []
    kept = store_rows(store)
    assert len(kept) >= 300
    res = run("autotune", str(corpus), "-o", str(out), *TUNE_ARGS)
    assert res.returncode == 0, res.stderr
    assert read_tuned(out)[0] == read_tuned(reference)[0]
    assert kept <= store_rows(store)


@pytest.mark.slow
def test_full_disk_gives_one_line_and_keeps_earlier_results(corpus, reference, tmp_path):
    out = tmp_path / "tuned.parquet"
    store = tmp_path / "tuned.parquet.store.sqlite"
    # a file-size limit stands in for a full disk: the store's files stop growing mid-run
    res = run(
        "autotune", str(corpus), "-o", str(out), *TUNE_ARGS,
        preexec_fn=file_size_limit(160 * 1024),
    )  # fmt: skip
    assert res.returncode == 1, res.stderr
    assert "error: result store:" in res.stderr and "Traceback" not in res.stderr
    assert not out.exists() and _leftovers(tmp_path) == []
    kept = store_rows(store)  # what was committed before the disk filled is readable
    assert kept
    again = run("autotune", str(corpus), "-o", str(out), *TUNE_ARGS)
    assert again.returncode == 0, again.stderr
    assert read_tuned(out)[0] == read_tuned(reference)[0]
    assert kept <= store_rows(store)
