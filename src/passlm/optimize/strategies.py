"""Inference strategies: how many pass lists the model proposes per function, and how.

* ``predict``: the greedy list, used as it is: zero extra compiles, may lose to ``-Oz``. With a
  margin (``--margin``, or the one ``passlm model calibrate`` stored with the model), the list
  is used only where its log-probability beats that of the answer ``-Oz`` by the margin, and
  ``-Oz`` elsewhere: the model leaves ``-Oz`` only where it is sure.
* ``oz-backup``: the greedy list, compiled; ``-Oz`` kept where it is better (1 compile).
* ``sample-N``: N unique lists, compiled, the best kept, ``-Oz`` always a candidate. The lists
  come from priority sampling (deterministic, unique, most probable first; the default) or
  are drawn at a temperature with a seed, in the order first drawn.
* ``feedback-K``: the greedy list, then up to K rounds of compiler feedback and a new answer
  (:mod:`passlm.optimize.feedback`); every list proposed is a candidate, as for ``sample-N``.
* ``guided-N``: no model: N lists from the training split's outcome table, each picked after
  compiling the ones before (:mod:`passlm.search.guided`); the best kept, as for ``sample-N``.

Decoding is constrained to valid pass names when the tokenizer keeps them whole (passlm's IR
tokenizer does), so no proposal is an invalid list.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from passlm.data.format import PASSES_CLOSE, PASSES_OPEN, parse_answer, render_prompt
from passlm.errors import InputError, PasslmError
from passlm.llvm.denylist import DenyList
from passlm.llvm.passes import OZ, PassList
from passlm.optimize.prompts import model_prompts, model_renaming

PREDICT, OZ_BACKUP, SAMPLE, FEEDBACK = "predict", "oz-backup", "sample", "feedback"
GUIDED = "guided"
SAMPLINGS = ("priority", "temperature")
_SPEC = re.compile(r"^(predict|oz-backup|(sample|feedback|guided)-(\d+))$")


@dataclass(frozen=True)
class Strategy:
    """A parsed ``--strategy``: its kind, and for sampling how many and how."""

    kind: str
    n: int = 1
    sampling: str = "priority"
    temperature: float = 1.0
    seed: int = 0
    margin: float | None = None  # for predict: nats the greedy list must beat -Oz by

    @property
    def name(self) -> str:
        """``predict``, ``predict (margin 0.6)``, ``oz-backup``, ``sample-10``,
        ``sample-10 (temperature 0.8, seed 0)``, ``feedback-3``."""
        if self.kind in (FEEDBACK, GUIDED):
            return f"{self.kind}-{self.n}"
        if self.kind == PREDICT and self.margin is not None:
            return f"predict (margin {self.margin:g})"
        if self.kind != SAMPLE:
            return self.kind
        if self.sampling == "temperature":
            return f"sample-{self.n} (temperature {self.temperature:g}, seed {self.seed})"
        return f"sample-{self.n}"

    @property
    def needs_model(self) -> bool:
        """False for ``guided-N``, which reads the outcome table instead."""
        return self.kind != GUIDED

    @property
    def predict_only(self) -> bool:
        """True for ``predict``: the list is used even where -Oz is better."""
        return self.kind == PREDICT


def parse_strategy(
    text: str,
    *,
    sampling: str = "priority",
    temperature: float = 1.0,
    seed: int = 0,
    margin: float | None = None,
) -> Strategy:
    """``predict``, ``oz-backup``, ``sample-N``, ``feedback-K`` or ``guided-N``; a clear error
    for the rest. ``margin`` applies to ``predict`` only (None: the greedy list as it is)."""
    m = _SPEC.match(text.strip())
    if m is None:
        raise InputError(
            f"unknown strategy {text!r} "
            "(expected predict, oz-backup, sample-N, feedback-K or guided-N)"
        )
    if sampling not in SAMPLINGS:
        raise InputError(f"unknown sampling {sampling!r} (expected priority or temperature)")
    if not temperature > 0:
        raise InputError(f"temperature must be positive, got {temperature}")
    if margin is not None and math.isnan(margin):
        raise InputError("margin must be a number of nats (inf: never leave -Oz), got nan")
    if m.group(2) is None:
        return Strategy(m.group(1), margin=margin if m.group(1) == PREDICT else None)
    n = int(m.group(3))
    if m.group(2) == FEEDBACK:
        if not 1 <= n <= 10:
            raise InputError(f"feedback-K needs 1 <= K <= 10, got {n}")
        return Strategy(FEEDBACK, n)
    if m.group(2) == GUIDED:
        if not 1 <= n <= 1000:
            raise InputError(f"guided-N needs 1 <= N <= 1000, got {n}")
        return Strategy(GUIDED, n)
    if not 1 <= n <= 1000:
        raise InputError(f"sample-N needs 1 <= N <= 1000, got {n}")
    return Strategy(SAMPLE, n, sampling, temperature, seed)


def constraint_for(tokenizer, denylist: DenyList | None):
    """Constrained decoding for this tokenizer and deny list (None: a foreign tokenizer)."""
    from passlm.model.constrained import PassListConstraint

    banned = denylist.banned_passes if denylist is not None else frozenset()
    try:
        return PassListConstraint(tokenizer, banned)
    except PasslmError:  # a foreign tokenizer: decode freely and drop invalid lists
        return None


def _allowed(lists: list[PassList], denylist: DenyList | None, n: int) -> list[PassList]:
    return [p for p in lists if denylist is None or denylist.allows(p)][:n]


def _beside_oz(lists: list[PassList], denylist: DenyList | None, n: int) -> list[PassList]:
    """The first ``n`` allowed lists other than -Oz, which every strategy compiles anyway."""
    return _allowed([p for p in lists if p.passes != OZ.passes], denylist, n)


class _Candidates:
    """A priority sample's filter for ``sample-N``: a new list, not -Oz (compiled anyway, so it
    takes none of the N places), that the deny list allows; the lists it kept, in order."""

    def __init__(self, denylist: DenyList | None) -> None:
        self.denylist = denylist
        self.lists: list[PassList] = []
        self.seen: set[tuple[str, ...]] = set()

    def __call__(self, sample) -> bool:
        passes = parse_answer(sample.text).passes
        if passes is None or passes.passes in self.seen:
            return False
        if not _beside_oz([passes], self.denylist, 1):
            return False
        self.seen.add(passes.passes)
        self.lists.append(passes)
        return True


@functools.lru_cache(maxsize=2)
def guided_search(path: str | None = None):
    """The guided search over the outcome table at ``path`` (default: the shipped one), read
    once per process."""
    from passlm.search.guided import GuidedSearch
    from passlm.search.outcomes import default_outcomes_path, read_outcomes

    return GuidedSearch(read_outcomes(path or default_outcomes_path()))


def propose_guided(
    irs: Sequence[str],
    strategy: Strategy,
    compiler,
    *,
    denylist: DenyList | None = None,
    outcomes: str | None = None,
) -> list[list[PassList]]:
    """``guided-N``'s lists per function, in the order compiled (it compiles while it picks)."""
    if compiler is None:
        raise PasslmError("guided-N compiles while it proposes: give it a compiler")
    allows = denylist.allows if denylist is not None else None
    return guided_search(outcomes).run(list(irs), strategy.n, compiler, allows=allows)


