"""benchmarks/anonymize_names.py: prompts whose global and type names are renumbered."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).parent.parent / "benchmarks" / "anonymize_names.py"


def test_anonymized_names_keep_library_functions_and_intrinsics():
    spec = importlib.util.spec_from_file_location("anonymize_names", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    ir = (
        "%struct.point = type { i32, i32 }\n"
        '%"class.std::vec" = type { ptr }\n'
        "@table = internal global [2 x i32] zeroinitializer\n"
        "declare ptr @malloc(i64)\n"
        "declare void @my_log(ptr)\n"
        "define i32 @area(ptr %0) {\n"
        "  %2 = getelementptr inbounds %struct.point, ptr %0, i32 0, i32 1\n"
        "  %3 = call ptr @malloc(i64 8)\n"
        "  call void @my_log(ptr @table)\n"
        "  call void @llvm.memset.p0.i64(ptr %3, i8 0, i64 8, i1 false)\n"
        "  %4 = load ptr, ptr %3\n"
        '  %5 = getelementptr %"class.std::vec", ptr %4, i32 0\n'
        "  ret i32 0\n"
        "}\n"
    )
    out = module.anonymize(ir, frozenset({"malloc"}))
    assert "%struct.T0 = type { i32, i32 }" in out and "%class.T1 = type { ptr }" in out
    assert "@g0 = internal global" in out and "@malloc" in out and "@llvm.memset.p0.i64" in out
    assert "declare void @g1(ptr)" in out and "define i32 @g2(ptr %0)" in out
    assert "call void @g1(ptr @g0)" in out and "%struct.point" not in out
    assert module.anonymize(out, frozenset({"malloc"})) == out  # numbering is by first use
