"""Pass lists proposed by a model: greedy, zero compiles (the paper's headline mode)."""

from __future__ import annotations

from collections.abc import Sequence

from passlm.data.format import parse_answer, render_prompt
from passlm.llvm.passes import PassList
from passlm.model.generate import PASSES, generate


def greedy_pass_lists(
    model, tokenizer, irs: Sequence[str], *, batch_size: int = 8
) -> list[PassList | None]:
    """The model's greedy pass list for each normalized function IR.

    ``None`` where the function does not fit the model's context or the model wrote no valid
    list; the caller uses ``-Oz`` there.
    """
    generations = generate(
        model, tokenizer, [render_prompt(ir) for ir in irs], until=PASSES, batch_size=batch_size
    )
    return [parse_answer(g.text).passes if g is not None else None for g in generations]
