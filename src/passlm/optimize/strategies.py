"""Inference strategies: how many pass lists the model proposes per function, and how.

* ``predict``: the greedy list, used as it is: zero extra compiles, may lose to ``-Oz``.
* ``oz-backup``: the greedy list, compiled; ``-Oz`` kept where it is better (1 compile).
* ``sample-N``: N unique lists, compiled, the best kept, ``-Oz`` always a candidate. The lists
  come from priority sampling (deterministic, unique, most probable first; the default) or
  from temperature sampling with a seed.
* ``feedback-K``: the greedy list, then up to K rounds of compiler feedback and a new answer
  (:mod:`passlm.optimize.feedback`); every list proposed is a candidate, as for ``sample-N``.
* ``guided-N``: no model: N lists from the training split's outcome table, each picked after
  compiling the ones before (:mod:`passlm.search.guided`); the best kept, as for ``sample-N``.

Decoding is constrained to valid pass names when the tokenizer keeps them whole (passlm's IR
tokenizer does), so no proposal is an invalid list.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass

from passlm.data.format import parse_answer, render_prompt
from passlm.errors import InputError, PasslmError
from passlm.llvm.denylist import DenyList
from passlm.llvm.passes import PassList
from passlm.optimize.pipeline import OZ

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

    @property
    def name(self) -> str:
        """``predict``, ``oz-backup``, ``sample-10``, ``sample-10 (temperature 0.8)``, ``feedback-3``."""
        if self.kind in (FEEDBACK, GUIDED):
            return f"{self.kind}-{self.n}"
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
    text: str, *, sampling: str = "priority", temperature: float = 1.0, seed: int = 0
) -> Strategy:
    """``predict``, ``oz-backup``, ``sample-N``, ``feedback-K`` or ``guided-N``; a clear error
    for the rest."""
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
    if m.group(2) is None:
        return Strategy(m.group(1))
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

    Passes the deny list bans outright are never decoded; for ``sample-N`` a few extra samples
    stand in for lists it denies and for -Oz (compiled anyway, so it does not take one of the
    N places), so N lists besides -Oz are compiled where the model has them.
    ``feedback-K`` and ``guided-N`` compile while they propose: they need ``compiler``
    (``guided-N`` does not use the model).
    """
    if strategy.kind == GUIDED:
        return propose_guided(irs, strategy, compiler, denylist=denylist)
    from passlm.model.constrained import priority_sample
    from passlm.model.generate import PASSES, generate

    constraint = constraint_for(tokenizer, denylist)
    prompts = [render_prompt(ir) for ir in irs]
    if strategy.kind in (PREDICT, OZ_BACKUP):
        greedy = generate(
            model, tokenizer, prompts, until=PASSES, batch_size=batch_size, constraint=constraint
        )
        return [unique_lists([parse_answer(g.text).passes]) if g else [] for g in greedy]
    if strategy.kind == FEEDBACK:
        from passlm.optimize.feedback import feedback_loop

        if compiler is None:
            raise PasslmError("feedback-K compiles while it proposes: give it a compiler")
        talks = feedback_loop(
            model, tokenizer, irs, strategy.n, compiler,
            constraint=constraint, batch_size=batch_size,
        )  # fmt: skip
        return [_allowed(t.lists, denylist, len(t.lists)) for t in talks]
    if strategy.sampling == "priority":
        extra = strategy.n + 1 + max(2, strategy.n // 4)
        return [
            _beside_oz(
                unique_lists(
                    [
                        parse_answer(s.text).passes
                        for s in priority_sample(model, tokenizer, p, extra, constraint=constraint)
                    ]
                ),
                denylist,
                strategy.n,
            )
            for p in prompts
        ]
    repeated = [p for p in prompts for _ in range(strategy.n)]
    drawn = generate(
        model,
        tokenizer,
        repeated,
        until=PASSES,
        batch_size=batch_size,
        sample=True,
        temperature=strategy.temperature,
        seed=strategy.seed,
        constraint=constraint,
    )
    out = []
    for i in range(len(prompts)):
        mine = drawn[i * strategy.n : (i + 1) * strategy.n]
        lists = unique_lists([parse_answer(g.text).passes for g in mine if g is not None])
        out.append(_beside_oz(lists, denylist, strategy.n))
    return out
