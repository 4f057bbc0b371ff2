"""Decoding constrained to valid pass lists, and deterministic unique (priority) sampling.

The IR tokenizer keeps every pass name a single token: ``Run passes `␣-mem2reg␣ -gvn␣`␣``
is the opener, ``-mem2reg`` (first pass), `` -gvn`` (later passes) and the closing backtick.
:class:`PassListConstraint` masks every other token while a pass list is being written, and an
O-level already used, so no proposal is wasted on an invalid list.

:func:`priority_sample` is Priority Sampling (Grubisic et al., 2024): the first sample is the
greedy answer; every later one expands the most probable prefix not yet taken (a branch left
at some step of an earlier sample) and completes it greedily. Samples are unique, come in
(approximately) decreasing probability, and are deterministic: no seed is involved.
:func:`temperature_sample` draws unique answers at a temperature instead, seeded.
"""

from __future__ import annotations

import copy
import heapq
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from passlm.data.format import PASSES_CLOSE, PASSES_OPEN
from passlm.errors import PasslmError
from passlm.llvm.passes import ALL_ACTIONS, O_LEVELS
from passlm.model.config import ANSWER_ROOM, BOS_ID

MAX_PASSES = 24  # longest list decoded (autotuned lists have at most 8 actions)


class PassListConstraint:
    """Which tokens may come next while an answer's pass list is being written."""

    def __init__(self, tokenizer, banned: frozenset[str] = frozenset()) -> None:
        vocab = tokenizer.get_vocab()
        self.open_id = vocab.get(PASSES_OPEN)
        self.close_id = vocab.get(PASSES_CLOSE)
        first = {vocab.get(f"{_spelled(a)}") for a in ALL_ACTIONS}
        later = {vocab.get(f" {_spelled(a)}") for a in ALL_ACTIONS}
        if self.open_id is None or self.close_id is None or None in first or None in later:
            raise PasslmError(
                "the model's tokenizer does not keep pass names whole; constrained decoding "
                "needs a passlm IR tokenizer (passlm tokenizer train)"
            )
        # passes never to propose (deny-list entries that match any list running them)
        gone = {vocab.get(f"{p}{_spelled(a)}") for a in banned for p in ("", " ")}
        self.first = sorted(first - gone)  # type: ignore[operator]
        self.later = sorted(later - gone)  # type: ignore[operator]
        self.o_level_of = {
            vocab[f"{p}{o}"]: o for o in O_LEVELS for p in ("", " ")
        }  # token id -> O-level
        self.vocab_size = tokenizer.get_vocab_size()

    def allowed(self, answer: list[int]) -> list[int] | None:
        """Token ids allowed after ``answer`` (the tokens generated so far); None: any."""
        if not answer:
            return [self.open_id]
        if answer[0] != self.open_id or self.close_id in answer:
            return None  # the list is written: the rest of the answer is free
        passes = answer[1:]
        if not passes:
            return self.first
        used = {self.o_level_of[t] for t in passes if t in self.o_level_of}
        if len(passes) >= MAX_PASSES:
            return [self.close_id]
        later = [t for t in self.later if self.o_level_of.get(t) not in used]
        return [*later, self.close_id]

    def mask(self, answer: list[int], scores: torch.Tensor) -> torch.Tensor:
        """``scores`` (one row of logits) with disallowed tokens at -inf."""
        allowed = self.allowed(answer)
        if allowed is None:
            return scores
        masked = torch.full_like(scores, float("-inf"))
        index = torch.tensor(allowed, device=scores.device)
        masked[index] = scores[index]
        return masked


def _spelled(action: str) -> str:
    return action if action in O_LEVELS else f"-{action}"


class ConstrainedLogits:
    """A ``transformers`` logits processor applying :class:`PassListConstraint` per row."""

    def __init__(self, constraint: PassListConstraint, start: int) -> None:
        self.constraint, self.start = constraint, start

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        for row in range(scores.shape[0]):
            answer = input_ids[row, self.start :].tolist()
            scores[row] = self.constraint.mask(answer, scores[row])
        return scores


