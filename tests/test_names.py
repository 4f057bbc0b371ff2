"""Anonymized names (passlm.llvm.names) and the data sets made with them."""

from __future__ import annotations

import dataclasses

from passlm.data import format as fmt
from passlm.data.dataset import make_dataset
from passlm.llvm.backend import InProcessCompiler, Task
from passlm.llvm.ir import load_ir, split_functions
from passlm.llvm.names import NAMES_ANONYMIZED, NAMES_KEPT, Renaming, anonymize, library_names
from passlm.llvm.passes import OZ, parse_pass_list

from .conftest import FIXTURES
from .test_data import ROWS

WALK = """\
%struct.node = type { i32, ptr }
%"class.ns::Tree" = type { ptr }
@counter = global i32 0
define i32 @walk(ptr %0, ptr %1) {
%3 = call i64 @strlen(ptr %0)
call void @llvm.memcpy.p0.p0.i64(ptr %1, ptr %0, i64 %3, i1 false)
%4 = load %struct.node, ptr %1
%5 = call i32 @helper(ptr @counter, ptr @"quoted name")
%6 = call i32 @helper(ptr @counter, ptr null)
ret i32 %6
}
declare i64 @strlen(ptr)
declare i32 @helper(ptr, ptr)
declare void @llvm.memcpy.p0.p0.i64(ptr, ptr, i64, i1)
"""


def test_names_are_numbered_by_first_use_library_functions_and_intrinsics_kept():
    assert (
        anonymize(WALK)
        == """\
%struct.T0 = type { i32, ptr }
%class.T1 = type { ptr }
@g0 = global i32 0
define i32 @g1(ptr %0, ptr %1) {
%3 = call i64 @strlen(ptr %0)
call void @llvm.memcpy.p0.p0.i64(ptr %1, ptr %0, i64 %3, i1 false)
%4 = load %struct.T0, ptr %1
%5 = call i32 @g2(ptr @g0, ptr @g3)
%6 = call i32 @g2(ptr @g0, ptr null)
ret i32 %6
}
declare i64 @strlen(ptr)
declare i32 @g2(ptr, ptr)
declare void @llvm.memcpy.p0.p0.i64(ptr, ptr, i64, i1)
"""
    )
    assert {"memcpy", "strlen", "printf", "malloc", "_Znwm"} <= library_names()
    assert "helper" not in library_names() and "main" not in library_names()


def test_a_renaming_carries_to_the_other_texts_about_the_function():
    """The optimized IR keeps the names the prompt gave; a name only it has is numbered after
    the prompt's, anew in each text (the renaming itself never grows)."""
    renaming = Renaming.of(WALK)
    assert renaming.globals == {
        "counter": "g0",
        "walk": "g1",
        "helper": "g2",
        '"quoted name"': "g3",
    }
    assert renaming.types == {"struct.node": "struct.T0", '"class.ns::Tree"': "class.T1"}
    optimized = "define i32 @walk(ptr %0) {\n%2 = call i32 @fresh(ptr @counter)\nret i32 %2\n}\n"
    expected = "define i32 @g1(ptr %0) {\n%2 = call i32 @g4(ptr @g0)\nret i32 %2\n}\n"
    assert renaming.apply(optimized) == expected
    assert renaming.apply("call void @other()\n") == "call void @g4()\n"
    assert Renaming.of(WALK) == renaming


def test_anonymizing_twice_changes_nothing_and_never_changes_what_the_compiler_counts(toolchain):
    """Renaming is idempotent (a data set's anonymized prompt reads as its own renaming), and
    the renamed functions of a real program compile to the same counts: library functions keep
    the names passes know them by."""
    assert anonymize(anonymize(WALK)) == anonymize(WALK)
    irs = list(split_functions(load_ir(FIXTURES / "sample.c", toolchain), toolchain).values())
    lists = [OZ, parse_pass_list("-O2"), parse_pass_list("-instcombine -simplifycfg")]
    with InProcessCompiler(toolchain) as c:
        for ir in irs:
            assert anonymize(anonymize(ir)) == anonymize(ir)
            assert anonymize(ir) != ir  # every function has at least its own name
            tasks = [Task(text, p) for text in (ir, anonymize(ir)) for p in lists]
            counts = [r.count for r in c.run_tasks(tasks)]
            assert None not in counts and counts[: len(lists)] == counts[len(lists) :]
    assert any("@printf" in anonymize(ir) for ir in irs)


def test_a_data_set_with_names_anonymized_renames_prompts_and_answers_alike():
    rows = [
        dataclasses.replace(r, ir=r.ir.replace("add i32 %0, 1", "call i32 @g(i32 %0)"))
        for r in ROWS
    ]
    examples, report = make_dataset(rows, anonymize_names=True)
    plain, plain_report = make_dataset(rows)
    assert (report.names, plain_report.names) == (NAMES_ANONYMIZED, NAMES_KEPT)
    ir_of = {r.hash: r.ir for r in rows}
    for e, p in zip(examples, plain, strict=True):
        assert e.prompt == fmt.render_prompt(anonymize(ir_of[e.hash]))
        assert "@g0(i32 %0)" in e.prompt and "@g1(i32 %0)" in e.prompt  # the function, its callee
        answer, kept = fmt.parse_answer(e.answer), fmt.parse_answer(p.answer)
        assert (answer.passes, answer.before, answer.after) == (
            kept.passes,
            kept.before,
            kept.after,
        )
        assert (
            answer.ir
            == Renaming.of(ir_of[e.hash]).apply(kept.ir)
            == kept.ir.replace("@f(", "@g2(")  # a name the prompt lacks: numbered after it
        )
    context = {r.hash: fmt.OzContext(1, f"declare void @{r.function}()\n") for r in rows}
    with_oz, _ = make_dataset(rows, oz_context=context, anonymize_names=True)
    assert all(e.prompt.endswith("declare void @g0()\n</code>\n") for e in with_oz)
