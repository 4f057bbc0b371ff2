"""The outcome table and the guided search on real functions, real lists and real compiles."""

from __future__ import annotations

import numpy as np
import pytest

from passlm.errors import InputError
from passlm.llvm.backend import InProcessCompiler
from passlm.llvm.ir import content_hash
from passlm.llvm.passes import parse_pass_list
from passlm.search.guided import GuidedParams, GuidedSearch
from passlm.search.outcomes import (
    OutcomeTable,
    build_outcomes,
    read_outcomes,
    write_outcomes,
)
from passlm.search.store import TrialStore
from passlm.search.tuned import TunedFunction, write_tuned

from .conftest import FIXTURES, run_passlm

LISTS = [
    parse_pass_list(p)
    for p in ("-O1", "-mem2reg -gvn", "-sroa -simplifycfg", "-O2 -Oz", "-gvn -dse", "-mem2reg")
]


class Counting:
    """A real compiler that counts what it is asked to compile."""

    def __init__(self, compiler) -> None:
        self.compiler, self.tasks = compiler, 0
        self.version = compiler.version

    def run_tasks(self, tasks):
        self.tasks += len(tasks)
        return self.compiler.run_tasks(tasks)


@pytest.fixture(scope="module")
def training(sample_functions):
    return [(content_hash(ir), ir) for ir in sample_functions.values()]


@pytest.fixture(scope="module")
def table(training, toolchain):
    with InProcessCompiler(toolchain) as c:
        store = TrialStore(":memory:", c.version)
        return build_outcomes(training, LISTS, c, store, {"command": "test"})


def test_outcome_table_holds_real_counts_and_resumes_from_its_store(training, toolchain, tmp_path):
    path = tmp_path / "t.store.sqlite"
    with InProcessCompiler(toolchain) as c:
        counting = Counting(c)
        first = build_outcomes(training[:5], LISTS, counting, TrialStore(path, c.version), {})
        assert counting.tasks == 5 * (len(LISTS) + 1)
        for row, (h, ir) in zip(first.rows, training[:5], strict=True):
            assert row.hash == h and row.oz_count == c.run(ir, "-Oz").count
            assert row.counts == [c.run(ir, p).count for p in LISTS]
        # a killed build re-run: what the store holds is not compiled again
        counting.tasks = 0
        again = build_outcomes(training, LISTS, counting, TrialStore(path, c.version), {}, chunk=3)
        assert counting.tasks == 3 * (len(LISTS) + 1)
        assert [(r.hash, r.oz_count, r.counts) for r in again.rows[:5]] == [
            (r.hash, r.oz_count, r.counts) for r in first.rows
        ]
    out = tmp_path / "outcomes.parquet"
    write_outcomes(out, again)
    back = read_outcomes(out)
    assert back.lists == again.lists and back.rows == again.rows
    assert back.feature_keys == again.feature_keys and back.meta["kind"] == "outcomes"


def test_first_picks_are_the_weighted_marginal_savings_by_hand(table, training, toolchain):
    # beta 0: every training function weighs the same to start with
    search = GuidedSearch(table, GuidedParams(h=0.05, beta=0.0))
    savings = table.savings()
    oz = np.array([r.oz_count for r in table.rows], dtype=np.float32)
    counts = np.array([[np.nan if c is None else c for c in r.counts] for r in table.rows])
    assert np.allclose(savings, np.maximum((oz[:, None] - counts) / oz[:, None], -1.0))
    ir = training[0][1]
    with InProcessCompiler(toolchain) as c:
        picked = search.run([ir], 2, c)[0]
        first = int(np.argmax(np.maximum(savings, 0).mean(0)))
        assert picked[0] == LISTS[first]
        seen = (c.run(ir, "-Oz").count - c.run(ir, LISTS[first]).count) / c.run(ir, "-Oz").count
    w = np.exp(-np.abs(savings[:, first] - max(seen, -1.0)) / 0.05)
    gain = w @ np.maximum(savings - np.maximum(savings[:, [first]], 0), 0)
    gain[first] = -1
    assert picked[1] == LISTS[int(np.argmax(gain))]


