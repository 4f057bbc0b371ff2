"""Prompt/answer format, its parser on arbitrary model output, and the data set file."""

from __future__ import annotations

import dataclasses
import subprocess

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from passlm.data import format as fmt
from passlm.data.dataset import (
    Example,
    dataset_meta,
    ir_by_split,
    make_dataset,
    read_dataset,
    winning_lists,
    write_dataset,
)
from passlm.errors import InputError
from passlm.llvm.names import anonymize
from passlm.llvm.passes import ALL_ACTIONS, O_LEVELS, parse_pass_list
from passlm.search.tuned import TunedFunction, write_tuned

from .conftest import FIXTURES, run_passlm

IR = "define i32 @f(i32 %0) {\n%2 = add i32 %0, 1\nret i32 %2\n}\n"
OPT = "define i32 @f(i32 %0) {\nret i32 %0\n}\n"


@pytest.fixture(scope="module")
def tiny_tokenizer():
    from passlm.model.tokenizer import train_tokenizer

    return train_tokenizer([IR, OPT] * 20, vocab_size=1024)


def test_answer_has_the_design_format():
    text = fmt.render_answer("-reg2mem -instcombine -Os", 39, 14, "...optimized IR...\n")
    assert text == (
        "Run passes `-reg2mem -instcombine -Os` to reduce instruction count from 39 to 14:\n"
        "<code>\n...optimized IR...\n</code>"
    )
    no_aux = fmt.render_answer("-reg2mem -instcombine -Os", 39, 14)
    assert (
        no_aux
        == "Run passes `-reg2mem -instcombine -Os` to reduce instruction count from 39 to 14."
    )


def test_prompt_holds_the_ir():
    prompt = fmt.render_prompt(IR)
    assert prompt.startswith(fmt.INSTRUCTION + "\n<code>\n")
    assert prompt.endswith("\n</code>\n")
    assert fmt.parse_prompt(prompt) == IR


def test_parse_answer_reads_all_parts():
    parsed = fmt.parse_answer(fmt.render_answer("mem2reg,instcombine,Oz", 3, 2, OPT))
    assert parsed == fmt.ParsedAnswer(parse_pass_list("-mem2reg -instcombine -Oz"), None, 3, 2, OPT)
    assert parsed.valid


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", "no pass list"),
        ("Run passes `-mem2reg -instco", "unterminated"),
        ("Run passes `-mem2reg -notapass` to reduce", "notapass"),
        ("Run passes `-Oz -Oz` to reduce instruction count from 3 to 2.", "more than once"),
        ("Run passes `` to", "empty pass list"),
        ("Run passes `-print<domtree>`", "not in the action space"),
    ],
)
def test_parse_answer_reports_bad_pass_lists(text, error):
    parsed = fmt.parse_answer(text)
    assert parsed.passes is None
    assert error in (parsed.pass_error or "")


def test_parse_answer_of_truncated_ir():
    text = fmt.render_answer("-Oz", 3, 2, OPT)
    parsed = fmt.parse_answer(text[: len(text) - 3])
    assert parsed.passes == parse_pass_list("-Oz")
    assert (parsed.before, parsed.after, parsed.ir) == (3, 2, None)
    huge = fmt.parse_answer("Run passes `-Oz` to reduce instruction count from " + "9" * 5000)
    assert (huge.passes, huge.before) == (parse_pass_list("-Oz"), None)


pass_lists = st.lists(st.sampled_from(ALL_ACTIONS), min_size=1, max_size=12).filter(
    lambda names: all(names.count(o) <= 1 for o in O_LEVELS)
)
ir_texts = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=200).map(
    lambda s: s.replace("</code>", "").rstrip("\n") + "\n"
)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_parse_answer_never_raises(text):
    parsed = fmt.parse_answer(text)
    assert (parsed.passes is None) == (parsed.pass_error is not None)
    fmt.parse_second_answer(text)
    fmt.parse_prompt(text)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="Run passes`-Oz0123456789 tofrmcd<>/\n:.instcombine", max_size=200))
def test_parse_answer_never_raises_on_near_misses(text):
    fmt.parse_answer("Run passes `" + text)


