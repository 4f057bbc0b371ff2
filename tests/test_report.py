"""The evaluation report's parts: table arithmetic by hand, baselines, error taxonomy, test sets."""

from __future__ import annotations

import dataclasses
import gzip
import json
from pathlib import Path

import pytest

from passlm.data import format as fmt
from passlm.data.dataset import Example, write_dataset
from passlm.errors import InputError
from passlm.evaluate import quality
from passlm.evaluate.baselines import Retrieval, random_lists
from passlm.evaluate.compare import (
    Method,
    MethodResult,
    breakdown,
    pass_statistics,
    run_methods,
    size_bin,
)
from passlm.evaluate.report import read_report, sections, to_html, to_markdown
from passlm.evaluate.testset import TestFunction, load_test_set, read_training
from passlm.llvm.backend import InProcessCompiler, Task
from passlm.llvm.ir import ir_features
from passlm.llvm.passes import PassList, parse_pass_list

OZ = "-Oz"


def _fn(h: str, o0: int, oz: int, best: int, source: str = "a", ir: str = "") -> TestFunction:
    return TestFunction(h, f"f{h}", source, ir, o0, oz, best, OZ, None)


def test_method_row_by_hand():
    r = MethodResult("m", "model", [8, 20, 33, 39], [1, 2, 0, 3], ["-O1"] * 4, seconds=1.234)
    row = r.row([10, 20, 30, 40], reference=0.04)
    assert (row["improved"], row["regressed"], row["saved"], row["lost"]) == (2, 1, 3, 3)
    assert (row["extra_compiles"], row["compiles_per_function"]) == (6, 1.5)
    assert row["overall"] == 0.0 and row["fraction_of_autotuner"] == 0.0
    assert row["seconds"] == 1.23
    better = MethodResult("b", "model", [9, 18, 30, 40], None, [OZ] * 4).row([10, 20, 30, 40], 0.04)
    assert better["overall"] == pytest.approx(3 / 100)
    assert better["fraction_of_autotuner"] == pytest.approx(0.75)
    assert better["extra_compiles"] is None and better["compiles_per_function"] is None
    assert (
        MethodResult("z", "model", [10], [0], [OZ]).row([10], 0.0)["fraction_of_autotuner"] is None
    )


def test_breakdowns_and_pass_statistics_by_hand():
    fns = [_fn("1", 5, 4, 3, "x"), _fn("2", 30, 20, 20, "y"), _fn("3", 300, 100, 90, "x")]
    r = MethodResult("m", "model", [4, 18, 95], [0, 0, 0], [OZ] * 3)
    by_source = breakdown(fns, [r], lambda f: f.source)
    assert by_source["x"]["functions"] == 2 and by_source["x"]["oz_instructions"] == 104
    assert by_source["x"]["overall"]["m"] == pytest.approx(5 / 104)
    assert by_source["y"]["overall"]["m"] == pytest.approx(2 / 20)
    assert [size_bin(n) for n in (1, 10, 11, 50, 51, 250, 251, 10_000)] == [
        "1-10", "1-10", "11-25", "26-50", "51-100", "101-250", "251+", "251+",
    ]  # fmt: skip
    by_size = breakdown(fns, [r], lambda f: size_bin(f.o0_count), order=["251+", "1-10", "11-25"])
    assert list(by_size) == ["251+", "1-10"]  # ordered as asked, empty bins left out
    stats = pass_statistics(["-mem2reg -gvn", "-Oz", "-mem2reg -O1 -gvn -dce"])
    assert stats["frequency"] == {"mem2reg": 2, "gvn": 2, "-Oz": 1, "-O1": 1, "dce": 1}
    assert stats["lengths"] == {"1": 1, "2": 1, "4": 1}


