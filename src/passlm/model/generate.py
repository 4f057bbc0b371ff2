"""Batched generation of answers: ``<s> prompt`` in, answer text out.

Generation can stop early, because most uses do not need the whole answer:

* ``until="passes"``: after the pass list's closing backtick (zero-compile prediction reads
  nothing else, and it is a few dozen tokens instead of hundreds);
* ``until="header"``: after the first line (pass list and predicted counts);
* ``until="answer"``: at ``</s>`` (the optimized IR too). The answer is held to its full form:
  the first line is generated as for ``"header"``; where it takes the pass-list-only ending
  ``.``, that becomes ``:`` and the model goes on from there, so a model fine-tuned on
  pass-list-only answers can still be asked for its IR (its pass list and counts unchanged).

Greedy stop-early answers on the CPU go through :mod:`passlm.model.fast`, one prompt at a
time; otherwise prompts are sorted by length and left-padded in batches for ``transformers``,
so a batch wastes little padding. Results come back in the order of the prompts. A prompt
that leaves no room in the model's context for the answer gets ``None``: the caller falls
back (``-Oz``) and says so.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from passlm.data.format import AUX_END, NO_AUX_END, PASSES_CLOSE, PASSES_OPEN
from passlm.model.config import ANSWER_ROOM, BOS_ID, EOS_ID, PAD_ID
from passlm.model.fast import fast_model, greedy

PASSES, HEADER, ANSWER = "passes", "header", "answer"
UNTIL = (PASSES, HEADER, ANSWER)
# Tokens allowed for a stop-early answer: a pass list of 30 passes fits with room to spare.
_SHORT_ANSWER_TOKENS = {PASSES: 64, HEADER: 96}


@dataclass(frozen=True)
class Generation:
    """One generated answer."""

    text: str  # the answer as decoded (without <s>, prompt or </s>)
    tokens: int  # tokens generated
    finished: bool  # stopped at </s> or at the stop point (False: ran out of room)
    # of the answer's tokens, as Priority Sampling counts it; kept by the fast greedy path only
    logprob: float | None = None


def context_size(model) -> int:
    """The longest sequence (prompt + answer) the model takes."""
    return int(model.config.max_position_embeddings)


def prompt_ids(tokenizer, prompt: str) -> list[int]:
    """``<s>`` and the prompt's tokens, as in training."""
    return [BOS_ID, *tokenizer.encode(prompt, add_special_tokens=False).ids]


def fits(model, tokenizer, prompt: str) -> bool:
    """Whether ``prompt`` leaves the model room to answer (else every decoder returns nothing)."""
    return len(prompt_ids(tokenizer, prompt)) + ANSWER_ROOM <= context_size(model)


def _stopped(text: str, until: str) -> bool:
    if until == PASSES:
        start = text.find(PASSES_OPEN)
        return start >= 0 and text.find(PASSES_CLOSE, start + len(PASSES_OPEN)) >= 0
    if until == HEADER:
        return "\n" in text
    return False


def _cut(text: str, until: str) -> str:
    """The answer up to its stop point (a batch step may decode a little beyond it)."""
    if until == PASSES:
        start = text.find(PASSES_OPEN)
        end = text.find(PASSES_CLOSE, start + len(PASSES_OPEN))
        return text[: end + len(PASSES_CLOSE)] if start >= 0 and end >= 0 else text
    if until == HEADER:
        return text.split("\n", 1)[0]
    return text


class _StopAt:
    """A ``transformers`` stopping criterion: per row, whether the decoded answer reached ``until``."""

    def __init__(self, tokenizer, start: int, until: str) -> None:
        self.tokenizer, self.start, self.until = tokenizer, start, until

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        rows = input_ids[:, self.start :].tolist()
        done = [
            _stopped(self.tokenizer.decode(r, skip_special_tokens=True), self.until) for r in rows
        ]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