@settings(max_examples=100, deadline=None)
@given(
    pass_lists,
    st.integers(0, 10**6),
    st.integers(0, 10**6),
    st.one_of(st.none(), ir_texts),
)
def test_render_parse_round_trip(names, before, after, ir):
    passes = parse_pass_list(names)
    parsed = fmt.parse_answer(fmt.render_answer(passes, before, after, ir))
    assert parsed == fmt.ParsedAnswer(passes, None, before, after, ir)
    sure, again = fmt.parse_second_answer(fmt.render_second_answer(fmt.render_answer(passes, 1, 1)))
    assert sure is False
    assert again.passes == passes


def test_feedback_text():
    first = fmt.parse_answer(fmt.render_answer("-instcombine -Oz", 15, 4, OPT))
    text = fmt.render_feedback(first, source_count=15, target_count=5, bleu=0.923)
    assert text == (
        "Compiler feedback:\n"
        "Passes valid: True\n"
        "Source instruction count: 15 [True], correct 15\n"
        "Target instruction count: 4 [False], correct 5\n"
        "Target IR BLEU score: 0.92\n"
    )
    fast = fmt.render_feedback(first, source_count=15, target_count=5, kind=fmt.FAST, bleu=0.9)
    assert "BLEU" not in fast
    bad = fmt.parse_answer("Run passes `-nope` to reduce instruction count from 15 to 4:")
    text = fmt.render_feedback(bad, source_count=15, target_count=None, kind=fmt.LONG)
    assert "Passes valid: False\n" in text
    assert "errors: unknown pass 'nope'" in text
    assert "Target" not in text
    long = fmt.render_feedback(
        first, source_count=15, target_count=4, kind=fmt.LONG, compiled_ir=OPT
    )
    assert long.endswith(f"<code>\n{OPT}</code>\n")
    assert fmt.render_second_answer(None) == fmt.SURE
    assert fmt.parse_second_answer("I am sure!")[0] is True
    assert fmt.parse_second_answer("Let me try again.\nRun passes `-Oz`")[1].passes is not None


def _tuned(name: str, split: str, ir_lines: int = 1, passes: str = "-instcombine -Oz"):
    ir = IR.replace("@f", f"@{name}") + "; pad\n" * (ir_lines - 1)
    return TunedFunction(
        hash=f"h{name}",
        function=name,
        source="dir:x",
        file=f"{name}.c",
        split=split,
        ir=ir,
        o0_count=2,
        oz_count=1,
        best_passes=passes,
        best_count=1,
        optimized_ir=OPT,
        trials=10,
        errors=0,
        error_kinds="",
    )


ROWS = [
    _tuned("c", "val"),
    _tuned("b", "train", ir_lines=200),
    _tuned("a", "train"),
    _tuned("d", "heldout"),
    _tuned("e", "test", passes="-O2"),
]


def test_balanced_feedback_keeps_every_retry_and_as_many_sure_per_split():
    from passlm.data.feedback import balance

    def ex(i: int, split: str, sure: bool) -> Example:
        answer = fmt.SURE if sure else fmt.render_second_answer("Run passes `-O1` ...")
        return Example(f"h{i}", split, "s", f"f{i}", "p", answer, 9, 5, 4, "-O1", 0)

    rows = [ex(i, "train", i % 5 != 0) for i in range(20)] + [
        ex(20 + i, "val", True) for i in range(3)
    ]
    kept = balance(rows)
    train = [e for e in kept if e.split == "train"]
    retry = [e for e in train if e.answer != fmt.SURE]
    assert len(retry) == 4 and len(train) == 8  # all 4 retries, 4 of the 16 sure ones
    assert [e.hash for e in train] == sorted({e.hash for e in train}, key=lambda h: int(h[1:]))
    assert not [e for e in kept if e.split == "val"]  # no retry there: nothing to balance with
    assert balance(rows) == kept  # deterministic
    unsure = [ex(i, "test", False) for i in range(3)] + [ex(3, "test", True)]
    assert balance(unsure) == unsure  # fewer sure than retries: all of both