def test_run_methods_compiles_each_list_once_and_never_loses_to_oz(sample_functions, toolchain):
    names = ["clamp", "sum_array", "hash_string"]
    irs = [sample_functions[n] for n in names]
    with InProcessCompiler(toolchain) as c:
        oz = [c.run(ir, OZ).count for ir in irs]
        o0 = [c.count(ir) for ir in irs]
        m2r = [c.run(ir, "-mem2reg").count for ir in irs]
        o1 = [c.run(ir, "-O1").count for ir in irs]
        fns = [
            TestFunction(str(i), n, "s", ir, a, b, b, OZ, None)
            for i, (n, ir, a, b) in enumerate(zip(names, irs, o0, oz, strict=True))
        ]
        lists = [[parse_pass_list("-mem2reg"), parse_pass_list("-O1")]] * 3
        methods = [
            Method("best-of", "model", lists),
            Method("as-is", "model", [[parse_pass_list("-mem2reg")], [], [parse_pass_list(OZ)]],
                   as_is=True),
            Method("again", "baseline", lists),  # same lists: no new compiles
        ]  # fmt: skip
        results, costs = run_methods(fns, methods, c)
    assert costs["compiles"] == 6  # 3 functions x 2 distinct lists, shared by two methods
    by = {r.name: r for r in results}
    assert by["best-of"].counts == [min(*t) for t in zip(oz, m2r, o1, strict=True)]
    assert by["best-of"].compiles == [2, 2, 2] and by["again"].counts == by["best-of"].counts
    # as is: the list's own count (worse than -Oz here), -Oz with no proposal, -Oz itself free
    assert by["as-is"].counts == [m2r[0], oz[1], oz[2]] and by["as-is"].compiles == [0, 0, 0]
    assert m2r[0] > oz[0]
    assert by["as-is"].chosen == ["-mem2reg", "-Oz", "-Oz"]
    assert by["autotuner"].counts == oz and by["autotuner"].compiles is None
    with pytest.raises(ValueError, match="2 proposals for 3 functions"):
        run_methods(fns, [Method("short", "model", lists[:2])], None)  # type: ignore[arg-type]


def _at_oz(sample_functions, names, compiler):
    """The named functions' IR, their -Oz counts, and test functions whose best is -Oz."""
    irs = [sample_functions[n] for n in names]
    oz = [compiler.run(ir, OZ).count for ir in irs]
    fns = [
        TestFunction(str(i), n, "s", ir, 99, b, b, OZ, None)
        for i, (n, ir, b) in enumerate(zip(names, irs, oz, strict=True))
    ]
    return irs, oz, fns


def test_popular_lists_rank_by_wins_and_match_a_methods_compiles(sample_functions, toolchain):
    from passlm.evaluate.baselines import PopularLists
    from passlm.evaluate.compare import with_matched_baselines
    from passlm.llvm.denylist import load_denylist

    wins = ["-O1"] * 3 + ["-Oz"] * 9 + ["-gvn -dse"] * 2 + ["-gvn-sink -O1"] * 5 + ["-O2"] * 2
    popular = PopularLists(wins, load_denylist().allows)
    # -Oz is compiled anyway and gvn-sink is deny-listed; ties (2 wins each) by name
    assert [str(p) for p in popular.propose(5)] == ["-O1", "-O2", "-gvn -dse"]
    assert popular.wins["-O1"] == 3 and len(PopularLists(wins)) == 4
    with InProcessCompiler(toolchain) as c:
        irs, oz, fns = _at_oz(sample_functions, ["clamp", "sum_array"], c)
        two = [[parse_pass_list("-mem2reg"), parse_pass_list("-sroa")], [parse_pass_list("-O1")]]
        ordered, _ = with_matched_baselines(
            fns, [Method("sample-2", "model", two)], c, popular=popular
        )
        o1 = [c.run(ir, "-O1").count for ir in irs]
        o2 = c.run(irs[0], "-O2").count
    assert [r.name for r in ordered] == [
        "sample-2", "random search (sample-2 budget)", "popular lists (sample-2 budget)",
        "autotuner",
    ]  # fmt: skip
    pop = ordered[2]
    assert pop.compiles == [2, 1]  # as many lists as the model's strategy compiled, per function
    assert pop.counts == [min(oz[0], o1[0], o2), min(oz[1], o1[1])]