@dataclass(frozen=True)
class Sample:
    """One sampled answer and its log-probability under the model."""

    text: str
    logprob: float
    tokens: tuple[int, ...]


class _Answering:
    """The start every pass-list decoding shares: the prompt in a :func:`decoding_session`
    (with the list's opener, the only token a constrained answer can start with, joined to
    it), the token that ends the list, the room left for an answer, and the allowed tokens and
    log-probabilities of each step. :meth:`start` says None where the prompt does not fit."""

    def __init__(self, session, constraint, forced: list[int], stop: int, budget: int) -> None:
        self.session, self.constraint = session, constraint
        self.forced, self.stop, self.budget = forced, stop, budget

    @classmethod
    def start(
        cls, model, tokenizer, prompt: str, constraint, max_new_tokens: int | None = None
    ) -> _Answering | None:
        """The prompt decoded; ``max_new_tokens`` bounds the answer (None: the context does)."""
        ids = [BOS_ID, *tokenizer.encode(prompt, add_special_tokens=False).ids]
        context = int(model.config.max_position_embeddings)
        if len(ids) + ANSWER_ROOM > context:
            return None
        forced = [constraint.open_id] if constraint is not None else []
        stop = (
            constraint.close_id if constraint is not None else tokenizer.token_to_id(PASSES_CLOSE)
        )
        answering = cls(
            decoding_session(model),
            constraint,
            forced,
            stop,
            context - len(ids)
            if max_new_tokens is None
            else min(max_new_tokens, context - len(ids)),
        )
        answering.session.start(ids + forced, answering.rows(forced))
        return answering

    def rows(self, answer: list[int]) -> list[int] | None:
        """The logits the step after ``answer`` needs (None: all)."""
        return self.constraint.allowed(answer) if self.constraint is not None else None

    def log_probs(self, answer: list[int], logits: torch.Tensor) -> torch.Tensor:
        """The next token's log-probabilities after ``answer``, renormalized over the tokens
        the constraint allows."""
        scores = logits.float()
        if self.constraint is not None:
            scores = self.constraint.mask(answer, scores)
        return torch.log_softmax(scores, dim=-1)

    def done(self, answer: list[int]) -> bool:
        """Whether ``answer`` has closed its list or used the room left."""
        return bool(answer and answer[-1] == self.stop) or len(answer) >= self.budget


@torch.no_grad()
def priority_sample(
    model,
    tokenizer,
    prompt: str,
    n: int,
    *,
    constraint: PassListConstraint | None = None,
    branches: int = 4,
    max_new_tokens: int = 64,
    keep: Callable[[Sample], bool] | None = None,
    max_refused: int = 32,
) -> list[Sample]:
    """Up to ``n`` unique pass-list answers, best first (``[]`` if the prompt does not fit).

    Each answer stops after the pass list's closing backtick. ``branches`` alternatives per
    step are kept as candidate prefixes for later samples. With ``keep``, only samples it
    accepts are returned and count towards ``n``, and sampling stops once it has refused
    ``max_refused``. Samples come in the same order whatever ``n`` is, and the stop does not
    depend on ``n`` either, so the first k kept of a run for ``n`` are exactly a run for k's.
    """
    answering = _Answering.start(model, tokenizer, prompt, constraint, max_new_tokens)
    if answering is None:
        return []
    session, forced, rows = answering.session, answering.forced, answering.rows
    heap: list[tuple[float, int, tuple[int, ...]]] = [(-0.0, 0, tuple(forced))]
    tie = 1  # heap entries: (-logprob, tie, prefix)
    samples: list[Sample] = []
    seen: set[tuple[int, ...]] = set()
    refused = 0
    while heap and len(samples) < n and refused < max_refused:
        neg, _, prefix = heapq.heappop(heap)
        if prefix in seen:
            continue
        logprob = -neg
        answer = list(prefix)
        logits = session.branch(answer[len(forced) :], rows(answer))
        while not answering.done(answer):
            logp = answering.log_probs(answer, logits)
            top = torch.topk(logp, k=min(branches + 1, logp.shape[0]))
            choices = [(float(v), int(t)) for v, t in zip(top.values, top.indices, strict=True)]
            choices = [(v, t) for v, t in choices if v > float("-inf")]
            if not choices:
                break
            best_v, best_t = choices[0]
            for v, t in choices[1:]:
                heapq.heappush(heap, (-(logprob + v), tie, (*answer, t)))
                tie += 1
            answer.append(best_t)
            logprob += best_v
            if not answering.done(answer):
                logits = session.step(best_t, rows(answer))
        key = tuple(answer)
        if key in seen:
            continue
        seen.add(key)
        sample = Sample(tokenizer.decode(answer, skip_special_tokens=True), logprob, key)
        if keep is None or keep(sample):
            samples.append(sample)
        else:
            refused += 1
    return samples