def test_make_dataset_order_and_answers():
    examples, report = make_dataset(ROWS)
    assert [e.function for e in examples] == ["a", "b", "c", "e", "d"]
    assert examples[0].answer == fmt.render_answer("-instcombine -Oz", 2, 1, OPT)
    assert examples[0].prompt == fmt.render_prompt(ROWS[2].ir)
    assert all(e.tokens == 0 for e in examples)
    assert sum(s.kept for s in report.splits) == 5
    no_aux, _ = make_dataset(ROWS, aux=False)
    assert "<code>" not in no_aux[0].answer
    assert fmt.parse_answer(no_aux[0].answer).before == 2


def test_oz_ties_answer_oz_unless_something_beat_it():
    better = dataclasses.replace(_tuned("g", "train", passes="-O2"), best_count=0)
    rows = [*ROWS, better]
    oz_ir = {r.hash: "; oz of " + r.function + "\n" for r in rows}
    examples, report = make_dataset(rows, oz_ir=oz_ir)
    by_name = {e.function: e for e in examples}
    assert report.oz_ties
    tie = fmt.parse_answer(by_name["a"].answer)
    assert str(tie.passes) == "-Oz" and tie.after == 1 and tie.ir == "; oz of a\n"
    assert by_name["a"].best_passes == "-instcombine -Oz"  # the autotuner's list is kept
    won = fmt.parse_answer(by_name["g"].answer)
    assert str(won.passes) == "-O2" and won.after == 0 and won.ir == OPT
    with pytest.raises(InputError, match="no optimized IR"):
        make_dataset(rows, oz_ir={})


def test_prompt_with_the_oz_context_keeps_the_ir_first():
    prompt = fmt.render_prompt(IR, fmt.OzContext(1, OPT))
    assert (
        prompt == fmt.render_prompt(IR) + "-Oz gives 1 instructions:\n<code>\n" + OPT + "</code>\n"
    )
    assert fmt.parse_prompt(prompt) == IR  # the unoptimized IR, not -Oz's


def test_the_oz_summary_is_one_line_of_blocks_and_opcode_counts():
    oz_ir = (
        "define i32 @f(ptr %0) {\n  %2 = load i32, ptr %0, align 4\n  %3 = add i32 %2, 1\n"
        "  %4 = load i32, ptr %0, align 4\n  br label %5\n\n5:\n  ret i32 %3\n}\n"
    )
    assert fmt.oz_summary(oz_ir) == "2 blocks; 2 load, 1 add, 1 br, 1 ret"
    prompt = fmt.render_prompt(IR, fmt.OzContext(5, oz_ir), fmt.PROMPT_OZ_SUMMARY)
    assert (
        prompt
        == fmt.render_prompt(IR)
        + "-Oz gives 5 instructions: 2 blocks; 2 load, 1 add, 1 br, 1 ret\n"
    )
    assert fmt.parse_prompt(prompt) == IR
    with pytest.raises(ValueError, match="no -Oz context"):
        fmt.render_prompt(IR, fmt.OzContext(5, oz_ir), fmt.PROMPT_PLAIN)


def test_make_dataset_with_the_oz_context_puts_it_in_every_prompt():
    context = {r.hash: fmt.OzContext(r.oz_count, f"; oz of {r.function}\n") for r in ROWS}
    examples, report = make_dataset(ROWS, oz_context=context)
    plain, plain_report = make_dataset(ROWS)
    assert report.prompt == fmt.PROMPT_OZ and plain_report.prompt == fmt.PROMPT_PLAIN
    assert [e.answer for e in examples] == [e.answer for e in plain]  # only the prompts change
    ir_of = {r.hash: r.ir for r in ROWS}
    assert all(e.prompt == fmt.render_prompt(ir_of[e.hash], context[e.hash]) for e in examples)
    with pytest.raises(InputError, match="no -Oz output"):
        make_dataset(ROWS, oz_context={})
    short, short_report = make_dataset(ROWS, oz_context=context, oz_summary=True)
    assert short_report.prompt == fmt.PROMPT_OZ_SUMMARY
    assert [e.answer for e in short] == [e.answer for e in plain]
    assert all(
        e.prompt == fmt.render_prompt(ir_of[e.hash], context[e.hash], fmt.PROMPT_OZ_SUMMARY)
        for e in short
    )