def test_feedback_rows_are_matched_with_plain_sampling_at_their_compiles(
    sample_functions, toolchain
):
    from passlm.evaluate.compare import sampling_matched, with_matched_baselines

    with InProcessCompiler(toolchain) as c:
        irs, oz, fns = _at_oz(sample_functions, ["clamp", "sum_array"], c)
        # the loop compiled one list on the first function, none on the second
        loop = [[parse_pass_list("-O1")], []]
        # the model's samples, most probable first; -Oz among them is compiled anyway
        samples = [[parse_pass_list(OZ), parse_pass_list("-mem2reg"), parse_pass_list("-O2")],
                   [parse_pass_list("-O1")]]  # fmt: skip
        ordered, _ = with_matched_baselines(
            fns,
            [Method("feedback-1", "model", loop), Method("sample-3", "model", samples)],
            c,
            samples=samples,
        )
        m2r = c.run(irs[0], "-mem2reg").count
    assert [r.name for r in ordered] == [
        "feedback-1", "random search (feedback-1 budget)", "sampling (feedback-1 budget)",
        "sample-3", "random search (sample-3 budget)", "autotuner",
    ]  # fmt: skip
    plain = ordered[2]
    assert plain.compiles == [1, 0] and plain.counts == [min(oz[0], m2r), oz[1]]
    with pytest.raises(ValueError, match="1 sample lists for 2 functions"):
        sampling_matched(fns, ordered[0], samples[:1])


def test_matched_comparisons_pair_a_method_with_its_baselines():
    from passlm.evaluate.compare import matched_comparisons

    oz, tuner = [10, 10, 10, 10], [5, 5, 5, 10]  # the autotuner gains 15
    counts = {
        "feedback-1": [5, 8, 10, 10],  # gains 7
        "random search (feedback-1 budget)": [10, 10, 9, 10],  # 1
        "sampling (feedback-1 budget)": [5, 8, 10, 10],  # the same functions, the same counts
        "sample-1": [9, 10, 10, 10],  # no baselines: no comparisons
    }
    got = matched_comparisons(counts, oz, tuner, seed=3)
    assert [(c["method"], c["baseline"]) for c in got] == [
        ("feedback-1", "random search (feedback-1 budget)"),
        ("feedback-1", "sampling (feedback-1 budget)"),
    ]
    rand, same = got
    assert rand["difference"] == pytest.approx(6 / 15)
    assert (rand["ahead"], rand["behind"]) == (2, 1)
    lo, hi = rand["interval"]
    assert lo <= 6 / 15 <= hi and lo < hi
    # identical counts: the paired difference is exactly zero in every resample
    assert same["difference"] == 0 and same["interval"] == [0.0, 0.0]
    assert (same["ahead"], same["behind"]) == (0, 0)
    assert matched_comparisons(counts, oz, oz) == []  # the autotuner gains nothing: no shares


def test_ir_features_and_retrieval(sample_functions):
    ir = (
        "define i32 @f(i32 %0, i32 %1) {\n%3 = add i32 %0, %1\n%4 = icmp sgt i32 %3, 0\n"
        "br i1 %4, label %5, label %6\n5:\nret i32 %3\n6:\nstore i32 0, ptr null\nret i32 0\n}\n"
    )
    f = ir_features(ir)
    assert f["op:add"] == 1 and f["op:icmp"] == 1 and f["op:br"] == 1 and f["op:ret"] == 2
    assert f["op:store"] == 1 and f["instructions"] == 6 and f["blocks"] == 3 and f["args"] == 2

    names = list(sample_functions)
    irs = [sample_functions[n] for n in names]
    lists = [f"-O{1 + i % 3}" if i % 2 else "-mem2reg -gvn" for i in range(len(irs))]
    r = Retrieval(irs, lists)
    for i, query in enumerate(irs):
        assert r.nearest(query, 1) == [i]  # a training function is its own nearest neighbour
        assert r.propose(query, 1) == [parse_pass_list(lists[i])]
    wide = r.propose(irs[0], len(irs))
    assert len(wide) == len(set(lists)) and wide[0] == parse_pass_list(lists[0])  # distinct
    assert r.nearest(irs[0], 0) == [] and Retrieval([], []).propose(irs[0], 3) == []
    assert random_lists("h", 5) == random_lists("h", 5) != random_lists("g", 5)


