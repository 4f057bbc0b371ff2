"""benchmarks/anonymize_names.py: a prompts file anonymized, and the library names regenerated."""

from __future__ import annotations

import pytest

from passlm.data.format import render_prompt
from passlm.errors import InputError
from passlm.llvm.names import LIBRARY_FILE, anonymize

from .conftest import benchmark_module

IR = "define i32 @area(ptr %0) {\n%2 = call ptr @malloc(i64 8)\ncall void @trace(ptr %2)\nret i32 0\n}\n"


@pytest.fixture(scope="module")
def script():
    return benchmark_module("anonymize_names")


def test_prompts_are_anonymized_as_passlm_does_and_missing_ones_stay_missing(script):
    rows = [{"hash": "a", "prompt": render_prompt(IR), "oz": 3}, {"hash": "b", "prompt": None}]
    out = script.anonymize_prompts(rows)
    assert out == [{"hash": "a", "prompt": render_prompt(anonymize(IR)), "oz": 3}, rows[1]]
    assert "@g0(ptr %0)" in out[0]["prompt"] and "@malloc" in out[0]["prompt"]
    assert "@g1(ptr %2)" in out[0]["prompt"]


def test_library_names_come_from_the_def_file(script, tmp_path):
    def_file = tmp_path / "TLI.def"
    def_file.write_text(
        "/// void *malloc(size_t);\nTLI_DEFINE_ENUM_INTERNAL(malloc)\n"
        'TLI_DEFINE_STRING_INTERNAL("malloc")\nTLI_DEFINE_STRING_INTERNAL("abs")\n'
    )
    text = script.library_list(def_file)
    assert [n for n in text.splitlines() if not n.startswith("#")] == ["abs", "malloc"]
    if script.LIBRARY_DEF.is_file():  # llvm-19-dev installed: the packaged list is its list
        assert script.library_list(script.LIBRARY_DEF) == LIBRARY_FILE.read_text()
    empty = tmp_path / "empty.def"
    empty.write_text("nothing here\n")
    with pytest.raises(InputError, match="no library function names"):
        script.library_list(empty)