def test_deny_listed_best_lists_are_answered_with_oz():
    sinking = dataclasses.replace(_tuned("g", "train", passes="-O1 -gvn-sink"), best_count=0)
    rows = [*ROWS, sinking]
    examples, report = make_dataset(rows, denied={sinking.hash: "; oz of g\n"})
    answer = fmt.parse_answer({e.function: e for e in examples}["g"].answer)
    assert str(answer.passes) == "-Oz" and answer.after == sinking.oz_count
    assert answer.ir == "; oz of g\n" and report.denied == 1
    assert make_dataset(rows)[1].denied == 0  # without a deny list the best list is taught


def test_oz_keep_thins_the_training_splits_oz_answers_only():
    won = [
        dataclasses.replace(_tuned(f"w{i}", "train", passes="-O2"), best_count=0) for i in range(20)
    ]
    ties = [_tuned(f"t{i}", "train") for i in range(200)]  # -Oz ties: answered -Oz
    others = [_tuned(f"v{i}", "val") for i in range(20)]
    rows = [*won, *ties, *others]
    oz_ir = {r.hash: "; oz\n" for r in rows}
    full, _ = make_dataset(rows, oz_ir=oz_ir)
    thin, report = make_dataset(rows, oz_ir=oz_ir, oz_keep=0.25)
    kept = {e.function for e in thin}
    assert {r.function for r in won + others} <= kept  # lists that won, and val, all kept
    kept_ties = [t for t in ties if t.function in kept]
    assert 30 <= len(kept_ties) <= 70 and report.oz_dropped == 200 - len(kept_ties)
    assert len(full) - len(thin) == report.oz_dropped and report.oz_keep == 0.25
    again, _ = make_dataset(list(reversed(rows)), oz_ir=oz_ir, oz_keep=0.25)
    assert {e.function for e in again} == kept  # seeded per function, not by order
    plain = [_tuned(f"p{i}", "train", passes="-Oz") for i in range(100)]  # best list -Oz
    assert 10 <= len(make_dataset(plain, oz_keep=0.25)[0]) <= 40  # thinned without oz_ir too
    with pytest.raises(InputError, match="oz_keep"):
        make_dataset(rows, oz_keep=0.0)


def test_winning_lists_are_the_lowest_counts_that_beat_oz():
    o1, o2, gvn = (parse_pass_list(p) for p in ("-O1", "-O2", "-gvn -dse"))
    cands = [(o1, 9), (o2, None), (gvn, 8), (o2, 8), (gvn, 8), (o1, 12)]
    assert winning_lists(10, cands, 4) == [(gvn, 8), (o2, 8)]  # ties in order, each once
    assert winning_lists(10, cands, 1) == [(gvn, 8)]
    assert winning_lists(8, cands, 4) == []  # nothing beats -Oz
    assert winning_lists(8, [(o2, None)], 4) == []


def test_winners_answer_a_training_function_once_per_winning_list():
    o1, gvn = parse_pass_list("-O1"), parse_pass_list("-gvn -dse")
    won = [dataclasses.replace(_tuned("w", "train", passes="-O1"), best_count=0)]
    tie = _tuned("t", "train")  # answered -Oz, no winners
    val = dataclasses.replace(_tuned("v", "val", passes="-O2"), best_count=0)
    rows = [*won, tie, val]
    winners = {"hw": [(o1, 0), (gvn, 0)], "hv": [(o1, 0)]}  # val's entry is ignored
    oz_ir = {tie.hash: "; oz\n"}
    examples, report = make_dataset(rows, aux=False, oz_ir=oz_ir, winners=winners)
    answers = [(e.function, fmt.parse_answer(e.answer)) for e in examples]
    assert [(f, str(a.passes), a.after) for f, a in answers] == [
        ("t", "-Oz", 1), ("w", "-O1", 0), ("w", "-gvn -dse", 0), ("v", "-O2", 0),
    ]  # fmt: skip
    assert (report.winner_functions, report.winner_examples) == (1, 2)
    thin, _ = make_dataset(rows, aux=False, oz_ir=oz_ir, winners=winners, oz_keep=1e-9)
    assert [e.function for e in thin] == ["w", "w", "v"]  # oz_keep thins -Oz answers only
    with pytest.raises(InputError, match="optimized IR"):
        make_dataset(rows, winners=winners)