BROKEN = {  # generated IR with the mistakes models make, and the class of LLVM 19's complaint
    "type error": "%2 = add i64 %0, 1\nret i32 %2",
    "undefined value": "%2 = add i32 %x, 1\nret i32 %2",
    "undefined function": "%2 = call i32 @g(i32 %0)\nret i32 %2",
    "invalid redefinition": "%2 = add i32 %0, 1\n%2 = add i32 %0, 1\nret i32 %2",
    "syntax error": "%2 = add i32 %0 1\nret i32 %2",
    "invalid value for constant": "%2 = add i32 %0, 1.5\nret i32 %2",
    "does not verify": "%2 = add i32 %2, 1\nret i32 %2",
}


def test_error_taxonomy_on_real_llvm_messages(toolchain):
    modules = [f"define i32 @f(i32 %0) {{\n{body}\n}}\n" for body in BROKEN.values()]
    modules.append("define i32 @f({i32} %0) {\n%2 = extractvalue {i32} %0, 3\nret i32 %2\n}\n")
    with InProcessCompiler(toolchain) as c:
        results = c.run_tasks([Task(m, PassList(())) for m in modules])
    errors = [r.error for r in results]
    assert all(not r.ok for r in results), errors
    assert [quality.classify_error(e) for e in errors] == [*BROKEN, "index error"], errors
    assert quality.classify_error("no complete <code> block in the answer") == quality.INCOMPLETE
    assert quality.classify_error("instruction forward referenced with type 'label'") == (
        "instruction forward referenced"
    )
    assert quality.classify_error(None) == quality.classify_error("???") == "other"
    assert quality.taxonomy([errors[0], errors[0], None]) == {"type error": 2, "other": 1}


def _examples(sample_functions) -> list[Example]:
    out = []
    for i, (name, ir) in enumerate(sample_functions.items()):
        answer = fmt.render_answer(parse_pass_list(OZ), 10, 5, None)
        split = ("train", "test", "heldout")[i % 3]
        out.append(Example(f"h{i}", split, "sample.c", name, fmt.render_prompt(ir), answer,
                           10, 5, 5, OZ, 0))  # fmt: skip
    return out


def test_test_set_drops_training_functions_and_repeats(sample_functions, toolchain, tmp_path):
    examples = _examples(sample_functions)
    data = tmp_path / "data.parquet"
    write_dataset(data, examples, {})
    training = read_training(data)
    assert training.hashes == {e.hash for e in examples if e.split == "train"}
    assert len(training.irs) == len(training.lists) == len(training.hashes)
    # a second source repeating one test function, and one "seen in training"
    other = tmp_path / "other.parquet"
    test_ex = [e for e in examples if e.split == "test"]
    write_dataset(other, [test_ex[0], dataclasses.replace(test_ex[1], hash="h0")], {})
    ts = load_test_set(
        [data, other], splits=["test"], toolchain=toolchain, compiler=None,  # type: ignore[arg-type]
        exclude={"h0"}, training_set=str(data),
    )  # fmt: skip
    assert [f.hash for f in ts.functions] == [e.hash for e in test_ex]
    assert ts.repeated == 1 and ts.seen_in_training == 1
    assert [s["functions"] for s in ts.sources] == [len(test_ex), 0]
    assert ts.functions[0].ir == sample_functions[test_ex[0].function]
    with pytest.raises(InputError, match="no test functions"):
        load_test_set([data], splits=["val"], toolchain=toolchain, compiler=None)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="not a Parquet file"):
        bad = tmp_path / "bad.parquet"
        bad.write_text("x")
        load_test_set([bad], splits=["test"], toolchain=toolchain, compiler=None)  # type: ignore[arg-type]
    with pytest.raises(InputError, match=r"no C/C\+\+ files"):
        load_test_set([tmp_path], splits=["test"], toolchain=toolchain, compiler=None)  # type: ignore[arg-type]