@torch.no_grad()
def answer_logprobs(
    model,
    tokenizer,
    prompt: str,
    answers: Sequence[str],
    *,
    constraint: PassListConstraint | None = None,
) -> list[float] | None:
    """The log-probability of each answer (a pass-list answer's text, ``Run passes `...```)
    after ``prompt``, counted as :func:`priority_sample` counts a sample's; None if the prompt
    does not fit. An answer the constraint forbids gets -inf.

    Right after the prompt was decoded (``predict``), the fast path's cache still holds it, so
    scoring a short answer such as ``-Oz``'s costs a forward pass of a token or two.
    """
    answering = _Answering.start(model, tokenizer, prompt, constraint)
    if answering is None:
        return None
    session, forced, rows = answering.session, answering.forced, answering.rows
    out = []
    for text in answers:
        tokens = tokenizer.encode(text, add_special_tokens=False).ids
        if tokens[: len(forced)] != forced:
            out.append(float("-inf"))
            continue
        answer, logprob = list(forced), 0.0
        logits = session.branch([], rows(answer))
        for j, token in enumerate(tokens[len(forced) :]):
            logprob += float(answering.log_probs(answer, logits)[token])
            answer.append(token)
            if logprob == float("-inf"):
                break
            if j + 1 < len(tokens) - len(forced):
                logits = session.step(token, rows(answer))
        out.append(logprob)
    return out