def test_make_dataset_drops_long_examples():
    examples, report = make_dataset(ROWS, max_chars=1000)
    assert "b" not in {e.function for e in examples}
    by_split = {s.split: s for s in report.splits}
    assert (by_split["train"].functions, by_split["train"].kept) == (2, 1)
    assert by_split["train"].dropped == by_split["train"].dropped_chars == 1
    assert all(len(e.prompt) + len(e.answer) <= 1000 for e in examples)
    with pytest.raises(InputError, match="tokenizer"):
        make_dataset(ROWS, max_tokens=100)
    with pytest.raises(InputError, match="best_passes"):
        make_dataset([_tuned("z", "train", passes="-bogus")])


def test_make_dataset_counts_tokens(tiny_tokenizer):
    examples, report = make_dataset(ROWS, tokenizer=tiny_tokenizer)
    long = next(e for e in examples if e.function == "b")
    short = next(e for e in examples if e.function == "a")
    assert long.tokens > short.tokens > 2
    kept, report = make_dataset(ROWS, tokenizer=tiny_tokenizer, max_tokens=short.tokens)
    assert kept == [e for e in examples if e.tokens <= short.tokens]
    assert sum(s.dropped_tokens for s in report.splits) == len(examples) - len(kept) >= 1
    assert report.tokenizer is not None


def test_dataset_file_round_trip(tmp_path, tiny_tokenizer):
    examples, report = make_dataset(ROWS, tokenizer=tiny_tokenizer)
    meta = dataset_meta({"llvm_version": "19.1.7"}, report, tuned_path="t.parquet", command="x")
    path = tmp_path / "d.parquet"
    write_dataset(path, examples, meta)
    back, back_meta = read_dataset(path)
    assert back == examples
    assert isinstance(back[0], Example)
    assert back_meta["kind"] == "dataset"
    assert back_meta["llvm_version"] == "19.1.7"
    assert back_meta["aux"] is True
    assert back_meta["splits"][0]["split"] == "train"
    with pytest.raises(InputError, match="expected a passlm dataset"):
        write_tuned(tmp_path / "t.parquet", ROWS, {})
        read_dataset(tmp_path / "t.parquet")


def test_ir_by_split_reads_tuned_files(tmp_path):
    write_tuned(tmp_path / "t.parquet", ROWS, {})
    texts = ir_by_split(tmp_path / "t.parquet")
    assert texts["train"] == [ROWS[1].ir, OPT, ROWS[2].ir, OPT]
    with pytest.raises(InputError):
        ir_by_split(tmp_path / "missing.parquet")


