"""The feedback data set: teach a model the second turn of the compiler-feedback loop.

For every function of a data set the model first answers greedily (the header line, as in
``feedback-K``); the compiler runs that list and the fast feedback is rendered after it
(:mod:`passlm.optimize.feedback`: the very text inference builds). The target of the second
turn is ``I am sure!`` when the first list already reaches the autotuner's best count, else
``Let me try again.`` and the best list's answer. The original examples are kept beside the
feedback ones, so fine-tuning on the file does not unlearn the first turn.
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
from passlm.optimize.feedback import feedback_text, first_answers


@dataclass(frozen=True)
class FeedbackSummary:
    """How the model's first answers fared on the functions turned into feedback examples."""

    functions: int
    too_long: int  # prompt left no room for an answer: no example
    invalid: int  # first answer without a usable list
    sure: int  # first list already as good as the best: target "I am sure!"
    retry: int  # target "Let me try again." + the best list


def feedback_examples(
    model,
    tokenizer,
    examples: Sequence[Example],
    compiler: Compiler,
    *,
    constraint=None,
    batch_size: int = 8,
) -> tuple[list[Example], FeedbackSummary]:
    """One feedback example per example whose prompt fits the model, and the tallies."""
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
    out: list[Example] = []
    too_long = invalid = sure = retry = 0
    for i, (e, ir, answer) in enumerate(zip(examples, irs, answers, strict=True)):
        if answer is None:
            too_long += 1
            continue
        r = results[task_of[i]] if i in task_of else None
        compiled = r.count if r is not None and r.ok else None
        if compiled is None:
            invalid += 1
        good = compiled is not None and compiled <= e.best_count
        sure += good
        retry += not good
        second = render_second_answer(
            None if good else render_answer(e.best_passes, e.o0_count, e.best_count)
        )
        prompt = continue_after_feedback(prompts[i], answer, feedback_text(answer, ir, compiled))
        out.append(replace(e, prompt=prompt, answer=second, tokens=0))
    summary = FeedbackSummary(len(examples), too_long, invalid, sure, retry)
    return out, summary


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
