"""The worker pool: same results as in-process, and faults stay contained (real LLVM)."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from passlm.errors import InvalidIR
from passlm.llvm import ir as irmod
from passlm.llvm.backend import CRASH, INVALID_IR, TIMEOUT, InProcessCompiler, Task
from passlm.llvm.passes import parse_pass_list
from passlm.llvm.pool import WorkerPool

from .test_backend import random_lists

O3 = parse_pass_list("-O3")


@pytest.fixture(scope="module")
def slow_ir(toolchain, tmp_path_factory) -> str:
    """A real function that takes -O3 a few seconds: hundreds of loops to vectorize."""
    body = "\n".join(
        f"  for (int i = 0; i < n; i++) {{ a[i] = a[i] * {k + 3} + b[(i + {k}) % n]; s += a[i] ^ {k}; }}"
        for k in range(900)
    )
    src = tmp_path_factory.mktemp("slow") / "slow.c"
    src.write_text(f"int big(int *a, int *b, int n) {{\n  int s = 0;\n{body}\n  return s;\n}}\n")
    return irmod.normalize(irmod.compile_source(src, toolchain))


@pytest.fixture(scope="module")
def pool(toolchain):
    with WorkerPool(toolchain, workers=2, timeout=60) as p:
        yield p


def test_pool_matches_in_process(pool, toolchain, sample_functions):
    tasks = [
        Task(module, passes, want_ir=(i % 3 == 0))
        for i, (module, passes) in enumerate(
            (m, p) for m in sample_functions.values() for p in random_lists(6, seed=len(m))
        )
    ]
    with InProcessCompiler(toolchain) as reference:
        expected = reference.run_tasks(tasks)
    got = pool.run_tasks(tasks)
    assert [(r.count, r.ir, r.error) for r in got] == [(r.count, r.ir, r.error) for r in expected]


def test_pool_reports_invalid_ir(pool, sample_functions):
    bad = "define i32 @f() {\n ret i64 0\n}\n"
    results = pool.run_tasks([Task(bad, O3), Task(sample_functions["clamp"], O3)])
    assert results[0].error_kind == INVALID_IR
    assert results[1].ok
    with pytest.raises(InvalidIR):
        pool.count(bad)


def _wait_until_running(pool: WorkerPool, index: int, limit: float = 60.0) -> int:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        for pid, current in pool.current_tasks().items():
            if current == index:
                return pid
        time.sleep(0.01)
    raise AssertionError(f"task {index} never started")


@pytest.mark.slow
def test_worker_killed_mid_task_is_reported_and_batch_completes(
    toolchain, slow_ir, sample_functions
):
    fast = [Task(m, O3) for m in sample_functions.values()] * 3
    tasks = [Task(slow_ir, O3), *fast]
    with WorkerPool(toolchain, workers=2, timeout=120, chunk_size=1) as pool:
        results: list = []
        runner = threading.Thread(target=lambda: results.extend(pool.run_tasks(tasks)))
        runner.start()
        pid = _wait_until_running(pool, 0)
        time.sleep(0.2)  # well inside the multi-second -O3 compile
        os.kill(pid, signal.SIGKILL)
        runner.join(120)
        assert not runner.is_alive()
        assert results[0].error_kind == CRASH
        assert "SIGKILL" in results[0].error
        assert all(r.ok for r in results[1:])
        assert [r.count for r in results[1:]] == [
            r.count for r in InProcessCompiler(toolchain).run_tasks(fast)
        ]
        assert pool.restarts == 1
        assert pool.run(sample_functions["clamp"], O3).ok  # the replacement worker works


@pytest.mark.slow
def test_task_over_timeout_is_reported_and_batch_completes(toolchain, slow_ir, sample_functions):
    fast = [Task(m, O3) for m in sample_functions.values()]
    tasks = [fast[0], Task(slow_ir, O3), *fast[1:]]
    with WorkerPool(toolchain, workers=1, timeout=0.5, chunk_size=16) as pool:
        start = time.monotonic()
        results = pool.run_tasks(tasks)
        elapsed = time.monotonic() - start
    assert results[1].error_kind == TIMEOUT
    assert [r.ok for r in results] == [True, False] + [True] * (len(tasks) - 2)
    assert elapsed < 30  # the slow compile was cut off, not waited for


def test_idle_worker_killed_between_batches_is_replaced(toolchain, sample_functions):
    with WorkerPool(toolchain, workers=1) as pool:
        pool.start()
        os.kill(pool.pids[0], signal.SIGKILL)
        time.sleep(0.2)
        assert pool.run(sample_functions["clamp"], O3).ok
        assert pool.restarts == 1


def _address_space_mb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) // 1024
    raise AssertionError("no VmSize")


@pytest.mark.slow
def test_out_of_memory_in_one_worker_fails_that_compile_only(toolchain, slow_ir, sample_functions):
    with WorkerPool(toolchain, workers=1) as probe:
        probe.start()
        baseline = _address_space_mb(probe.pids[0])
    fast = [Task(m, O3) for m in sample_functions.values()]
    # room for the small compiles, none for vectorizing 900 loops
    with WorkerPool(toolchain, workers=1, memory_mb=baseline + 12, timeout=120) as pool:
        results = pool.run_tasks([fast[0], Task(slow_ir, O3), *fast[1:]])
        assert results[1].error_kind == CRASH and "SIGABRT" in results[1].error
        assert [r.ok for r in results] == [True, False] + [True] * (len(fast) - 1)
        assert pool.restarts == 1
    with InProcessCompiler(toolchain) as reference:
        expected = [r.count for r in reference.run_tasks(fast)]
    assert [r.count for r in results[:1] + results[2:]] == expected


def test_memory_cap_is_checked(toolchain):
    with pytest.raises(Exception, match="memory cap"):
        WorkerPool(toolchain, memory_mb=-1)
