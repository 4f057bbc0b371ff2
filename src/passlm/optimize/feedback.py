"""The compiler-feedback loop (``feedback-K``, Grubisic et al., 2024).

Round 0: the model answers greedily (the header line: pass list and predicted counts). Each
feedback round compiles the latest list, appends the compiler's feedback to the conversation
(:func:`passlm.data.format.render_feedback`: list valid, predicted vs real counts) and asks
again; the model either writes ``I am sure!`` (the function is done) or ``Let me try again.``
and a new answer. After K rounds, or when every function is done, the distinct lists proposed
are the candidates (compiled, best kept, ``-Oz`` always among them, like ``sample-N``).

This is the "fast" feedback of the paper: the model is not asked for optimized IR, so
generation stops after the header line. A model learns the second turn from
``passlm dataset feedback`` (:mod:`passlm.data.feedback`); one that never saw the feedback task
writes neither phrase and stops after its first answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from passlm.data.format import (
    FAST,
    RETRY,
    continue_after_feedback,
    parse_answer,
    parse_second_answer,
    render_feedback,
    render_prompt,
)
from passlm.llvm.backend import Compiler, Task
from passlm.llvm.ir import count_instructions
from passlm.llvm.passes import PassList
from passlm.optimize.prompts import model_prompts


@dataclass
class Conversation:
    """One function's dialogue with the model and the compiler."""

    ir: str
    text: str  # everything the model reads next
    lists: list[PassList]  # distinct lists proposed, in order
    done: bool = False
    rounds: int = 0  # feedback rounds held
    sure: bool | None = None  # how it ended: True "I am sure!", False out of rounds/no answer


def first_answers(
    model,
    tokenizer,
    irs: Sequence[str],
    *,
    constraint=None,
    batch_size: int = 8,
    compiler: Compiler | None = None,
):
    """The prompt and the greedy header line for each function (``None`` where the prompt does
    not fit, or the model reads the -Oz context and -Oz fails; ``compiler`` makes that context)."""
    from passlm.model.generate import HEADER, generate

    made = model_prompts(model, irs, compiler, tokenizer)
    usable = [i for i, p in enumerate(made) if p is not None]
    gens = generate(
        model, tokenizer, [made[i] for i in usable], until=HEADER,
        batch_size=batch_size, constraint=constraint,
    )  # fmt: skip
    answers: list[str | None] = [None] * len(irs)
    for i, g in zip(usable, gens, strict=True):
        answers[i] = g.text if g is not None else None
    prompts = [p if p is not None else render_prompt(ir) for p, ir in zip(made, irs, strict=True)]
    return prompts, answers


def feedback_text(answer_text: str, ir: str, compiled: int | None, kind: str = FAST) -> str:
    """The compiler's feedback on one answer (``compiled``: its list's real count, if valid)."""
    return render_feedback(
        parse_answer(answer_text),
        source_count=count_instructions(ir),
        target_count=compiled,
        kind=kind,
    )


def feedback_loop(
    model,
    tokenizer,
    irs: Sequence[str],
    rounds: int,
    compiler: Compiler,
    *,
    constraint=None,
    batch_size: int = 8,
) -> list[Conversation]:
    """Run up to ``rounds`` feedback rounds for every function; the conversations at the end."""
    from passlm.model.generate import HEADER, generate

    prompts, answers = first_answers(
        model, tokenizer, irs, constraint=constraint, batch_size=batch_size, compiler=compiler
    )
    talks = []
    for ir, prompt, answer in zip(irs, prompts, answers, strict=True):
        talk = Conversation(ir, prompt, [], done=answer is None)
        talks.append(talk)
        if answer is not None:
            _take(talk, answer)
    latest = dict(enumerate(answers))
    counts: dict[tuple[int, tuple[str, ...]], int | None] = {}
    for _ in range(rounds):
        live = [i for i, t in enumerate(talks) if not t.done]
        if not live:
            break
        # compile the newest list of every live conversation (each distinct list once)
        newest = {i: parse_answer(latest[i] or "").passes for i in live}
        todo = {}
        for i, passes in newest.items():
            if passes is not None and (i, passes.passes) not in counts:
                todo[(i, passes.passes)] = Task(talks[i].ir, passes)
        for key, r in zip(todo, compiler.run_tasks(list(todo.values())), strict=True):
            counts[key] = r.count if r.ok else None
        for i, passes in newest.items():
            compiled = counts.get((i, passes.passes)) if passes is not None else None
            feedback = feedback_text(latest[i] or "", talks[i].ir, compiled)
            talks[i].text = continue_after_feedback(talks[i].text, latest[i] or "", feedback)
            talks[i].rounds += 1
        # "I am sure!" or "Let me try again." (free text: the phrase decides)
        verdicts = generate(
            model, tokenizer, [talks[i].text for i in live], until=HEADER, batch_size=batch_size
        )
        retry = []
        for i, v in zip(live, verdicts, strict=True):
            sure, _ = parse_second_answer(v.text if v is not None else "")
            if sure is False:
                talks[i].text += f"{RETRY}\n"
                retry.append(i)
            else:
                talks[i].done, talks[i].sure = True, sure is True
        again = generate(
            model, tokenizer, [talks[i].text for i in retry], until=HEADER,
            batch_size=batch_size, constraint=constraint,
        )  # fmt: skip
        for i, g in zip(retry, again, strict=True):
            if g is None:  # the conversation outgrew the context
                talks[i].done = True
                continue
            latest[i] = g.text
            _take(talks[i], g.text)
    return talks


def _take(talk: Conversation, answer: str) -> None:
    passes = parse_answer(answer).passes
    if passes is not None and all(p.passes != passes.passes for p in talk.lists):
        talk.lists.append(passes)