def unique_lists(lists: Sequence[PassList | None]) -> list[PassList]:
    """The distinct lists, first occurrence first, without the Nones."""
    seen, out = set(), []
    for passes in lists:
        if passes is not None and passes.passes not in seen:
            seen.add(passes.passes)
            out.append(passes)
    return out


def propose(
    model,
    tokenizer,
    irs: Sequence[str],
    strategy: Strategy,
    *,
    batch_size: int = 8,
    denylist: DenyList | None = None,
    compiler=None,
) -> list[list[PassList]]:
    """Candidate lists per function, best first (``[]``: too long for the model, -Oz used).

    Passes the deny list bans outright are never decoded; for ``sample-N`` sampling goes on past
    lists it denies, past repeats and past -Oz (compiled anyway, so it does not take one of the
    N places) until N lists besides -Oz are found (or, priority sampling, 32 samples were
    passed over; temperature sampling, 64 were drawn), so the first k lists of ``sample-N`` are
    exactly ``sample-k``'s.
    ``feedback-K`` and ``guided-N`` compile while they propose: they need ``compiler``
    (``guided-N`` does not use the model).
    """
    if strategy.kind == GUIDED:
        return propose_guided(irs, strategy, compiler, denylist=denylist)
    from passlm.model.generate import PASSES, generate

    if strategy.kind == PREDICT and strategy.margin is not None:
        return [
            sure_or_oz(lists, margin, strategy.margin)
            for lists, margin in greedy_margins(
                model, tokenizer, irs, denylist=denylist, compiler=compiler
            )
        ]
    constraint = constraint_for(tokenizer, denylist)
    if strategy.kind == FEEDBACK:
        from passlm.optimize.feedback import feedback_loop

        if compiler is None:
            raise PasslmError("feedback-K compiles while it proposes: give it a compiler")
        talks = feedback_loop(
            model, tokenizer, irs, strategy.n, compiler,
            constraint=constraint, batch_size=batch_size,
        )  # fmt: skip
        return [_allowed(t.lists, denylist, len(t.lists)) for t in talks]
    # oz-backup compiles predict's list (eval takes it from predict's decoding), so both read
    # predict's prompt: the plain one for a model that reads plain prompts too
    greedy_only = strategy.kind in (PREDICT, OZ_BACKUP)
    prompts = model_prompts(model, irs, compiler, tokenizer, compiles=not greedy_only)
    usable = [i for i, p in enumerate(prompts) if p is not None]
    out: list[list[PassList]] = [[] for _ in irs]  # [] (no prompt): -Oz is used
    if greedy_only:
        greedy = generate(
            model, tokenizer, [prompts[i] for i in usable], until=PASSES,
            batch_size=batch_size, constraint=constraint,
        )  # fmt: skip
        for i, g in zip(usable, greedy, strict=True):
            out[i] = unique_lists([parse_answer(g.text).passes]) if g else []
        return out
    for i in usable:
        out[i] = sample_lists(
            model, tokenizer, prompts[i], strategy, constraint=constraint, denylist=denylist
        )
    return out