@torch.no_grad()
def temperature_sample(
    model,
    tokenizer,
    prompt: str,
    n: int,
    *,
    temperature: float = 1.0,
    seed: int = 0,
    constraint: PassListConstraint | None = None,
    max_new_tokens: int = 64,
    keep: Callable[[Sample], bool] | None = None,
    max_draws: int = 64,
) -> list[Sample]:
    """Up to ``n`` unique pass-list answers drawn at ``temperature``, in the order first drawn
    (``[]`` if the prompt does not fit).

    Draws go on past repeats (and, with ``keep``, past refused samples) until ``n`` are kept or
    ``max_draws`` were drawn. One seeded generator draws every token, and the draws do not
    depend on ``n``, so the first k kept of a run for ``n`` are exactly a run for k's. The
    next-token log-probabilities after a prefix are computed once and reused by every later
    draw through it (draws repeat the likely prefixes), so a draw runs the model only where it
    leaves the paths already taken. ``Sample.logprob`` is under the model (temperature 1).
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    answering = _Answering.start(model, tokenizer, prompt, constraint, max_new_tokens)
    if answering is None:
        return []
    session, forced, rows = answering.session, answering.forced, answering.rows
    known = {tuple(forced): answering.log_probs(forced, session.logits_at_start())}
    held: tuple[int, ...] = tuple(forced)  # the answer the session's cache ends with
    generator = torch.Generator().manual_seed(seed)
    samples: list[Sample] = []
    seen: set[tuple[int, ...]] = set()
    for _ in range(max_draws):
        if len(samples) >= n:
            break
        answer, logprob = list(forced), 0.0
        while not answering.done(answer):
            key = tuple(answer)
            logp = known.get(key)
            if logp is None:
                if key[:-1] == held:
                    logits = session.step(answer[-1], rows(answer))
                else:
                    logits = session.branch(answer[len(forced) :], rows(answer))
                logp = known[key] = answering.log_probs(answer, logits)
                held = key
            if not bool(torch.isfinite(logp).any()):
                break
            probs = torch.softmax(logp / temperature, dim=-1)
            token = int(torch.multinomial(probs.cpu(), 1, generator=generator))  # the CPU generator
            answer.append(token)
            logprob += float(logp[token])
        key = tuple(answer)
        if key in seen:
            continue
        seen.add(key)
        sample = Sample(tokenizer.decode(answer, skip_special_tokens=True), logprob, key)
        if keep is None or keep(sample):
            samples.append(sample)
    return samples


class _FastSession:
    """Priority sampling's prompt and branches on :class:`~passlm.model.fast.FastLlama`: a
    branch truncates the key-value cache back to the prompt. ``rows``: the only logits the
    next choice needs (None: all)."""

    def __init__(self, fast) -> None:
        self.fast = fast

    def start(self, ids: list[int], rows: list[int] | None) -> None:
        self.logits, self.prompt = self.fast.prefill(ids, rows), len(ids)

    def logits_at_start(self) -> torch.Tensor:
        return self.logits

    def branch(self, tokens: list[int], rows: list[int] | None) -> torch.Tensor:
        self.fast.truncate(self.prompt)
        return self.fast.extend(tokens, rows) if tokens else self.logits

    def step(self, token: int, rows: list[int] | None) -> torch.Tensor:
        return self.fast.extend([token], rows)


class _ModelSession:
    """The same on a ``transformers`` model: a branch continues a copy of the prompt's cache
    (every logit is computed; the constraint masks them)."""

    def __init__(self, model) -> None:
        self.model = model
        self.device = next(model.parameters()).device

    def start(self, ids: list[int], rows: list[int] | None) -> None:
        self.prompt_cache, self.logits = _step(self.model, self._ids(ids), None)

    def logits_at_start(self) -> torch.Tensor:
        return self.logits

    def branch(self, tokens: list[int], rows: list[int] | None) -> torch.Tensor:
        self.cache = copy.deepcopy(self.prompt_cache)
        if not tokens:
            return self.logits
        self.cache, logits = _step(self.model, self._ids(tokens), self.cache)
        return logits

    def step(self, token: int, rows: list[int] | None) -> torch.Tensor:
        self.cache, logits = _step(self.model, self._ids([token]), self.cache)
        return logits

    def _ids(self, ids: list[int]) -> torch.Tensor:
        return torch.tensor([ids], device=self.device)


def decoding_session(model):
    """A prompt, then branches that each continue it: on the fast CPU path where it applies."""
    from passlm.model.fast import fast_model

    fast = fast_model(model)
    return _FastSession(fast) if fast is not None else _ModelSession(model)


def _step(model, input_ids: torch.Tensor, cache):
    """One forward pass continuing ``cache`` (None: a fresh one); the new cache and the last
    position's logits.

    transformers renamed the key-value cache from ``past_key_values`` to ``cache`` (in 5.2x,
    the old name deprecated): speak whichever this version's model takes.
    """
    if "cache" in inspect.signature(model.forward).parameters:
        out = model(input_ids=input_ids, cache=cache, use_cache=True)
        return out.cache, out.logits[0, -1]
    out = model(input_ids=input_ids, past_key_values=cache, use_cache=True)
    return out.past_key_values, out.logits[0, -1]
