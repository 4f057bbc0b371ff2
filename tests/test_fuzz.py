"""Property-based fuzzing of everything that reads untrusted text.

Model output and user files can be anything. The IR normalizer and counter never raise; the
splitter, the verifier and the compilers reject broken IR with :class:`InvalidIR` only; the
pass-list parser with :class:`UnknownPass` / :class:`InvalidPassList` only; the deny-list
reader with :class:`InputError` only. Every message is one line. Mutations start from real IR
(lines dropped, duplicated, cut, tokens swapped) so the LLVM parser's error paths are reached.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from passlm.errors import InputError, InvalidIR, InvalidPassList, PasslmError, UnknownPass
from passlm.llvm import ir as irmod
from passlm.llvm.backend import INVALID_IR, InProcessCompiler, Task
from passlm.llvm.denylist import parse_denylist
from passlm.llvm.passes import ALL_ACTIONS, OZ, parse_pass_list
from passlm.llvm.pool import WorkerPool

TOKENS = ["i32", "i64", "ptr", "%1", "@f", "{", "}", "(", ")", ",", "=", "ret", "br", "label",
          "add", "store", "load", "define", "declare", "!0", "#0", '"', ";", "\n", "noundef"]  # fmt: skip


def _one_line(exc: BaseException) -> None:
    text = str(exc)
    assert text and "\n" not in text, repr(text)


@st.composite
def mutated_ir(draw, sources: list[str]) -> str:
    """A real function's IR with a few random edits."""
    lines = draw(st.sampled_from(sources)).splitlines()
    for _ in range(draw(st.integers(1, 4))):
        if not lines:
            break
        i = draw(st.integers(0, len(lines) - 1))
        edit = draw(st.sampled_from(["drop", "dup", "cut", "token", "swap"]))
        if edit == "drop":
            del lines[i]
        elif edit == "dup":
            lines.insert(i, lines[i])
        elif edit == "cut":
            lines[i] = lines[i][: draw(st.integers(0, len(lines[i])))]
        elif edit == "token":
            words = lines[i].split(" ")
            j = draw(st.integers(0, len(words)))
            words.insert(j, draw(st.sampled_from(TOKENS)))
            lines[i] = " ".join(words)
        else:
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def sources(sample_functions) -> list[str]:
    return list(sample_functions.values())


@pytest.fixture(scope="module")
def compiler(toolchain):
    with InProcessCompiler(toolchain) as c:
        yield c


FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))


@FUZZ
@given(data=st.data(), noise=st.text(max_size=200))
def test_normalize_and_count_never_raise_and_normalize_is_idempotent(sources, data, noise):
    text = data.draw(mutated_ir(sources)) + noise
    once = irmod.normalize(text)
    assert irmod.normalize(once) == once
    assert irmod.count_instructions(text) >= 0
    irmod.defined_functions(text)
    assert len(irmod.content_hash(text)) == 32


@FUZZ
@given(data=st.data())
def test_in_process_compiler_rejects_broken_ir_with_invalid_ir_only(sources, compiler, data):
    text = data.draw(mutated_ir(sources))
    result = compiler.run_tasks([Task(text, OZ)])[0]
    if not result.ok:
        # the input is to blame, or LLVM rejected what -Oz made of it; never a crash here
        assert result.error_kind in (INVALID_IR, "llvm"), result
        _one_line(Exception(result.error))


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_verify_and_split_reject_broken_ir_with_invalid_ir_only(sources, toolchain, data):
    text = data.draw(mutated_ir(sources))
    try:
        irmod.verify_ir(text, toolchain, name="fuzz.ll")
    except InvalidIR as exc:
        _one_line(exc)
        assert str(exc).startswith("fuzz.ll: ")
        return
    try:
        modules = irmod.split_functions(text, toolchain)
    except InvalidIR as exc:  # e.g. a module that verifies but defines no function
        _one_line(exc)
        return
    for module in modules.values():
        irmod.verify_ir(module, toolchain)  # what the splitter makes always parses


@pytest.fixture(scope="module")
def pool(toolchain):
    with WorkerPool(toolchain, workers=1) as p:
        yield p


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.text(max_size=300), min_size=1, max_size=8))
def test_worker_pool_survives_garbage(pool, texts):
    results = pool.run_tasks([Task(t, OZ) for t in texts])
    assert all(r.error_kind == INVALID_IR for r in results if not r.ok)
    assert pool.restarts == 0  # no garbage ever took a worker down


names = st.sampled_from(sorted(ALL_ACTIONS))


@settings(max_examples=500, deadline=None)
@given(
    st.one_of(
        st.text(max_size=80),
        st.lists(st.one_of(names, st.text(max_size=12)), max_size=6).map(" ".join),
        st.lists(names, min_size=1, max_size=6).map(lambda xs: ",".join("-" + x for x in xs)),
    )
)
def test_pass_list_parser_raises_only_its_errors(text):
    try:
        passes = parse_pass_list(text)
    except (UnknownPass, InvalidPassList) as exc:
        _one_line(exc)
        return
    assert len(passes) >= 1
    assert parse_pass_list(str(passes)) == passes  # what it prints, it reads back
    assert passes.pipeline()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.text(max_size=100),
        json_values.map(json.dumps),
        st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "passes": st.one_of(names, st.text(max_size=10)),
                    "match": st.sampled_from(["list", "pass", "other"]),
                    "kind": st.sampled_from(["miscompile", "crash", "nope"]),
                },
            ),
            max_size=3,
        ).map(lambda e: json.dumps({"entries": e})),
    )
)
def test_denylist_reader_raises_only_input_error(text):
    try:
        deny = parse_denylist(text, name="deny.json")
    except InputError as exc:
        _one_line(exc)
        assert str(exc).startswith("deny.json: ")
        return
    except PasslmError as exc:  # pragma: no cover - would be a bug
        raise AssertionError(f"wrong error type {type(exc).__name__}") from exc
    for entry in deny.entries:
        assert entry.match in ("list", "pass")
