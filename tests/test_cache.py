"""The compile cache: real compiles, each asked-for result the inner compiler's own."""

from __future__ import annotations

import pytest

from passlm.llvm.backend import INVALID_IR, InProcessCompiler, Task
from passlm.llvm.cache import CachedCompiler
from passlm.llvm.passes import OZ, parse_pass_list

from .test_guided import Counting

GVN = parse_pass_list("-mem2reg -gvn")


@pytest.fixture
def compiler(toolchain):
    with InProcessCompiler(toolchain) as c:
        yield c


def test_repeats_are_answered_from_memory_with_the_same_results(sample_functions, compiler):
    irs = list(sample_functions.values())[:3]
    inner = Counting(compiler)
    cached = CachedCompiler(inner)
    tasks = [Task(ir, p) for ir in irs for p in (OZ, GVN)]
    first = cached.run_tasks(tasks)
    assert [r.count for r in first] == [r.count for r in compiler.run_tasks(tasks)]
    assert inner.tasks == 6 and (cached.compiled, cached.reused) == (6, 0)
    again = cached.run_tasks([*reversed(tasks), tasks[0]])
    assert again == [*reversed(first), first[0]]
    assert inner.tasks == 6 and (cached.compiled, cached.reused) == (6, 7)
    assert len(cached) == 6


def test_one_compile_for_a_task_asked_twice_in_one_batch(sample_functions, compiler):
    ir = next(iter(sample_functions.values()))
    inner = Counting(compiler)
    cached = CachedCompiler(inner)
    a, b = cached.run_tasks([Task(ir, GVN), Task(ir, GVN, want_ir=True)])
    assert inner.tasks == 1 and a is b and b.ir is not None  # one compile, with the IR
    assert b.ir == compiler.run(ir, GVN).ir


def test_a_result_without_ir_does_not_answer_a_task_that_wants_it(sample_functions, compiler):
    ir = next(iter(sample_functions.values()))
    inner = Counting(compiler)
    cached = CachedCompiler(inner)
    (counted,) = cached.run_tasks([Task(ir, OZ)])
    assert counted.ir is None
    (with_ir,) = cached.run_tasks([Task(ir, OZ, want_ir=True)])
    assert inner.tasks == 2 and with_ir.ir is not None and with_ir.count == counted.count
    (again,) = cached.run_tasks([Task(ir, OZ)])  # the IR kept now serves both kinds
    assert inner.tasks == 2 and again is with_ir


def test_always_ir_keeps_the_ir_of_every_compile(sample_functions, compiler):
    ir = next(iter(sample_functions.values()))
    inner = Counting(compiler)
    cached = CachedCompiler(inner, always_ir=True)
    (first,) = cached.run_tasks([Task(ir, GVN)])
    (second,) = cached.run_tasks([Task(ir, GVN, want_ir=True)])
    assert inner.tasks == 1 and first.ir is not None and second is first


def test_failures_are_remembered_too(compiler):
    inner = Counting(compiler)
    cached = CachedCompiler(inner)
    (bad,) = cached.run_tasks([Task("this is not IR", OZ)])
    assert bad.error_kind == INVALID_IR
    (again,) = cached.run_tasks([Task("this is not IR", OZ, want_ir=True)])
    assert inner.tasks == 1 and again is bad  # no IR to give: the failure answers


def test_the_oldest_results_go_past_the_size_limit(sample_functions, compiler):
    irs = list(sample_functions.values())
    inner = Counting(compiler)
    cached = CachedCompiler(inner, max_chars=3 * 256)  # three results without IR
    cached.run_tasks([Task(ir, OZ) for ir in irs[:4]])
    assert len(cached) == 3
    cached.run_tasks([Task(irs[3], OZ), Task(irs[1], OZ)])  # still there
    assert inner.tasks == 4
    cached.run_tasks([Task(irs[0], OZ)])  # forgotten first
    assert inner.tasks == 5 and len(cached) == 3
    with pytest.raises(ValueError, match="max_chars"):
        CachedCompiler(compiler, max_chars=-1)