def test_markdown_and_html_escape_and_carry_every_table():
    row = MethodResult("a|<b>", "model", [9], [1], [OZ]).row([10], 0.1)
    report = {
        "title": "t <x>", "model": "m", "llvm_version": "19", "passlm_version": "0", "command": "c",
        "costs": {"compiles": 1, "compile_seconds": 0.1}, "rows": [row],
        "quality": {"ir_functions": 0}, "plotted_methods": ["a|<b>"],
        "by_source": {"s": {"functions": 1, "oz_instructions": 10, "overall": {"a|<b>": 0.1}}},
        "by_size": {}, "notes": ["n & m"],
        "test_set": {"functions": 1, "splits": ["test"], "sources": [], "repeated": 0,
                     "seen_in_training": 0, "training_set": None},
    }  # fmt: skip
    titles = [s.title for s in sections(report)]
    assert titles == [
        "Methods vs -Oz (the paper's Tables III/IV)",
        "By code base",
        "Test functions",
    ]
    md = to_markdown(report, ["overall.png"])
    assert "| a\\|<b> | 1 (1.0/fn) | 1 | 0 | 1 | 0 | +10.00% | 100.0% | - |" in md
    assert "![Overall improvement over -Oz, per method](overall.png)" in md
    page = to_html(report, {"overall.png": b"\x89PNG"})
    assert "<td>a|&lt;b&gt;</td>" in page and "<title>t &lt;x&gt;</title>" in page
    assert 'src="data:image/png;base64,iVBORw==' in page and "n &amp; m" in page


def test_report_files_are_written_all_at_once(tmp_path, monkeypatch):
    from passlm import files

    new = tmp_path / "new"
    written = files.atomic_write_files(new, {"a.png": b"\x89PNG", "report.json": "{}\n"})
    assert sorted(p.name for p in written) == ["a.png", "report.json"]
    assert (new / "a.png").read_bytes() == b"\x89PNG"
    old = tmp_path / "old"
    old.mkdir()
    (old / "mine.txt").write_text("kept")
    (old / "report.json").write_text("stale")
    files.atomic_write_files(old, {"report.json": "fresh"})
    assert (old / "report.json").read_text() == "fresh" and (old / "mine.txt").read_text() == "kept"

    real = files.atomic_write
    calls = []

    def dies_on_the_second(path, data):
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt
        real(path, data)

    monkeypatch.setattr(files, "atomic_write", dies_on_the_second)
    with pytest.raises(KeyboardInterrupt):
        files.atomic_write_files(tmp_path / "killed", {"a.png": b"1", "report.json": "{}"})
    assert not (tmp_path / "killed").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new", "old"]  # no staging left
    with pytest.raises(InputError, match="not a directory"):
        files.atomic_write_files(old / "mine.txt", {"x": "y"})


def test_per_function_records_are_stored_apart_and_read_back(tmp_path):
    """report.json keeps the summary; functions.json.gz the records; old reports still read."""
    report = {"title": "t", "rows": [], "functions": [{"hash": "h", "-Oz": {"count": 3}}]}
    summary = {k: v for k, v in report.items() if k != "functions"}
    (tmp_path / "report.json").write_text(json.dumps(report))  # records inline, as before
    assert read_report(tmp_path) == report
    (tmp_path / "functions.json.gz").write_bytes(
        gzip.compress(json.dumps(report["functions"]).encode())
    )
    (tmp_path / "report.json").write_text(json.dumps(summary))
    assert read_report(tmp_path) == report
    (tmp_path / "functions.json.gz").write_bytes(gzip.compress(b"[1,"))
    with pytest.raises(ValueError):
        read_report(tmp_path)


