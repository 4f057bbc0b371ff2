"""IR text handling on real clang/opt output."""

from __future__ import annotations

import pytest

from passlm.errors import InputError, InvalidIR, SourceCompileError
from passlm.llvm import ir as irmod
from passlm.process import run_command

from .conftest import FIXTURES


def opt_verifies(text: str, toolchain) -> bool:
    out = run_command(
        [toolchain.opt, "-passes=verify", "-disable-output", "-"], input=text.encode(), check=False
    )
    return out.returncode == 0


def test_compile_c_has_no_optnone(sample_ir):
    assert "define dso_local i32 @sum_array" in sample_ir
    assert "optnone" not in sample_ir


def test_compile_cpp(toolchain):
    text = irmod.compile_source(FIXTURES / "sample.cpp", toolchain)
    names = irmod.defined_functions(text)
    assert any("accumulate" in n for n in names)
    assert len(names) >= 3  # templates instantiate more functions


def test_normalize_drops_noise_and_keeps_meaning(sample_ir, toolchain):
    norm = irmod.normalize(sample_ir)
    for gone in (
        "; ModuleID",
        "source_filename",
        "attributes #",
        " #0",
        "!llvm.ident",
        "; preds",
        "\n  ",
    ):
        assert gone not in norm
    # strings keep their characters, including ';' and '#'
    assert 'c"hello # world; not a comment\\00"' in norm
    assert "llvm.loop.mustprogress" in norm  # non-debug metadata survives
    assert "\n\n" not in norm
    assert irmod.normalize(norm) == norm
    assert opt_verifies(norm, toolchain)
    assert irmod.count_instructions(norm) == irmod.count_instructions(sample_ir)


def test_normalize_strips_debug_info(toolchain, tmp_path):
    src = tmp_path / "dbg.c"
    src.write_text("int f(int x) { int y = x * 2; return y + 1; }\n")
    text = irmod.compile_source(src, toolchain, flags=("-g",))
    assert "!dbg" in text and "DICompileUnit" in text
    norm = irmod.normalize(text)
    assert "dbg" not in norm and "DI" not in norm.replace("DIV", "")
    assert opt_verifies(norm, toolchain)
    plain = irmod.normalize(irmod.compile_source(src, toolchain))
    assert irmod.count_instructions(norm) == irmod.count_instructions(plain)


def test_split_round_trip(sample_ir, sample_functions, toolchain):
    names = irmod.defined_functions(sample_ir)
    assert list(sample_functions) == names
    assert len(names) == 8
    for name, module in sample_functions.items():
        assert irmod.defined_functions(module) == [name]
        assert irmod.normalize(module) == module
        assert opt_verifies(module, toolchain), name
    # every instruction of the module lives in exactly one split module
    assert sum(
        irmod.count_instructions(m) for m in sample_functions.values()
    ) == irmod.count_instructions(sample_ir)


def test_content_hash_ignores_formatting(sample_functions):
    module = sample_functions["classify"]
    noisy = "; a comment\n" + module.replace("\n", "   \n").replace("%4 =", "  %4  =")
    assert irmod.content_hash(noisy) == irmod.content_hash(module)
    assert irmod.content_hash(module) != irmod.content_hash(sample_functions["clamp"])
    assert len(irmod.content_hash(module)) == 32


def test_count_handles_switch_and_labels(sample_functions):
    text = sample_functions["classify"]
    assert "switch" in text
    # 4 setup + switch + 4 cases * 2 + default 4 + exit 2
    assert irmod.count_instructions(text) == 19


def test_load_bitcode(tmp_path, sample_ir, toolchain):
    ll = tmp_path / "m.ll"
    ll.write_text(sample_ir)
    bc = tmp_path / "m.bc"
    run_command([toolchain.llvm_as, str(ll), "-o", str(bc)])
    text = irmod.load_ir(bc, toolchain)
    assert irmod.count_instructions(text) == irmod.count_instructions(sample_ir)


@pytest.mark.parametrize(
    ("name", "content", "error", "message"),
    [
        ("missing.ll", None, InputError, "no such file"),
        ("empty.ll", "", InputError, "empty file"),
        ("bad.bc", "not bitcode", InvalidIR, "not valid LLVM bitcode"),
        ("bad.ll", "define i32 @f() {\n ret i64 0\n}\n", InvalidIR, "line 2:6"),
        (
            "unverified.ll",
            "define i32 @f(i32 %x) {\n %a = add i32 %b, 1\n %b = add i32 %x, 1\n ret i32 %a\n}\n",
            InvalidIR,
            "does not verify",
        ),
        ("notes.txt", "hello", InputError, "unsupported input"),
        (
            "broken.c",
            "int main(void) { return undefined_variable + ; }\n",
            SourceCompileError,
            "does not compile",
        ),
    ],
)
def test_bad_inputs_give_one_line_errors(tmp_path, toolchain, name, content, error, message):
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(error) as info:
        irmod.load_ir(path, toolchain)
    text = str(info.value)
    assert message in text and str(path) in text
    assert "\n" not in text


def test_split_rejects_module_without_functions(toolchain):
    with pytest.raises(InvalidIR, match="defines no functions"):
        irmod.split_functions("@g = global i32 0\n", toolchain)


def test_normalize_comment_after_a_string_on_one_line():
    line = '@s = constant [2 x i8] c"a\\00" ; trailing "quoted" comment with ; and #1\n'
    assert irmod.normalize(line) == '@s = constant [2 x i8] c"a\\00"\n'
    text = 'call void @f(ptr @"q;x") #3 ; c "x" ; y\n'
    assert irmod.normalize(text) == 'call void @f(ptr @"q;x")\n'
