"""Full answers for a model's own greedy lists: the optimized IR back without moving the lists.

A model fine-tuned on pass-list-only answers forgets how to write the optimized IR, and
teaching it again with the data set's answers (or with their lists masked, ``train
--ir-only``) moves the layers its lists are read from: measured on the test split, the greedy
list fell from +0.24% to −0.78% over -Oz. Here every function is answered with the list the
model itself picks greedily (the ``predict`` strategy's), compiled for real: the counts and the
optimized IR are the compiler's for that list. Training on these answers teaches the IR for the
very lists the model writes, while the pass-list tokens ask for what the model already answers,
so their loss holds the greedy choice in place instead of leaving it free to drift. Where the
model's list loses to -Oz on the function, the answer is -Oz (its count and IR): the one place
the model's choice is known to be wrong is corrected, and those answers are the negative
examples a data set of winning lists lacks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from passlm.data.dataset import Example
from passlm.data.format import parse_prompt, render_answer
from passlm.llvm.backend import Compiler, Result, Task
from passlm.llvm.passes import OZ


@dataclass(frozen=True)
class DistillSummary:
    """What the model's greedy lists did on the functions answered."""

    functions: int
    too_long: int  # prompt left no room for an answer: no example
    failed: int  # the list did not compile: no example
    oz: int  # the model answered -Oz
    corrected: int  # its list lost to -Oz: answered with -Oz instead
    better: int  # its list beats -Oz on the function
    worse: int  # its list loses to -Oz
    saved: int  # instructions its lists save against -Oz, over the functions answered
    lost: int  # instructions they lose


def _usable(r: Result) -> bool:
    """The compile gave a count and IR to answer with."""
    return r.ok and r.count is not None and bool(r.ir)


def distilled_examples(
    model,
    tokenizer,
    examples: Sequence[Example],
    compiler: Compiler,
    *,
    denylist=None,
    batch_size: int = 8,
    irs: Sequence[str] | None = None,
) -> tuple[list[Example], DistillSummary]:
    """One full-answer example per example whose prompt fits the model: its greedy list, the
    real count after it, and the optimized IR the compiler wrote for it, or -Oz's where the
    list loses to -Oz (``tokens`` is 0: the caller counts them). Examples keep their hash,
    split and reference counts; ``saved`` and ``lost`` are the model's lists' own.

    ``irs``: the functions' own IR, compiled (the answer's IR renamed as the model reads it);
    by default the IR in each prompt, the function's own only where names are kept."""
    from passlm.optimize.prompts import model_renaming
    from passlm.optimize.strategies import PREDICT, Strategy, propose

    if irs is None:
        irs = [parse_prompt(e.prompt) or "" for e in examples]
    proposed = propose(
        model, tokenizer, irs, Strategy(PREDICT), batch_size=batch_size, denylist=denylist,
        compiler=compiler,
    )  # fmt: skip
    tasks, task_of = [], {}
    for i, (ir, lists) in enumerate(zip(irs, proposed, strict=True)):
        if lists:
            task_of[i] = len(tasks)
            tasks.append(Task(ir, lists[0], want_ir=True))
            if lists[0] != OZ:  # the answer if the list loses to -Oz
                tasks.append(Task(ir, OZ, want_ir=True))
    results = compiler.run_tasks(tasks)
    out: list[Example] = []
    too_long = failed = oz = corrected = better = worse = saved = lost = 0
    for i, e in enumerate(examples):
        if i not in task_of:
            too_long += 1
            continue
        passes, r = proposed[i][0], results[task_of[i]]
        if not _usable(r):
            failed += 1
            continue
        oz += passes == OZ
        better += r.count < e.oz_count
        worse += r.count > e.oz_count
        saved += max(0, e.oz_count - r.count)
        lost += max(0, r.count - e.oz_count)
        if r.count > e.oz_count:
            r_oz = results[task_of[i] + 1]
            if not _usable(r_oz):
                failed += 1
                continue
            passes, r = OZ, r_oz
            corrected += 1
        optimized = model_renaming(model, irs[i])(r.ir or "")
        out.append(
            replace(e, answer=render_answer(passes, e.o0_count, r.count, optimized), tokens=0)
        )
    summary = DistillSummary(
        len(examples), too_long, failed, oz, corrected, better, worse, saved, lost
    )
    return out, summary