def test_training_data_follows_the_fine_tune_chain(sample_functions, tmp_path, monkeypatch):
    from passlm.evaluate.testset import merge_training, training_data_of

    monkeypatch.chdir(tmp_path)  # recorded commands name paths relative to where they ran
    examples = _examples(sample_functions)
    write_dataset(tmp_path / "base.parquet", examples, {})
    tuned_on = [dataclasses.replace(e, hash=f"f{i}") for i, e in enumerate(examples[:2])]
    write_dataset(tmp_path / "feedback.parquet", tuned_on, {})
    base, fine = tmp_path / "base-model", tmp_path / "fine-model"
    base.mkdir()
    fine.mkdir()
    (base / "passlm.json").write_text('{"command": "passlm train base.parquet -o base-run"}')
    (fine / "passlm.json").write_text(
        '{"command": "passlm train feedback.parquet -o fine-run --init base-model",'
        ' "init": "base-model"}'
    )
    assert training_data_of(fine) == [Path("feedback.parquet"), Path("base.parquet")]
    assert training_data_of(base) == [Path("base.parquet")]
    sets = [read_training(p) for p in training_data_of(fine)]
    merged = merge_training(sets)
    assert merged.hashes == sets[0].hashes | sets[1].hashes and len(merged.hashes) > len(
        sets[1].hashes
    )
    assert merged.irs == sets[1].irs and merged.path == "feedback.parquet + base.parquet"
    (base / "passlm.json").write_text(
        '{"command": "passlm train gone.parquet -o x", "init": "fine-model"}'
    )  # a missing file is skipped; a loop in the chain ends it
    assert training_data_of(fine) == [Path("feedback.parquet")]
    (base / "passlm.json").write_text(
        '{"command": "passlm train base.parquet feedback.parquet base.parquet -o x.parquet"}'
    )  # a mixed run names each data set once; -o's value is no training data
    (fine / "passlm.json").write_text('{"command": "passlm train x", "init": "base-model"}')
    (tmp_path / "x.parquet").write_bytes(b"")
    assert training_data_of(fine) == [Path("base.parquet"), Path("feedback.parquet")]
    (tmp_path / "aux.parquet").write_bytes(b"")
    (base / "passlm.json").write_text(
        '{"command": "passlm train base.parquet -o y --ir-only aux.parquet --ir-only=x.parquet"}'
    )  # the --ir-only data sets are training data too
    assert training_data_of(base) == [Path("base.parquet"), Path("aux.parquet"), Path("x.parquet")]


def test_a_fine_tune_exported_over_its_base_keeps_the_base_data(tmp_path, monkeypatch):
    """Shipping a fine-tune of the default as the new default overwrites the model its ``init``
    names; the recorded lineage keeps the base model's data set in the chain all the same."""
    from passlm.evaluate.testset import training_data_of
    from passlm.model.checkpoint import lineage_of

    monkeypatch.chdir(tmp_path)
    for name in ("base.parquet", "winners.parquet"):
        (tmp_path / name).write_bytes(b"")
    shipped, fine = tmp_path / "default", tmp_path / "fine"
    shipped.mkdir()
    fine.mkdir()
    base_meta = {"command": "passlm train base.parquet -o run", "data_hash": "b", "steps": 9}
    (shipped / "passlm.json").write_text(json.dumps(base_meta))
    assert lineage_of(shipped) == [base_meta]
    # what passlm train --init writes: its own record, and the lineage of its init
    fine_meta = {
        "command": "passlm train winners.parquet -o run2 --init default",
        "init": "default",
        "lineage": lineage_of(shipped),
        "preset": {"name": "cpu-small"},
    }
    (fine / "passlm.json").write_text(json.dumps(fine_meta))
    want = [Path("winners.parquet"), Path("base.parquet")]
    assert training_data_of(fine) == want
    (shipped / "passlm.json").write_text(json.dumps(fine_meta))  # exported in place
    assert training_data_of(shipped) == want
    assert [e["command"] for e in lineage_of(shipped)] == [
        fine_meta["command"], base_meta["command"]
    ]  # fmt: skip
    (shipped / "passlm.json").write_text("{not json")
    assert lineage_of(shipped) == [] and training_data_of(shipped) == []


