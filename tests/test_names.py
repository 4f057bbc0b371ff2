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


COMDAT = """\
$_Z6squareIiET_S0_ = comdat any
$pick = comdat any
@.str = private constant [21 x i8] c"mail me@counter; \\22@x\\22\\00"
@counter = global i32 0, comdat($pick) ; "@counter in a comment
define linkonce_odr i32 @_Z6squareIiET_S0_(i32 %0) comdat {
  %2 = call i32 (ptr, ...) @printf(ptr @.str, ptr @counter) #0
  ret i32 %2
}
declare i32 @printf(ptr, ...)
attributes #0 = { "frame-pointer"="none" "@x"="1" }
"""


def test_comdats_follow_their_globals_and_strings_and_comments_keep_their_text():
    """A comdat takes its global's new name (else the renamed IR does not parse); an @ inside a
    string constant, an attribute or a comment is text, not a name (renaming it would change
    the string's length, and the IR would not parse either)."""
    assert (
        anonymize(COMDAT)
        == """\
$g2 = comdat any
$pick = comdat any
@g0 = private constant [21 x i8] c"mail me@counter; \\22@x\\22\\00"
@g1 = global i32 0, comdat($pick) ; "@counter in a comment
define linkonce_odr i32 @g2(i32 %0) comdat {
  %2 = call i32 (ptr, ...) @printf(ptr @g0, ptr @g1) #0
  ret i32 %2
}
declare i32 @printf(ptr, ...)
attributes #0 = { "frame-pointer"="none" "@x"="1" }
"""
    )
    assert anonymize(anonymize(COMDAT)) == anonymize(COMDAT)


def test_renamed_cxx_functions_with_comdats_compile_to_the_same_counts(toolchain):
    """Real clang++ output: inline and template functions carry comdats named after them."""
    irs = split_functions(load_ir(FIXTURES / "sample.cpp", toolchain), toolchain).values()
    with_comdat = [ir for ir in irs if "comdat" in ir]
    assert len(with_comdat) >= 5
    with InProcessCompiler(toolchain) as c:
        tasks = [Task(text, OZ) for ir in with_comdat for text in (ir, anonymize(ir))]
        counts = [r.count for r in c.run_tasks(tasks)]
    assert None not in counts and counts[0::2] == counts[1::2]
    assert not any("$_Z" in anonymize(ir) for ir in with_comdat)  # no mangled name leaks


def test_the_careful_and_the_fast_renaming_agree(toolchain):
    """Text with a comment or a sigil inside quotes goes through the tokenizer that skips them;
    everything else through two plain regular expressions: the two agree where both apply."""
    irs = [
        *split_functions(load_ir(FIXTURES / "sample.c", toolchain), toolchain).values(),
        *split_functions(load_ir(FIXTURES / "sample.cpp", toolchain), toolchain).values(),
        WALK,
    ]
    for ir in irs:
        assert anonymize(ir + "; @comment\n") == anonymize(ir) + "; @comment\n"


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