def sample_lists(
    model,
    tokenizer,
    prompt: str,
    strategy: Strategy,
    *,
    constraint=None,
    denylist: DenyList | None = None,
) -> list[PassList]:
    """``sample-N``'s lists for one prompt, as :func:`propose` draws them: N new lists besides
    -Oz that ``denylist`` allows (fewer where the sampling stops first), by priority sampling
    or drawn at the strategy's temperature and seed ([] if the prompt does not fit)."""
    from passlm.model.constrained import priority_sample, temperature_sample

    kept = _Candidates(denylist)
    if strategy.sampling == "priority":
        priority_sample(model, tokenizer, prompt, strategy.n, constraint=constraint, keep=kept)
    else:  # each prompt's draws seeded alike, so a function's lists do not depend on others
        temperature_sample(
            model, tokenizer, prompt, strategy.n, temperature=strategy.temperature,
            seed=strategy.seed, constraint=constraint, keep=kept,
        )  # fmt: skip
    return kept.lists


# The answer whose probability the greedy list must beat to be used by a predict with a margin.
_OZ_ANSWER = f"{PASSES_OPEN}{OZ}{PASSES_CLOSE}"


def greedy_margin(
    model, tokenizer, ir: str, *, constraint=None, prompt: str | None = None
) -> tuple[list[PassList], float | None]:
    """``predict``'s list for one function (``[]``: too long for the model) and how many nats
    its log-probability beats that of the answer ``-Oz`` by (None where the list is -Oz or
    none could be read). One function at a time, so -Oz is scored while the prompt is still in
    the fast path's cache (a token or two to run). ``prompt``: the one the model reads for
    ``ir`` (:func:`passlm.optimize.prompts.model_prompts`), by default the plain one (with the
    function's names anonymized for a model that reads them so)."""
    from passlm.model.constrained import answer_logprobs
    from passlm.model.generate import PASSES, generate

    prompt = prompt if prompt is not None else render_prompt(model_renaming(model, ir)(ir))
    (g,) = generate(model, tokenizer, [prompt], until=PASSES, constraint=constraint)
    if g is None:
        return [], None
    passes = parse_answer(g.text).passes
    if passes is None or passes.passes == OZ.passes:
        return unique_lists([passes]), None
    wanted = [_OZ_ANSWER] if g.logprob is not None else [g.text, _OZ_ANSWER]
    scored = answer_logprobs(model, tokenizer, prompt, wanted, constraint=constraint)
    if scored is None:  # cannot happen: generate answered, so the prompt fits
        return [passes], None
    logprob = g.logprob if g.logprob is not None else scored[0]
    return [passes], logprob - scored[-1]


def greedy_margins(
    model,
    tokenizer,
    irs: Sequence[str],
    *,
    denylist: DenyList | None = None,
    progress: Callable[[int, int], None] | None = None,
    compiler=None,
) -> list[tuple[list[PassList], float | None]]:
    """:func:`greedy_margin` for every function, decoded as ``predict`` decodes (the deny
    list's passes never proposed): the greedy lists (``predict``'s, as they are) and the margins
    that decide where a margin keeps them. ``compiler`` makes the -Oz context of a model that
    reads one (``predict`` compiles nothing first: a model that reads plain prompts too gets
    those)."""
    constraint = constraint_for(tokenizer, denylist)
    prompts = model_prompts(model, irs, compiler, tokenizer, compiles=False)
    out: list[tuple[list[PassList], float | None]] = []
    for i, (ir, prompt) in enumerate(zip(irs, prompts, strict=True)):
        if prompt is None:
            out.append(([], None))
        else:
            out.append(greedy_margin(model, tokenizer, ir, constraint=constraint, prompt=prompt))
        if progress is not None:
            progress(i + 1, len(irs))
    return out


def sure_or_oz(lists: list[PassList], margin: float | None, needed: float) -> list[PassList]:
    """``predict``'s list where its margin over -Oz reaches ``needed``, else -Oz."""
    if margin is None or margin >= needed:
        return lists
    return [OZ]