@torch.no_grad()
def generate(
    model,
    tokenizer,
    prompts: Sequence[str],
    *,
    until: str = ANSWER,
    max_new_tokens: int | None = None,
    batch_size: int = 8,
    sample: bool = False,
    temperature: float = 1.0,
    top_p: float = 1.0,
    seed: int = 0,
    constraint=None,
) -> list[Generation | None]:
    """Answer each prompt; ``None`` where the prompt leaves no room for an answer.

    Greedy by default (deterministic). ``max_new_tokens`` defaults to what the context leaves
    for ``until="answer"`` (there it counts after the first line) and to a short budget for the
    stop-early modes. ``constraint`` (a
    :class:`~passlm.model.constrained.PassListConstraint`) keeps the pass list valid.
    """
    if until not in UNTIL:
        raise ValueError(f"until must be one of {', '.join(UNTIL)}, not {until!r}")
    options = dict(batch_size=batch_size, sample=sample, temperature=temperature, top_p=top_p)
    if until != ANSWER:
        return _generate(
            model, tokenizer, prompts, until, max_new_tokens, seed, constraint, **options
        )
    heads = _generate(model, tokenizer, prompts, HEADER, None, seed, constraint, **options)
    # The first line, ending in ":" and a newline as a full answer's does; None: not written.
    firsts = [
        h.text[:-1] + AUX_END + "\n"
        if h is not None and h.text.endswith((AUX_END, NO_AUX_END))
        else None
        for h in heads
    ]
    rests: list[Generation | None] = [None] * len(prompts)
    # Rows with a first line go on after it (the pass list is written); the others start over,
    # under the constraint.
    for rows, rule in (
        ([i for i, f in enumerate(firsts) if f is not None], None),
        ([i for i, f in enumerate(firsts) if f is None], constraint),
    ):
        texts = [prompts[i] + (firsts[i] or "") for i in rows]
        got = _generate(model, tokenizer, texts, ANSWER, max_new_tokens, seed, rule, **options)
        for i, g in zip(rows, got, strict=True):
            rests[i] = g
    out: list[Generation | None] = []
    for head, first, rest in zip(heads, firsts, rests, strict=True):
        if first is None or rest is None:
            out.append(rest if first is None else dataclasses.replace(head, finished=False))
        else:
            out.append(Generation(first + rest.text, head.tokens + rest.tokens, rest.finished))
    return out


def _generate(
    model,
    tokenizer,
    prompts: Sequence[str],
    until: str,
    max_new_tokens: int | None,
    seed: int,
    constraint,
    *,
    batch_size: int,
    sample: bool,
    temperature: float,
    top_p: float,
) -> list[Generation | None]:
    """:func:`generate` for one stop point, the answer starting right after each prompt."""
    from transformers import LogitsProcessorList, StoppingCriteriaList

    from passlm.model.constrained import ConstrainedLogits

    context = context_size(model)
    limit = max_new_tokens or _SHORT_ANSWER_TOKENS.get(until, context)
    encoded = [prompt_ids(tokenizer, p) for p in prompts]
    results: list[Generation | None] = [None] * len(prompts)
    # Prompts that leave room for at least a pass list; longest first, so memory peaks early.
    order = sorted(
        (i for i, ids in enumerate(encoded) if len(ids) + ANSWER_ROOM <= context),
        key=lambda i: -len(encoded[i]),
    )
    fast = fast_model(model) if not sample and until != ANSWER else None
    if fast is not None:  # one prompt at a time: on the CPU, padding costs more than it saves
        for i in order:
            answer, logprob = greedy(
                fast, encoded[i], max(1, min(limit, context - len(encoded[i]))),
                constraint=constraint,
                stopped=lambda a: _stopped(tokenizer.decode(a, skip_special_tokens=True), until),
                draft=fast.last_answer,  # functions in a row tend to get the same answer
            )  # fmt: skip
            fast.last_answer = answer
            results[i] = dataclasses.replace(_result(tokenizer, answer, until), logprob=logprob)
        return results
    device = next(model.parameters()).device
    for b in range(0, len(order), batch_size):
        batch = order[b : b + batch_size]
        width = max(len(encoded[i]) for i in batch)
        ids = torch.full((len(batch), width), PAD_ID, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, i in enumerate(batch):  # left padding: every prompt ends where the answer starts
            ids[row, width - len(encoded[i]) :] = torch.tensor(encoded[i])
            mask[row, width - len(encoded[i]) :] = 1
        new_tokens = max(1, min(limit, context - width))
        stopping = (
            StoppingCriteriaList([_StopAt(tokenizer, width, until)]) if until != ANSWER else None
        )
        processors = LogitsProcessorList()
        if constraint is not None:
            processors.append(ConstrainedLogits(constraint, width))
        if sample:
            torch.manual_seed(seed + b)
        out = model.generate(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            max_new_tokens=new_tokens,
            do_sample=sample,
            temperature=temperature if sample else None,
            top_p=top_p if sample else None,
            top_k=None,
            eos_token_id=EOS_ID,
            pad_token_id=PAD_ID,
            stopping_criteria=stopping,
            logits_processor=processors or None,
        )
        for row, i in enumerate(batch):
            results[i] = _result(tokenizer, out[row, width:].tolist(), until)
    return results


def _result(tokenizer, answer: list[int], until: str) -> Generation:
    finished = EOS_ID in answer
    if finished:
        answer = answer[: answer.index(EOS_ID)]
    text = tokenizer.decode(answer, skip_special_tokens=True)
    if until != ANSWER:
        finished = _stopped(text, until)
        text = _cut(text, until)
    return Generation(text, len(answer), finished)