def test_fraction_interval_by_hand():
    from passlm.evaluate.metrics import fraction_interval

    oz = [10] * 100
    tuner = [9] * 100  # one instruction saved on every function
    half = [9] * 50 + [10] * 50  # the method saves it on half of them: a binomial proportion
    lo, hi = fraction_interval(oz, half, tuner, resamples=4000)
    assert 0.38 <= lo <= 0.42 and 0.58 <= hi <= 0.62  # 0.5 ± 1.96 · 0.05
    assert fraction_interval(oz, half, tuner, resamples=4000) == (lo, hi)  # seeded
    uneven = [9] * 37 + [10] * 63
    assert fraction_interval(oz, uneven, tuner, seed=1) != fraction_interval(oz, uneven, tuner)
    wide = fraction_interval(oz, half, tuner, level=0.99)
    narrow = fraction_interval(oz, half, tuner, level=0.8)
    assert wide[0] < lo < narrow[0] < 0.5 < narrow[1] < hi < wide[1]
    assert fraction_interval(oz, tuner, tuner) == (1.0, 1.0)
    assert fraction_interval(oz, oz, tuner) == (0.0, 0.0)
    # one function carries the whole gain: resamples without it say nothing and are left out
    assert fraction_interval([10, 5, 5], [8, 5, 5], [6, 5, 5]) == (0.5, 0.5)
    assert fraction_interval([10, 5], [9, 5], [10, 5]) is None  # the reference gains nothing
    assert fraction_interval([], [], []) is None
    # minus: the difference of two shares, drawn on the same functions
    assert fraction_interval(oz, tuner, tuner, minus=half) == (1 - hi, 1 - lo)
    assert fraction_interval(oz, half, tuner, minus=half) == (0.0, 0.0)
    with pytest.raises(ValueError, match="differ in length"):
        fraction_interval([1, 2], [1], [1, 2])
    with pytest.raises(ValueError, match="minus and counts"):
        fraction_interval([1, 2], [1, 2], [1, 2], minus=[1])
    with pytest.raises(ValueError, match="level"):
        fraction_interval(oz, half, tuner, level=1.0)


def test_shares_and_paired_differences_by_hand():
    from passlm.evaluate.metrics import (
        best_of,
        fraction_interval,
        gain_share,
        paired,
        share_points,
    )

    assert best_of(10, [12, None, 9, 11]) == 9  # a failed compile (None) is skipped
    assert best_of(10, [12, None]) == 10 and best_of(10, []) == 10  # -Oz is always kept
    oz = [10] * 100
    tuner = [9] * 100
    half = [9] * 50 + [10] * 50
    worse = [11] * 10 + [10] * 90  # loses one instruction on ten functions
    assert gain_share(oz, half, tuner) == 0.5
    assert gain_share(oz, worse, tuner) == -0.1
    assert gain_share([10, 5], [9, 5], [10, 5]) is None  # the reference gains nothing
    with pytest.raises(ValueError, match="differ in length"):
        gain_share([1, 2], [1], [1, 2])

    against = paired(oz, half, worse, tuner)
    # ahead where the method saves and the baseline does not; behind nowhere
    assert (against.ahead, against.behind) == (50, 0)
    assert against.interval == fraction_interval(oz, half, tuner, minus=worse)
    assert against.interval[0] > 0.4  # 0.6 points apart, the same functions drawn for both
    reverse = paired(oz, worse, half, tuner)
    assert (reverse.ahead, reverse.behind) == (0, 50)
    assert paired(oz, half, half, tuner).interval == (0.0, 0.0)
    with pytest.raises(ValueError, match="baseline_counts"):
        paired(oz, half, half[:5], tuner)

    got = share_points(oz, half, tuner, {"worse": worse})
    lo, hi = fraction_interval(oz, half, tuner)
    assert got["share"] == 50.0 and got["improved"] == 50
    assert got["interval"] == [round(100 * round(lo, 4), 2), round(100 * round(hi, 4), 2)]
    assert got["ahead of worse"] == 50 and got["behind worse"] == 0
    low, high = against.interval
    assert got["vs worse"] == [round(100 * round(low, 4), 2), round(100 * round(high, 4), 2)]
    assert share_points([10, 5], [9, 5], [10, 5]) == {
        "share": None, "interval": None, "improved": 1
    }  # fmt: skip


def test_benchmark_sources_are_path_and_split(tmp_path):
    from passlm.errors import InputError
    from passlm.evaluate.testset import parse_source

    tuned = tmp_path / "t.parquet"
    tuned.write_bytes(b"")
    assert parse_source(f"{tuned}:test") == (tuned, "test")
    with pytest.raises(InputError, match="--source test: expected PATH:SPLIT"):
        parse_source("test")
    with pytest.raises(InputError, match="--lists x: expected PATH:SPLIT"):
        parse_source("x", option="--lists")
    with pytest.raises(InputError, match=r"no such file NO\.parquet"):
        parse_source("NO.parquet:test")


