"""The two backends agree: real libLLVM in-process vs real opt subprocesses."""

from __future__ import annotations

import random

import pytest

from passlm.errors import InvalidIR, UnknownPass
from passlm.llvm import ir as irmod
from passlm.llvm.backend import (
    INVALID_IR,
    InProcessCompiler,
    SubprocessCompiler,
    Task,
)
from passlm.llvm.passes import ACTION_SPACE, O_LEVELS, PassList, parse_pass_list


@pytest.fixture(scope="module")
def inproc(toolchain):
    with InProcessCompiler(toolchain) as c:
        yield c


@pytest.fixture(scope="module")
def subproc(toolchain):
    return SubprocessCompiler(toolchain)


def random_lists(n: int, seed: int) -> list[PassList]:
    rng = random.Random(seed)
    lists = []
    for _ in range(n):
        names = rng.sample(ACTION_SPACE, rng.randint(1, 6))
        if rng.random() < 0.3:
            names.insert(rng.randint(0, len(names)), rng.choice(O_LEVELS))
        lists.append(PassList(tuple(names)))
    return lists


def test_count_matches_text_count(inproc, sample_ir, sample_functions):
    assert inproc.count(sample_ir) == irmod.count_instructions(sample_ir)
    for module in sample_functions.values():
        assert inproc.count(module) == irmod.count_instructions(module)


def test_oz_identical_between_backends(inproc, subproc, sample_functions):
    oz = parse_pass_list("-Oz")
    for name, module in sample_functions.items():
        a = inproc.run(module, oz)
        b = subproc.run(module, oz)
        assert a.ok and b.ok, name
        assert a.count == b.count, name
        assert a.ir == b.ir, name
        assert a.count == irmod.count_instructions(a.ir)


@pytest.mark.slow
def test_backends_agree_on_random_pass_lists(inproc, subproc, sample_functions):
    # CompilerGym-style differential test: replay in-process results with opt.
    lists = random_lists(40, seed=7)
    modules = list(sample_functions.values())
    for i, passes in enumerate(lists):
        module = modules[i % len(modules)]
        a = inproc.run(module, passes)
        b = subproc.run(module, passes)
        assert a.ok == b.ok, (str(passes), a.error, b.error)
        if a.ok:
            assert (a.count, a.ir) == (b.count, b.ir), str(passes)


def test_result_ir_is_normalized_and_parses(inproc, sample_functions):
    res = inproc.run(sample_functions["sum_array"], "-mem2reg -instcombine -simplifycfg")
    assert res.ok and res.ir is not None
    assert irmod.normalize(res.ir) == res.ir
    assert inproc.count(res.ir) == res.count < inproc.count(sample_functions["sum_array"])


def test_run_many_and_want_ir(inproc, sample_functions):
    module = sample_functions["bubble_sort"]
    results = inproc.run_many(module, ["-Oz", "-mem2reg", "-O0"])
    assert [r.ir for r in results] == [None, None, None]
    assert (
        results[0].count < results[1].count < results[2].count
        or results[1].count <= results[2].count
    )
    assert all(r.ok for r in results)


def test_run_grid_gives_every_list_on_every_ir_in_order(inproc, sample_functions):
    irs = [sample_functions["bubble_sort"], sample_functions["sum_array"], "not IR\n"]
    lists = [parse_pass_list(p) for p in ("-Oz", "-mem2reg")]
    grid = inproc.run_grid(irs, lists)
    assert [len(row) for row in grid] == [2, 2, 2]
    for ir, row in zip(irs[:2], grid, strict=False):
        assert [r.count for r in row] == [inproc.run(ir, p, want_ir=False).count for p in lists]
    assert not any(r.ok for r in grid[2])  # invalid IR: failed results, nothing raised


def test_invalid_ir_is_an_error_for_both(inproc, subproc):
    bad = "define i32 @f() {\n ret i64 0\n}\n"
    for compiler in (inproc, subproc):
        with pytest.raises(InvalidIR):
            compiler.count(bad)
        res = compiler.run_tasks([Task(bad, parse_pass_list("-Oz"))])[0]
        assert res.error_kind == INVALID_IR and "\n" not in res.error


def test_unverifiable_ir_is_invalid(inproc):
    # parses, but uses a value before defining it in the same block
    bad = "define i32 @f(i32 %x) {\n %a = add i32 %b, 1\n %b = add i32 %x, 1\n ret i32 %a\n}\n"
    with pytest.raises(InvalidIR, match="verify"):
        inproc.count(bad)


def test_unknown_pass_is_rejected_before_compiling(inproc, sample_functions):
    with pytest.raises(UnknownPass, match="instcombin"):
        inproc.run(sample_functions["clamp"], "-mem2reg -instcombin")
