"""Latency of ``predict`` (one greedy, constrained pass list) against one -Oz compile.

The paper's model was two orders of magnitude slower than the compiler; the target here is
under 10x. On a seeded sample of held-out functions, times per function, side by side in one
run on this machine: the model's greedy pass list through passlm's lean CPU forward pass
(``passlm.model.fast``, what ``predict`` uses on a CPU; with, as there, the previous
function's answer as the draft, and without; and with the margin a calibrated model's
``predict`` checks: the answer ``-Oz`` scored after the greedy list) and through
``transformers`` (batch 1 and batched), the prompt's forward pass alone (the floor for any
decoding loop), the -Oz compile in process (parse, clone, run, count), and the same through
``opt-19``; then priority sampling of 10 lists (``sample-10``'s proposals) both ways.
``predict`` (with and without the draft, and with the margin) and the in-process -Oz compile
are timed function by function in turn (the model and LLVM alternating in one process), so a
change in the machine's speed falls on them alike; the -Oz compiles are also timed one after
another, where LLVM stays in the CPU's caches (the lower bound of a compile, and the stricter
ratio). Every row reads the prompt the model reads (``model_prompts``): for a model trained with
the ``-Oz`` output in its prompt, that output, whose compile (``-Oz`` with its IR kept) is then
timed in turn too, and ``predict`` with it is the sum of the two (``passlm optimize`` compiles
``-Oz`` for every function anyway, as its baseline); a model trained on plain prompts too reads
them in ``predict``, and its context only in ``sample-10``. For a model that reads names anonymized,
the renaming of each prompt is timed in turn too, and ``predict`` with it is the sum.

    .venv/bin/python benchmarks/latency.py [--tuned data/tuned.parquet] [--sample 100]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
from pathlib import Path

import pyarrow.parquet as pq
import torch
from rich.console import Console
from rich.table import Table

from passlm.data.format import OzContext, render_prompt
from passlm.llvm.backend import InProcessCompiler, SubprocessCompiler
from passlm.llvm.names import NAMES_ANONYMIZED
from passlm.llvm.toolchain import default_toolchain
from passlm.model import default_model_dir, load
from passlm.model.constrained import PassListConstraint, priority_sample
from passlm.model.fast import bf16_matmuls, fast_model
from passlm.model.generate import PASSES, generate, prompt_ids
from passlm.optimize.prompts import (
    model_prompts,
    model_renaming,
    names_kind,
    prompt_kind,
    reads_plain,
)
from passlm.optimize.strategies import greedy_margin

console = Console(width=110)


def timed(fn, items, reset=None) -> list[float]:
    """Seconds per item of ``fn(item)``, ``reset()`` (untimed) before each."""
    out = []
    for item in items:
        if reset is not None:
            reset()
        start = time.perf_counter()
        fn(item)
        out.append(time.perf_counter() - start)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tuned", type=Path, default=Path("data/tuned.parquet"))
    parser.add_argument("--split", default="heldout")
    parser.add_argument("--sample", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--sample-functions", type=int, default=30, help="for sample-10")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = [r for r in pq.read_table(args.tuned).to_pylist() if r["split"] == args.split]
    rows = random.Random(args.seed).sample(rows, min(args.sample, len(rows)))
    irs = [r["ir"] for r in rows]
    model_dir = args.model or default_model_dir()
    model, tok = load(model_dir)
    constraint = PassListConstraint(tok)
    tc = default_toolchain()
    sizes = [r["o0_count"] for r in rows]
    inproc = InProcessCompiler(tc, cache_size=1)
    # the prompts the model reads: with the -Oz output for a model trained on it (the plain
    # prompt where that one leaves no room to answer), as every strategy builds them; predict's
    # are plain for a model that reads plain prompts too, sample-10's carry its context
    prompt_of = dict(zip(irs, model_prompts(model, irs, inproc, tok, compiles=False), strict=True))
    sample_of = dict(zip(irs, model_prompts(model, irs, inproc, tok), strict=True))
    irs = [ir for ir in irs if prompt_of[ir] is not None and sample_of[ir] is not None]
    tokens = [len(prompt_ids(tok, prompt_of[ir])) for ir in irs]
    console.print(
        f"{len(irs)} {args.split} functions (instructions median {statistics.median(sizes):.0f}, "
        f"max {max(sizes)}); model {model_dir}, prompt {prompt_kind(model)} (median "
        f"{statistics.median(tokens):.0f} tokens); {args.threads} torch threads; LLVM {tc.version}"
    )

    def predict(ir: str) -> None:
        generate(model, tok, [prompt_of[ir]], until=PASSES, constraint=constraint)

    def predict_sure(ir: str) -> None:  # the greedy list and its margin over -Oz's answer
        greedy_margin(model, tok, ir, constraint=constraint, prompt=prompt_of[ir])

    def predict_alone(ir: str) -> None:  # no draft from the function before
        fast.last_answer = []
        predict(ir)

    def prompt_pass(ir: str) -> None:
        fast.prefill([*prompt_ids(tok, prompt_of[ir]), constraint.open_id], constraint.first)

    def sample10(ir: str) -> None:
        priority_sample(model, tok, sample_of[ir], 10, constraint=constraint)

    def oz_context(ir: str) -> None:  # what a model that reads -Oz's output needs first
        result = inproc.run(ir, "-Oz", want_ir=True)
        render_prompt(ir, OzContext(result.count, result.ir), prompt_kind(model))

    def both_ways(fn, items) -> tuple[list[float], list[float]]:
        model.passlm_fast = True
        fn(items[0])  # warm-up: first-call allocations
        fast_times = timed(fn, items, cold)
        model.passlm_fast = False
        fn(items[0])
        slow_times = timed(fn, items)
        model.passlm_fast = True
        return fast_times, slow_times

    fast = fast_model(model)
    if fast is None:
        raise SystemExit(f"{model_dir}: the fast path does not apply to this model")

    def cold() -> None:  # the fast path reuses a prompt it holds: each call pays its own, as
        fast.truncate(0)  # in use, where every function's prompt is new

    console.print(
        f"fast path: matmuls in {fast.dtype} (bf16 matmuls on this CPU: {bf16_matmuls()})"
    )

    def oz_compile(ir: str) -> None:
        inproc.run(ir, "-Oz", want_ir=False)

    def renaming(ir: str) -> None:  # what a model that reads names anonymized needs first
        model_renaming(model, ir)(ir)

    for ir in irs[:5]:  # warm-up: allocations, the constraint's row sets, the CPU's clocks
        predict(ir)
        oz_compile(ir)
    # predict with and without the draft and the -Oz compile interleaved, function by
    # function, so drift in the machine's speed falls on all three alike (the draft is the
    # function before's answer either way)
    one, sure, alone, oz, context, renamed = [], [], [], [], [], []
    reads_oz = not reads_plain(model)  # predict's prompt carries the -Oz context
    reads_renamed = names_kind(model) == NAMES_ANONYMIZED
    for ir in irs:
        one += timed(predict, [ir], cold)
        sure += timed(predict_sure, [ir], cold)
        alone += timed(predict_alone, [ir], cold)
        oz += timed(oz_compile, [ir])
        if reads_oz:
            context += timed(oz_context, [ir])
        if reads_renamed:
            renamed += timed(renaming, [ir])
    # the same compiles one after another: LLVM's code and data stay in the caches, which the
    # model's forward pass otherwise evicts between two compiles
    oz_hot = timed(oz_compile, irs)
    inproc.close()
    model.passlm_fast = False
    predict(irs[0])
    one_hf = timed(predict, irs)
    start = time.perf_counter()
    generate(model, tok, [prompt_of[ir] for ir in irs], until=PASSES, constraint=constraint)
    batched = (time.perf_counter() - start) / len(irs)
    model.passlm_fast = True
    prompt_pass(irs[0])
    forward = timed(prompt_pass, irs, cold)
    few = irs[: args.sample_functions]
    s10, s10_hf = both_ways(sample10, few)
    prompts = [prompt_of[ir] for ir in irs]
    lists = [g.text for g in generate(model, tok, prompts, until=PASSES, constraint=constraint)]
    model.passlm_fast = False
    same = sum(
        g.text == t
        for g, t in zip(
            generate(model, tok, prompts, until=PASSES, constraint=constraint), lists, strict=False
        )
    )
    model.passlm_fast = True
    opt = timed(lambda ir: SubprocessCompiler(tc).run(ir, "-Oz", want_ir=False), irs)

    table = Table(title="milliseconds per function")
    for col in ("what", "median", "mean", "x -Oz in turn", "x -Oz in a row"):
        table.add_column(col, justify="left" if col == "what" else "right")
    oz_median, hot_median = statistics.median(oz), statistics.median(oz_hot)

    def first(total: str, alone: str, times: list[float]) -> list[tuple[str, list[float]]]:
        """predict with what its prompt needs first, and that alone (none where it needs none)."""
        if not times:
            return []
        return [(total, [a + b for a, b in zip(one, times, strict=True)]), (alone, times)]

    for name, values in (
        ("predict (passlm fast path)", one),
        *first(
            "predict and its -Oz context compiled first, in turn (fast path)",
            "the -Oz context alone (-Oz with its IR, the prompt), in turn",
            context,
        ),
        *first(
            "predict and its prompt's renaming, in turn (fast path)",
            "the renaming alone (names anonymized), in turn",
            renamed,
        ),
        ("predict with a margin over -Oz (fast path)", sure),
        ("predict (fast path), no draft from the function before", alone),
        ("predict (transformers), batch 1", one_hf),
        ("predict (transformers), batched (8)", [batched]),
        ("prompt forward pass alone (fast path)", forward),
        ("-Oz, in process, timed in turn with predict", oz),
        (f"-Oz, in process, {len(irs)} in a row", oz_hot),
        ("-Oz, opt-19 subprocess", opt),
        (f"sample-10 lists (fast path), {len(few)} fns", s10),
        (f"sample-10 lists (transformers), {len(few)} fns", s10_hf),
    ):
        med = statistics.median(values)
        table.add_row(
            name, f"{1000 * med:.1f}", f"{1000 * statistics.mean(values):.1f}",
            f"{med / oz_median:.1f}x", f"{med / hot_median:.1f}x",
        )  # fmt: skip
    console.print(table)
    console.print(f"greedy lists the same both ways on {same} of {len(irs)} functions")


if __name__ == "__main__":
    from passlm.cli import report_errors

    report_errors(main)