def test_cli_dataset_make_winners_compiles_the_popular_lists(tmp_path):
    """Two real training functions: -O1 beats -Oz on one, -gvn -dse on the other (where -O1
    only ties -Oz); each is answered with exactly the popular lists that win on it."""
    fixtures = FIXTURES / "winners"
    rows = []
    for name, o0, oz, passes, best in (("LoadInt", 13, 10, "-O1", 9),
                                       ("neg_inv64", 26, 16, "-gvn -dse", 12)):  # fmt: skip
        ir = "".join(
            line for line in (fixtures / f"{name}.ll").read_text().splitlines(True)
            if not line.startswith(";")
        )  # fmt: skip
        rows.append(
            dataclasses.replace(
                _tuned(name, "train"),
                ir=ir,
                o0_count=o0,
                oz_count=oz,
                best_passes=passes,
                best_count=best,
                optimized_ir=None,
            )
        )
    tuned, out = tmp_path / "t.parquet", tmp_path / "d.parquet"
    write_tuned(tuned, rows, {"llvm_version": "19.1.7"})

    def passlm(*args: str) -> subprocess.CompletedProcess:
        return run_passlm("dataset", "make", str(tuned), "-o", str(out), *args)

    res = passlm("--no-aux", "--winners", "2", "--workers", "1")
    assert res.returncode == 0, res.stderr
    examples, meta = read_dataset(out)
    got = [(e.function, str(fmt.parse_answer(e.answer).passes), fmt.parse_answer(e.answer).after)
           for e in examples]  # fmt: skip
    assert got == [("LoadInt", "-O1", 9), ("neg_inv64", "-gvn -dse", 12)]
    assert (meta["winner_functions"], meta["winner_examples"]) == (2, 2)
    # --oz-context: every prompt also shows what -Oz made of the function (compiled here);
    # --oz-summary: the same context in one line
    for flag, kind in (("--oz-context", fmt.PROMPT_OZ), ("--oz-summary", fmt.PROMPT_OZ_SUMMARY)):
        res = passlm("--no-aux", flag, "--workers", "1")
        assert res.returncode == 0, res.stderr
        examples, meta = read_dataset(out)
        assert meta["prompt"] == kind
        for e, oz in zip(examples, (10, 16), strict=True):
            head, context = e.prompt.split(fmt.OZ_CONTEXT)
            assert head == fmt.render_prompt(fmt.parse_prompt(e.prompt))
            if kind == fmt.PROMPT_OZ:
                assert context.startswith(f"{oz}{fmt.OZ_CONTEXT_END}\n<code>\n")
                assert "define" in context
            else:
                assert context.startswith(f"{oz}{fmt.OZ_CONTEXT_END} ")
                assert context.count("\n") == 1
                assert " blocks; " in context and "define" not in context
    res = passlm("--oz-context", "--oz-summary")
    assert res.returncode == 2 and "choose one" in res.stderr
    res = passlm("--winners", "2")
    assert res.returncode == 2 and "--no-aux" in res.stderr


def test_coverage_order_takes_marginal_savings_not_wins():
    from passlm.search.outcomes import coverage_order

    savings = np.array(
        [[0.5, 0.5, 0.0], [0.5, 0.5, 0.0], [0.0, 0.4, 0.0], [0.0, 0.0, 0.3]], dtype=np.float32
    )
    # list 1 saves 1.4 in all; after it list 0 adds nothing where list 1 already saves as much,
    # list 2 adds 0.3 on the last row
    assert coverage_order(savings) == [1, 2, 0]
    assert coverage_order(np.zeros((2, 3), dtype=np.float32)) == [0, 1, 2]


def test_canonical_winner_is_the_first_in_coverage_order_among_the_lowest():
    from passlm.search.outcomes import OutcomeRow, OutcomeTable, canonical_winners

    a, b, c = (parse_pass_list(p) for p in ("-O1", "-gvn -dse", "-mem2reg"))
    rows = (
        OutcomeRow("f0", 10, [8, 8, 10], [1]),  # a and b tie: b covers more, b answers
        OutcomeRow("f1", 10, [10, 7, 10], [1]),
        OutcomeRow("f2", 10, [9, None, 10], [1]),  # b failed: a alone is lowest
        OutcomeRow("f3", 10, [10, 11, 10], [1]),  # nothing beats -Oz: no answer
        OutcomeRow("f4", 10, [10, 10, 6], [1]),
    )
    table = OutcomeTable((a, b, c), ("k",), rows, {})
    assert canonical_winners(table) == {"f0": (b, 8), "f1": (b, 7), "f2": (a, 9), "f4": (c, 6)}


