"""The feedback data set: teach a model the second turn of the compiler-feedback loop.

For every function of a data set the model first answers greedily (the header line, as in
``feedback-K``); the compiler runs that list and the fast feedback is rendered after it
(:mod:`passlm.optimize.feedback`: the very text inference builds). The target of the second
turn is ``I am sure!`` when the first list already reaches the autotuner's best count, else
``Let me try again.`` and the best list's answer. The original examples are kept beside the
feedback ones, so fine-tuning on the file does not unlearn the first turn.

With ``retry_samples`` = k the retry's list is the model's own where it can be: of its first k
samples besides -Oz (``sample-k``), compiled, the one with the fewest instructions (the most
probable of those), if it beats both the first list and -Oz; the best list only where none
does. A model that sees a few hundred retries learns where the best lists fall, not which
suits the function (measured: ``-O1`` on 51 of 54 retries); one of its own lists it can
reproduce.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from passlm.data.dataset import Example
from passlm.data.format import (
    SURE,
    continue_after_feedback,
    parse_answer,
    parse_prompt,
    render_answer,
    render_second_answer,
)
from passlm.llvm.backend import Compiler, Task
from passlm.llvm.passes import PassList
from passlm.optimize.feedback import feedback_text, first_answers


@dataclass(frozen=True)
class FeedbackSummary:
    """How the model's first answers fared on the functions turned into feedback examples."""

    functions: int
    too_long: int  # prompt left no room for an answer: no example
    invalid: int  # first answer without a usable list
    sure: int  # first list already as good as the best: target "I am sure!"
    retry: int  # target "Let me try again." + the best list (or the model's own, below)
    own: int = 0  # of the retries, those answered with one of the model's own samples


def feedback_examples(
    model,
    tokenizer,
    examples: Sequence[Example],
    compiler: Compiler,
    *,
    constraint=None,
    batch_size: int = 8,
    retry_samples: int = 0,
    irs: Sequence[str] | None = None,
) -> tuple[list[Example], FeedbackSummary]:
    """One feedback example per example whose prompt fits the model, and the tallies
    (``retry_samples``: retry with the best of the model's first k samples, module doc).

    ``irs``: the functions' own IR, which is compiled and rendered as the model reads it; by
    default the IR in each prompt, which is the function's own only where names are kept (and
    in a data set made before comdats were renamed with their globals, an anonymized C++
    function's prompt does not compile)."""
    if irs is None:
        irs = [parse_prompt(e.prompt) or "" for e in examples]
    prompts, answers = first_answers(
        model, tokenizer, irs, constraint=constraint, batch_size=batch_size, compiler=compiler
    )
    parsed = [parse_answer(a) if a is not None else None for a in answers]
    tasks, task_of = [], {}
    for i, (ir, a) in enumerate(zip(irs, parsed, strict=True)):
        if a is not None and a.passes is not None:
            task_of[i] = len(tasks)
            tasks.append(Task(ir, a.passes))
    results = compiler.run_tasks(tasks)
    compiled_first = [
        results[task_of[i]].count if i in task_of and results[task_of[i]].ok else None
        for i in range(len(examples))
    ]
    # the first list already reaches the best count: "I am sure!"
    good = [
        c is not None and c <= e.best_count for e, c in zip(examples, compiled_first, strict=True)
    ]
    own: dict[int, tuple[PassList, int]] = {}
    if retry_samples > 0:
        retries = [i for i, a in enumerate(answers) if a is not None and not good[i]]
        found = _own_retries(
            model, tokenizer, [examples[i] for i in retries], [irs[i] for i in retries],
            [compiled_first[i] for i in retries], compiler, retry_samples, batch_size,
        )  # fmt: skip
        own = {i: f for i, f in zip(retries, found, strict=True) if f is not None}
    out: list[Example] = []
    too_long = invalid = sure = retry = 0
    for i, (e, ir, answer) in enumerate(zip(examples, irs, answers, strict=True)):
        if answer is None:
            too_long += 1
            continue
        compiled = compiled_first[i]
        if compiled is None:
            invalid += 1
        sure += good[i]
        retry += not good[i]
        passes, count = own.get(i, (e.best_passes, e.best_count))
        second = render_second_answer(None if good[i] else render_answer(passes, e.o0_count, count))
        prompt = continue_after_feedback(prompts[i], answer, feedback_text(answer, ir, compiled))
        out.append(replace(e, prompt=prompt, answer=second, tokens=0))
    summary = FeedbackSummary(len(examples), too_long, invalid, sure, retry, len(own))
    return out, summary


def _own_retries(
    model,
    tokenizer,
    examples: Sequence[Example],
    irs: Sequence[str],
    firsts: Sequence[int | None],
    compiler: Compiler,
    k: int,
    batch_size: int,
) -> list[tuple[PassList, int] | None]:
    """For each function, where one of the model's first ``k`` samples beats its first list
    and -Oz: the sample with the fewest instructions, the most probable of those first, and its
    count (None where none does)."""
    from passlm.optimize.strategies import parse_strategy, propose

    lists = propose(
        model, tokenizer, irs, parse_strategy(f"sample-{k}"), batch_size=batch_size,
        compiler=compiler,
    )  # fmt: skip
    tasks = [Task(ir, p) for ir, ls in zip(irs, lists, strict=True) for p in ls]
    results = iter(compiler.run_tasks(tasks))
    found: list[tuple[PassList, int] | None] = []
    for e, ls, first in zip(examples, lists, firsts, strict=True):
        best, bar = None, min(e.oz_count, first) if first is not None else e.oz_count
        for passes in ls:
            r = next(results)
            if r.ok and r.count is not None and r.count < bar:
                best, bar = (passes, r.count), r.count
        found.append(best)
    return found


def balance(examples: Sequence[Example]) -> list[Example]:
    """Per split, every ``Let me try again.`` example and as many ``I am sure!`` ones, spread
    evenly over them: with -Oz best for ~83% of functions the natural mix teaches a small
    model to be sure of everything (measured: feedback-3 then never retries)."""
    out: list[Example] = []
    for split in dict.fromkeys(e.split for e in examples):
        mine = [e for e in examples if e.split == split]
        sure = [e for e in mine if e.answer == SURE]
        retry = [e for e in mine if e.answer != SURE]
        wanted = min(len(sure), len(retry))  # more retries than sure ones: keep every one
        keep = {id(sure[i * len(sure) // wanted]) for i in range(wanted)}
        out += [e for e in mine if e.answer != SURE or id(e) in keep]
    return out
