"""The prompt a model reads for a function: the one it was trained on.

A model trained on plain prompts reads the unoptimized IR; one trained with the -Oz context
(``passlm dataset make --oz-context``) also reads what -Oz made of the function, so its prompts
need an -Oz compile with the IR kept. Every strategy compiles -Oz anyway (it is the baseline and
is not counted), so the context costs one compile that is never counted either.

The context makes a prompt about twice as long (its one-line summary, ``ir+oz-summary``, does
not). Where it leaves the model no room to answer, the function gets the plain prompt instead
(given the tokenizer, which measures it), rather than no proposal at all: a model fine-tuned
with the context from a plain one still reads plain prompts (on the 9 unseen functions too long
for the -Oz-context fine-tune, its plain-prompt samples saved what the shipped model's did, 178
instructions).

A model trained with names anonymized (``passlm dataset make --anonymize-names``) reads every
IR of its prompt renamed by :class:`passlm.llvm.names.Renaming`, and writes its optimized IR
with the same names; :func:`model_renaming` is that renaming, for comparing what it wrote.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from passlm.data.format import PROMPT_PLAIN, OzContext, render_prompt
from passlm.llvm.backend import Compiler, Task
from passlm.llvm.names import NAMES_ANONYMIZED, NAMES_KEPT, renamer
from passlm.llvm.passes import OZ


def prompt_kind(model: Any) -> str:
    """The prompt ``model`` was trained on (:data:`PROMPT_PLAIN` unless its directory said
    otherwise; ``passlm.model.checkpoint.load`` reads it)."""
    return getattr(model, "passlm_prompt", PROMPT_PLAIN)


def names_kind(model: Any) -> str:
    """Whether ``model`` reads names kept or anonymized (kept unless its directory said
    otherwise; ``passlm.model.checkpoint.load`` reads it)."""
    return getattr(model, "passlm_names", NAMES_KEPT)


def reads_plain(model: Any) -> bool:
    """Whether ``model`` reads plain prompts: trained on them alone, or beside a context kind
    (``passlm.json``'s :data:`~passlm.data.format.PLAIN_PROMPTS`)."""
    return prompt_kind(model) == PROMPT_PLAIN or bool(getattr(model, "passlm_plain_prompts", False))


def model_renaming(model: Any, ir: str) -> Callable[[str], str]:
    """What every text about the function ``ir`` goes through for ``model``: the function's
    :class:`~passlm.llvm.names.Renaming` if ``model`` reads names anonymized, else nothing."""
    return renamer(ir, names_kind(model) == NAMES_ANONYMIZED)


def oz_contexts(irs: Sequence[str], compiler: Compiler) -> list[OzContext | None]:
    """Each function's -Oz count and IR, in one batch (None where -Oz fails on it)."""
    results = compiler.run_tasks([Task(ir, OZ, want_ir=True) for ir in irs])
    return [
        OzContext(r.count, r.ir) if r.ok and r.count is not None and r.ir is not None else None
        for r in results
    ]


def model_prompts(
    model: Any,
    irs: Sequence[str],
    compiler: Compiler | None = None,
    tokenizer: Any = None,
    *,
    compiles: bool = True,
    fits_in: Callable[[str], bool] | None = None,
) -> list[str | None]:
    """The prompt ``model`` reads for each function; None where it needs the -Oz context and
    -Oz fails (the function is then left to -Oz, which fails too, by the caller).

    ``compiler`` makes the -Oz context; without one, an in-process compiler of the default
    toolchain is opened for the call. With ``tokenizer`` (or ``fits_in``, whether a prompt fits
    the model, for one served elsewhere), a prompt that the context makes too long for the
    model is the plain one. ``compiles=False``: the caller compiles nothing before
    it has the model's answer (``predict``), so a model that reads plain prompts too gets those
    and no -Oz compile is spent on a context.
    """
    kind = prompt_kind(model)
    renames = [model_renaming(model, ir) for ir in irs]
    if kind == PROMPT_PLAIN or (not compiles and reads_plain(model)):
        return [render_prompt(rename(ir)) for ir, rename in zip(irs, renames, strict=True)]
    if compiler is None:
        from passlm.llvm.backend import InProcessCompiler
        from passlm.llvm.toolchain import default_toolchain

        with InProcessCompiler(default_toolchain()) as own:
            contexts = oz_contexts(irs, own)
    else:
        contexts = oz_contexts(irs, compiler)
    if fits_in is None and tokenizer is not None:
        from passlm.model.generate import fits  # torch: only for a model, which has loaded it

        fits_in = partial(fits, model, tokenizer)
    out: list[str | None] = []
    for ir, oz, rename in zip(irs, contexts, renames, strict=True):
        prompt = None
        if oz is not None:
            prompt = render_prompt(rename(ir), OzContext(oz.count, rename(oz.ir)), kind)
        if prompt is not None and fits_in is not None and not fits_in(prompt):
            prompt = render_prompt(rename(ir))
        out.append(prompt)
    return out