def test_guided_is_deterministic_nested_and_never_worse_than_oz(table, sample_functions, toolchain):
    from passlm.optimize.pipeline import optimize_ir

    search = GuidedSearch(table)
    irs = list(sample_functions.values())
    with InProcessCompiler(toolchain) as c:
        four = search.run(irs, 4, c)
        assert search.run(irs, 4, c) == four
        two = search.run(irs, 2, c)
        assert two == [lists[:2] for lists in four]  # guided-2 is guided-4's first two picks
        assert all(len(lists) == 4 and len(set(lists)) == 4 for lists in four)
        no_gvn = search.run(irs, 10, c, allows=lambda p: "gvn" not in p.passes)
        assert all(len(lists) == 4 for lists in no_gvn)  # the 4 lists without gvn
        assert all("gvn" not in p.passes for lists in no_gvn for p in lists)
        for (name, ir), lists in zip(sample_functions.items(), four, strict=True):
            report = optimize_ir(ir, toolchain, c, [lists], modules={name: ir})
            (f,) = report.functions
            assert f.count <= c.run(ir, "-Oz").count and f.compiles == 4


def test_guided_strategy_end_to_end_without_a_model(table, tmp_path):
    out = tmp_path / "outcomes.parquet"
    write_outcomes(out, table)
    res = run_passlm(
        "optimize", str(FIXTURES / "sample.c"), "--strategy", "guided-3", "--outcomes", str(out),
        "-o", str(tmp_path / "o.ll"), "-j", "1",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "guided-3 (outcome table)" in res.stderr and (tmp_path / "o.ll").is_file()
    bad = tmp_path / "bad.parquet"
    bad.write_text("not parquet")
    res = run_passlm(
        "optimize", str(FIXTURES / "sample.c"), "-s", "guided-3", "--outcomes", str(bad)
    )
    assert res.returncode == 2 and "not a Parquet file" in res.stderr
    assert "Traceback" not in res.stderr
    res = run_passlm("optimize", str(FIXTURES / "sample.c"), "-s", "guided-0")
    assert res.returncode == 2 and "guided-N needs 1 <= N" in res.stderr


def test_outcomes_command_builds_the_table_of_a_tuned_file(sample_functions, toolchain, tmp_path):
    rows = []
    with InProcessCompiler(toolchain) as c:
        for i, (name, ir) in enumerate(sample_functions.items()):
            oz = c.run(ir, "-Oz").count
            best = LISTS[i % 3] if i < 6 else parse_pass_list("-Oz")
            rows.append(
                TunedFunction(
                    content_hash(ir), name, "sample", "sample.c", "train" if i < 6 else "test",
                    ir, c.count(ir), oz, str(best), oz, "", 1, 0, "",
                )
            )  # fmt: skip
    tuned = tmp_path / "tuned.parquet"
    write_tuned(tuned, rows, {"llvm_version": toolchain.version})
    out = tmp_path / "outcomes.parquet"
    res = run_passlm("outcomes", str(tuned), "-o", str(out), "--lists", "2", "-j", "1")
    assert res.returncode == 0, res.stderr
    table = read_outcomes(out)
    # the two most popular best lists of the 6 training functions (2 wins each; ties by name)
    assert [str(p) for p in table.lists] == sorted(str(p) for p in LISTS[:3])[:2]
    assert len(table.rows) == 6 and table.meta["split"] == "train"
    again = run_passlm("outcomes", str(tuned), "-o", str(out), "--lists", "2", "-j", "1")
    assert again.returncode == 0 and read_outcomes(out).rows == table.rows
    res = run_passlm("outcomes", str(tuned), "-o", str(out), "--split", "nope")
    assert res.returncode == 2 and "no functions in split 'nope'" in res.stderr


def test_a_table_that_does_not_fit_its_lists_is_refused(table):
    with pytest.raises(ValueError, match="counts"):
        OutcomeTable(table.lists[:2], table.feature_keys, table.rows, {})
    with pytest.raises(InputError):
        read_outcomes(FIXTURES / "sample.c")


def test_shipped_outcome_table_is_small_and_records_how_it_was_made():
    from passlm.llvm.denylist import load_denylist
    from passlm.search.outcomes import default_outcomes_path

    path = default_outcomes_path()
    assert path.stat().st_size <= 4 * 2**20
    shipped = read_outcomes(path)
    assert len(shipped.lists) == 60 and len(shipped.rows) > 10_000
    assert (
        shipped.meta["command"].startswith("passlm outcomes") and shipped.meta["split"] == "train"
    )
    assert shipped.meta["llvm_version"].startswith("19")
    deny = load_denylist()
    assert (
        all(deny.allows(p) for p in shipped.lists) and parse_pass_list("-Oz") not in shipped.lists
    )


def test_optimize_compiles_guided_picks_once(table, sample_ir, sample_functions, toolchain):
    """The candidates guided-N compiled while it picked are not compiled again, and the result
    is the one without the cache."""
    from passlm.llvm.cache import CachedCompiler
    from passlm.optimize.pipeline import optimize_ir

    search = GuidedSearch(table)
    modules, ir = dict(sample_functions), sample_ir
    with InProcessCompiler(toolchain) as c:
        plain = Counting(c)
        picks = search.run(list(modules.values()), 4, plain)
        expected = optimize_ir(ir, toolchain, plain, picks, modules=modules)
        assert plain.tasks == 5 * len(modules) + (6 * len(modules) + 2)
        inner = Counting(c)
        cached = CachedCompiler(inner, always_ir=True)
        assert search.run(list(modules.values()), 4, cached) == picks
        report = optimize_ir(ir, toolchain, cached, picks, modules=modules)
        # the search's -Oz and picks answer the pipeline's: only the -O0 counts and the whole
        # module's two compiles are new
        assert inner.tasks == 5 * len(modules) + (len(modules) + 2)
    assert report == expected


def _picks_by_formula(search: GuidedSearch, irs, n, compiler):
    """The search as its docstring states it, the whole (train, lists) matrix every time."""
    out = []
    for ir in irs:
        oz = max(compiler.run(ir, "-Oz").count, 1)
        w = np.exp(
            search.params.beta * (search._unit(search.table.vector(ir)[None]) @ search.unit.T - 1.0)
        )
        w = w[0].astype(np.float32)
        covered = np.zeros(len(search.savings), dtype=np.float32)
        picked: list[int] = []
        for _ in range(n):
            gain = w @ np.maximum(search.savings - covered[:, None], 0.0)
            gain[picked] = -1.0
            j = int(np.argmax(gain))
            picked.append(j)
            r = compiler.run(ir, search.lists[j])
            seen = max((oz - r.count) / oz, -1.0)
            w = w * np.exp(-np.abs(search.savings[:, j] - seen) / search.params.h)
            w = w / w.max()
            covered = np.maximum(covered, search.savings[:, j])
        out.append([search.lists[j] for j in picked])
    return out


@pytest.mark.parametrize("params", [GuidedParams(), GuidedParams(h=0.2, beta=0.0)])
def test_picks_are_those_of_the_whole_matrix(table, sample_functions, toolchain, params):
    """Updating only the rows where some list beats -Oz changes no pick."""
    search = GuidedSearch(table, params)
    assert 0 < len(search.gainful) < len(search.savings)  # both kinds of row present
    irs = list(sample_functions.values())
    with InProcessCompiler(toolchain) as c:
        assert search.run(irs, 5, c) == _picks_by_formula(search, irs, 5, c)