def test_report_rows_carry_their_interval_in_every_rendering():
    from passlm.evaluate.suite import add_intervals

    oz, tuner, method = [10, 10, 10, 10], [8, 9, 10, 10], [9, 9, 10, 10]
    randomly = [10, 10, 9, 10]  # ahead of sample-1 on one function, behind it on two
    names = ("-Oz", "sample-1", "random search (sample-1 budget)", "autotuner")
    results = [MethodResult(n, "model", c, [0] * 4, [OZ] * 4)
               for n, c in zip(names, (oz, method, randomly, tuner), strict=True)]  # fmt: skip
    reference = results[-1].row(oz, 0.0)["overall"]
    report = {
        "title": "t", "model": "m", "llvm_version": "19", "passlm_version": "0", "command": "c",
        "costs": {"compiles": 1, "compile_seconds": 0.1},
        "rows": [r.row(oz, reference) for r in results], "quality": {"ir_functions": 0},
        "plotted_methods": [], "by_source": {}, "by_size": {}, "notes": [],
        "test_set": {"functions": 4, "splits": ["test"], "sources": [], "repeated": 0,
                     "seen_in_training": 0, "training_set": None},
        "functions": [{"hash": str(i), "oz_count": oz[i],
                       **{r.name: {"count": r.counts[i], "passes": OZ} for r in results}}
                      for i in range(4)],
    }  # fmt: skip
    add_intervals(report, resamples=500)
    rows = {r["method"]: r for r in report["rows"]}
    assert rows["autotuner"]["fraction_interval"] == [1.0, 1.0]
    assert rows["-Oz"]["fraction_interval"] == [0.0, 0.0]
    lo, hi = rows["sample-1"]["fraction_interval"]
    assert rows["sample-1"]["fraction_of_autotuner"] == pytest.approx(2 / 3)
    assert 0.0 <= lo < 2 / 3 < hi <= 1.0  # function 0 gives 1/2, function 1 gives 1
    assert report["interval"]["level"] == 0.95
    share = f"66.7% [{100 * lo:.1f}, {100 * hi:.1f}]"
    assert f"| +5.00% | {share} |" in to_markdown(report, [])
    assert f"<td>{share}</td>" in to_html(report, {})
    assert "| +7.50% | 100.0% |" in to_markdown(report, [])  # a point interval is not printed
    assert "In square brackets: a 95% interval" in to_markdown(report, [])
    (c,) = report["comparisons"]
    assert (c["method"], c["baseline"]) == ("sample-1", "random search (sample-1 budget)")
    assert c["difference"] == pytest.approx(2 / 3 - 1 / 3) and (c["ahead"], c["behind"]) == (2, 1)
    lo, hi = c["interval"]
    assert lo < 1 / 3 < hi
    row = f"| sample-1 | random search (sample-1 budget) | +33.3 | [{100 * lo:+.1f}, {100 * hi:+.1f}] | 2 | 1 |"
    assert row in to_markdown(report, [])
    assert "Against the baselines at the same compiles" in to_html(report, {})


def test_jsonl_gz_round_trip_is_repeatable_and_bad_files_are_named(tmp_path):
    from passlm.files import read_jsonl_gz, write_jsonl_gz

    rows = [{"hash": "a", "lists": ["-Oz"]}, {"hash": "b", "prompt": None}]
    first, second = tmp_path / "1.jsonl.gz", tmp_path / "2.jsonl.gz"
    write_jsonl_gz(first, rows)
    write_jsonl_gz(second, rows)
    assert read_jsonl_gz(first) == rows
    assert first.read_bytes() == second.read_bytes()  # no time stamp in the gzip header
    plain = tmp_path / "plain.jsonl"
    plain.write_text(json.dumps(rows[0]) + "\n")
    with pytest.raises(InputError, match=r"plain\.jsonl: not a gzipped JSON-lines file"):
        read_jsonl_gz(plain)