def test_cli_dataset_make_canonical_answers_from_an_outcome_table(tmp_path, toolchain):
    """Real functions and a table of real compiles: each training function where a list beats
    -Oz is answered once, with the canonical winner and the table's count."""
    from passlm.llvm.backend import InProcessCompiler
    from passlm.search.outcomes import build_outcomes, canonical_winners, write_outcomes
    from passlm.search.store import TrialStore

    fixtures = FIXTURES / "winners"
    rows = []
    for name in ("LoadInt", "neg_inv64"):
        ir = "".join(
            line for line in (fixtures / f"{name}.ll").read_text().splitlines(True)
            if not line.startswith(";")
        )  # fmt: skip
        rows.append(dataclasses.replace(_tuned(name, "train"), ir=ir, optimized_ir=None))
    lists = [parse_pass_list(p) for p in ("-O1", "-gvn -dse", "-mem2reg")]
    with InProcessCompiler(toolchain) as c:
        rows = [
            dataclasses.replace(r, o0_count=c.count(r.ir), oz_count=(oz := c.run(r.ir, "-Oz").count),
                                best_passes="-Oz", best_count=oz)
            for r in rows
        ]  # fmt: skip
        table = build_outcomes([(r.hash, r.ir) for r in rows], lists, c,
                               TrialStore(":memory:", c.version), {})  # fmt: skip
    want = canonical_winners(table)
    assert want, "the fixtures were chosen so that a list beats -Oz"
    tuned, table_path, out = tmp_path / "t.parquet", tmp_path / "o.parquet", tmp_path / "d.parquet"
    write_tuned(tuned, rows, {"llvm_version": toolchain.version})
    write_outcomes(table_path, table)

    def passlm(*args: str) -> subprocess.CompletedProcess:
        return run_passlm("dataset", "make", str(tuned), "-o", str(out), *args)

    res = passlm("--no-aux", "--canonical", str(table_path), "--workers", "1")
    assert res.returncode == 0, res.stderr
    examples, meta = read_dataset(out)
    got = {e.hash: (fmt.parse_answer(e.answer).passes, fmt.parse_answer(e.answer).after)
           for e in examples}  # fmt: skip
    for r in rows:
        assert got[r.hash] == want.get(r.hash, (parse_pass_list("-Oz"), r.oz_count))
    assert meta["winner_functions"] == len(want)
    # with the optimized IR: each canonical list compiled again, its IR in the answer
    res = passlm("--canonical", str(table_path), "--workers", "1")
    assert res.returncode == 0, res.stderr
    full = {e.hash: fmt.parse_answer(e.answer) for e in read_dataset(out)[0]}
    with InProcessCompiler(toolchain) as c:
        for h, (passes, count) in want.items():
            assert (full[h].passes, full[h].after) == (passes, count)
            assert full[h].ir and c.count(full[h].ir) == count
    # --anonymize-names: every name renamed alike in prompt and answer, the counts unchanged
    res = passlm("--canonical", str(table_path), "--anonymize-names", "--workers", "1")
    assert res.returncode == 0, res.stderr
    examples, meta = read_dataset(out)
    assert meta["names"] == "anonymized" and len(examples) == len(rows)
    for e in examples:
        answer = fmt.parse_answer(e.answer)
        assert answer == dataclasses.replace(full[e.hash], ir=anonymize(full[e.hash].ir))
        assert e.function not in e.prompt + e.answer and "@g0" in e.prompt
    res = passlm("--no-aux", "--canonical", str(table_path), "--winners", "2")
    assert res.returncode == 2 and "choose one" in res.stderr
    write_tuned(tuned, [dataclasses.replace(r, split="test") for r in rows], {})
    res = passlm("--no-aux", "--canonical", str(table_path))
    assert res.returncode == 2 and "train split" in res.stderr and "Traceback" not in res.stderr


def test_cli_tokenizer_train_and_dataset_make(tmp_path):
    import subprocess
    import sys

    def passlm(*args: str) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "passlm.cli", *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)

    tuned, tok, out = tmp_path / "t.parquet", tmp_path / "tok.json", tmp_path / "d.parquet"
    write_tuned(tuned, ROWS, {"llvm_version": "19.1.7"})
    res = passlm("tokenizer", "train", str(tuned), "-o", str(tok), "--vocab-size", "1024")
    assert res.returncode == 0, res.stderr
    assert "characters/token" in res.stdout
    res = passlm("dataset", "make", str(tuned), "-o", str(out), "--tokenizer", str(tok),
                 "--max-tokens", "100000", "--max-chars", "1000", "--no-aux",
                 "--best-ties")  # fmt: skip
    assert res.returncode == 0, res.stderr
    examples, meta = read_dataset(out)
    assert len(examples) == 4  # "b" is over 1000 characters
    assert meta["aux"] is False
    assert meta["max_chars"] == 1000
    assert all(e.tokens > 0 for e in examples)
    res = passlm("dataset", "make", str(tuned), "-o", str(out), "--max-tokens", "10")
    assert res.returncode == 2
    assert "tokenizer" in res.stderr
