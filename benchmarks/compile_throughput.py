"""Compile throughput: subprocess ``opt`` vs the in-process worker pool, side by side.

For the same real functions (default: the lz4 C library from its PyPI source distribution,
BSD-2-Clause) and the same seeded random pass lists, prints trials/second of one ``opt``
process per trial, of the in-process compiler, and of the worker pool on 1 and on all cores,
and the ratio per core. Also checks that ``-Oz`` (and every random list) gives identical
counts and IR in both backends.

    .venv/bin/python benchmarks/compile_throughput.py [--source DIR] [--functions 60]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tarfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from passlm.llvm import ir as irmod
from passlm.llvm.backend import InProcessCompiler, SubprocessCompiler, Task
from passlm.llvm.passes import ACTION_SPACE, O_LEVELS, PassList, parse_pass_list
from passlm.llvm.pool import WorkerPool
from passlm.llvm.toolchain import default_toolchain
from passlm.process import run_command

SDIST = "lz4==4.4.5"
SDIST_SUBDIR = "lz4-4.4.5/lz4libs"  # the C library itself; the rest is Python bindings
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "passlm" / "bench"
console = Console(width=120)


def fetch_sdist(spec: str) -> Path:
    """Download and unpack a PyPI source distribution (cached)."""
    target = CACHE / spec.replace("==", "-")
    if not target.exists():
        download = CACHE / "download"
        download.mkdir(parents=True, exist_ok=True)
        run_command(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "-q",
                "--no-binary",
                ":all:",
                "--no-deps",
                "-d",
                str(download),
                spec,
            ],
            timeout=600,
        )
        name = spec.split("==")[0]
        archive = next(p for p in download.iterdir() if p.name.startswith(name))
        with tarfile.open(archive) as tar:
            tar.extractall(target, filter="data")
    return target


def load_functions(source: Path, limit: int, max_count: int) -> list[tuple[str, str]]:
    """Real functions under ``max_count`` instructions, in a deterministic order."""
    tc = default_toolchain()
    found = []
    for path in sorted(source.rglob("*.c")):
        try:
            modules = irmod.split_functions(irmod.compile_source(path, tc), tc)
        except Exception as exc:  # a benchmark input that does not build is skipped, noted
            console.print(f"[yellow]skipped {path.name}: {exc}")
            continue
        for name, text in modules.items():
            if irmod.count_instructions(text) < max_count:
                found.append((f"{path.name}:{name}", text))
    random.Random(0).shuffle(found)
    return sorted(found[:limit])


def random_lists(n: int, rng: random.Random) -> list[PassList]:
    """Random lists of 1..8 passes, an O-level in some of them."""
    out = []
    for _ in range(n):
        names = [rng.choice(ACTION_SPACE) for _ in range(rng.randint(1, 8))]
        if rng.random() < 0.25:
            names.insert(rng.randint(0, len(names)), rng.choice(O_LEVELS))
        out.append(PassList(tuple(names)))
    return out


def timed(compiler, tasks: list[Task], repeat: int = 1) -> tuple[float, list]:
    best, results = float("inf"), []
    for _ in range(repeat):
        start = time.perf_counter()
        results = compiler.run_tasks(tasks)
        best = min(best, time.perf_counter() - start)
    return best, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, help="directory of C files (default: lz4 sdist)")
    parser.add_argument("--functions", type=int, default=60)
    parser.add_argument("--lists", type=int, default=20, help="random pass lists per function")
    parser.add_argument("--max-count", type=int, default=200)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()

    tc = default_toolchain()
    source = args.source or fetch_sdist(SDIST) / SDIST_SUBDIR
    functions = load_functions(source, args.functions, args.max_count)
    rng = random.Random(1)
    tasks = [Task(text, p) for _, text in functions for p in random_lists(args.lists, rng)]
    sizes = [irmod.count_instructions(t) for _, t in functions]
    console.print(
        f"{len(functions)} functions from {source.name} (instructions: min {min(sizes)}, "
        f"mean {sum(sizes) / len(sizes):.0f}, max {max(sizes)}), {len(tasks)} trials, "
        f"LLVM {tc.version}, {os.cpu_count()} cores"
    )

    sub = SubprocessCompiler(tc)
    t_sub, r_sub = timed(sub, tasks)
    with InProcessCompiler(tc) as inproc:
        inproc.run_tasks(tasks[:1])  # load libLLVM before timing
        t_in, r_in = timed(inproc, tasks, repeat=3)
    with WorkerPool(tc, workers=1) as pool1:
        pool1.start()
        t_p1, r_p1 = timed(pool1, tasks, repeat=3)
    with WorkerPool(tc, workers=args.workers) as pooln:
        pooln.start()
        t_pn, r_pn = timed(pooln, tasks, repeat=3)

    n = len(tasks)
    table = Table(title="compile throughput (same functions, same pass lists)")
    for col in (
        "backend",
        "processes",
        "seconds",
        "trials/s",
        "trials/s per core",
        "vs opt per core",
    ):
        table.add_column(col, justify="right" if col != "backend" else "left")
    base = n / t_sub
    for label, procs, t in (
        ("opt subprocess", 1, t_sub),
        ("in-process (no isolation)", 1, t_in),
        ("worker pool", 1, t_p1),
        ("worker pool", args.workers, t_pn),
    ):
        per_core = n / t / procs
        table.add_row(
            label,
            str(procs),
            f"{t:.2f}",
            f"{n / t:,.0f}",
            f"{per_core:,.0f}",
            f"{per_core / base:.1f}x",
        )
    console.print(table)

    def key(r):
        return (r.count, r.error_kind)

    agree = sum(key(a) == key(b) for a, b in zip(r_sub, r_in, strict=True))
    same_pool = all(key(a) == key(b) for a, b in zip(r_in, [*r_p1], strict=True)) and all(
        key(a) == key(b) for a, b in zip(r_in, r_pn, strict=True)
    )
    errors = sum(not r.ok for r in r_in)
    console.print(
        f"random lists: opt and in-process agree on {agree}/{n} trials "
        f"({errors} failed in both or either); pool == in-process: {same_pool}"
    )

    oz = parse_pass_list("-Oz")
    oz_tasks = [Task(text, oz, want_ir=True) for _, text in functions]
    oz_sub = sub.run_tasks(oz_tasks)
    with WorkerPool(tc, workers=args.workers) as pool:
        oz_pool = pool.run_tasks(oz_tasks)
    same_count = sum(a.count == b.count for a, b in zip(oz_sub, oz_pool, strict=True))
    same_ir = sum(a.ir == b.ir for a, b in zip(oz_sub, oz_pool, strict=True))
    console.print(
        f"-Oz: identical counts on {same_count}/{len(functions)} functions "
        f"({100 * same_count / len(functions):.0f}%), identical IR on {same_ir}"
    )


if __name__ == "__main__":
    from passlm.cli import report_errors

    report_errors(main)
