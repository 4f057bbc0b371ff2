"""The autotuner (paper §III-B): random search from -Oz, minimization, broadcast.

Per function, the search is seeded by (seed, function hash) and proposes rounds of lists:
``-Oz`` first, then fresh random lists mixed with mutations of the best lists found so far.
Every compile goes through the :class:`~passlm.search.evaluator.Evaluator`, so the sequence of
proposals depends only on compile results, which the store replays: a killed run re-run with
the same arguments reaches the same state without compiling anything twice, and the results do
not depend on the number of workers or on how functions are batched.

Ranking: fewer instructions, then the shorter list, then ``-Oz`` first, then the list's text.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from passlm.errors import PasslmError
from passlm.llvm.passes import OZ, PassList
from passlm.search import space
from passlm.search.evaluator import Evaluator, Function
from passlm.search.store import Trial

ELITE = 5  # lists that mutations start from


@dataclass(frozen=True)
class TuneConfig:
    """The autotuner's budget and moves."""

    trials: int = 1000  # unique pass lists per function in the random search, -Oz included
    seconds: float | None = None  # optional per-function budget of compile seconds
    max_length: int = 8  # longest list drawn or grown by mutation
    round_size: int = 50  # lists proposed per function per round
    mutate_fraction: float = 0.5  # share of a round that mutates the elite instead of drawing
    minimize: bool = True  # remove passes from the best list while the count does not grow
    broadcast: int | None = 100  # most frequent best lists tried on every function (None: all)
    seed: int = 0
    block: int = 64  # functions searched together (batching only; results do not depend on it)

    def __post_init__(self) -> None:
        if self.trials < 1:
            raise PasslmError(f"trials must be at least 1, got {self.trials}")
        if self.seconds is not None and self.seconds <= 0:
            raise PasslmError(f"seconds must be positive, got {self.seconds}")
        if not 1 <= self.max_length <= 64:
            raise PasslmError(f"max_length must be in 1..64, got {self.max_length}")
        if self.round_size < 1 or self.block < 1:
            raise PasslmError("round_size and block must be at least 1")
        if not 0.0 <= self.mutate_fraction <= 1.0:
            raise PasslmError(f"mutate_fraction must be in [0, 1], got {self.mutate_fraction}")
        if self.broadcast is not None and self.broadcast < 0:
            raise PasslmError(f"broadcast must be >= 0, got {self.broadcast}")


def rank(passes: PassList, count: int) -> tuple[int, int, bool, str]:
    """Sort key of a successful trial: lower is better."""
    return (count, len(passes), passes != OZ, str(passes))


@dataclass
class FunctionSearch:
    """The search state of one function."""

    fn: Function
    config: TuneConfig
    tried: dict[str, Trial] = field(default_factory=dict)
    lists: dict[str, PassList] = field(default_factory=dict)
    best: PassList | None = None
    best_count: int | None = None
    seconds: float = 0.0
    exhausted: bool = False
    minimized: bool = False

    def __post_init__(self) -> None:
        self.rng = random.Random(f"{self.config.seed}:{self.fn.hash}")

    @property
    def searching(self) -> bool:
        """Whether the random search wants another round."""
        c = self.config
        if self.exhausted or len(self.tried) >= c.trials:
            return False
        return c.seconds is None or self.seconds < c.seconds

    def elite(self) -> list[PassList]:
        """The best few successful lists."""
        ok = [(rank(self.lists[k], t.count), k) for k, t in self.tried.items() if t.ok]
        return [self.lists[k] for _, k in sorted(ok)[:ELITE]]  # type: ignore[arg-type]

    def propose(self) -> list[PassList]:
        """The next round of unseen lists (``-Oz`` leads the first)."""
        c = self.config
        want = min(c.round_size, c.trials - len(self.tried))
        out: list[PassList] = [] if self.tried else [OZ]
        seen = set(self.tried) | {str(p) for p in out}
        elite = self.elite()
        for _ in range(want * 20):  # bounded: tiny spaces run out of unseen lists
            if len(out) >= want:
                break
            if elite and self.rng.random() < c.mutate_fraction:
                cand = space.mutate(self.rng.choice(elite), self.rng, c.max_length)
            else:
                cand = space.random_list(self.rng, c.max_length)
            key = str(cand)
            if key not in seen:
                seen.add(key)
                out.append(cand)
        if not out:
            self.exhausted = True
        return out

    def record(self, passes: PassList, trial: Trial) -> None:
        """Take one result into account."""
        key = str(passes)
        if key in self.tried:
            return
        self.tried[key] = trial
        self.lists[key] = passes
        self.seconds += trial.seconds
        if trial.ok and (
            self.best is None or rank(passes, trial.count) < rank(self.best, self.best_count)  # type: ignore[arg-type]
        ):
            self.best, self.best_count = passes, trial.count

    @property
    def oz_count(self) -> int | None:
        """The -Oz count, if -Oz compiled."""
        trial = self.tried.get(str(OZ))
        return trial.count if trial is not None and trial.ok else None

    @property
    def errors(self) -> Counter[str]:
        """Failed trials by error kind."""
        return Counter(t.error_kind for t in self.tried.values() if not t.ok)  # type: ignore[misc]


ProgressFn = Callable[[str, int, int], None]


def _noop(phase: str, done: int, total: int) -> None:
    pass


@dataclass
class TuneStats:
    """What a tuning run cost."""

    wall_seconds: float = 0.0
    phase_seconds: dict[str, float] = field(default_factory=dict)
    broadcast_lists: int = 0


class Autotuner:
    """Runs the three phases over a set of functions with one evaluator."""

    def __init__(self, evaluator: Evaluator, config: TuneConfig) -> None:
        self.evaluator = evaluator
        self.config = config
        self.stats = TuneStats()

    def _evaluate(
        self, searches: Sequence[FunctionSearch], proposals: list[list[PassList]]
    ) -> None:
        requests = [(s.fn, p) for s, lists in zip(searches, proposals, strict=True) for p in lists]
        trials = iter(self.evaluator.evaluate(requests))
        for s, lists in zip(searches, proposals, strict=True):
            for p in lists:
                s.record(p, next(trials))

    def random_search(self, searches: Sequence[FunctionSearch]) -> None:
        """Search every function of a block until its budget is spent."""
        active = [s for s in searches if s.searching]
        while active:
            proposals = [s.propose() for s in active]
            self._evaluate(active, proposals)
            active = [s for s in active if s.searching]

    def minimize(self, searches: Sequence[FunctionSearch]) -> None:
        """Drop passes from each best list while the count does not grow (shorter wins ties)."""
        active = [s for s in searches if s.best is not None and not s.minimized]
        while active:
            proposals = [space.removals(s.best) for s in active]  # type: ignore[arg-type]
            before = [s.best for s in active]
            self._evaluate(active, proposals)
            still = []
            for s, prev, tried in zip(active, before, proposals, strict=True):
                # record() has already moved best to the best-ranked removal, if one beat it
                if s.best is prev or not tried:
                    s.minimized = True
                else:
                    still.append(s)
            active = still

    def broadcast(self, searches: Sequence[FunctionSearch], progress: ProgressFn) -> None:
        """Try the most frequent best lists of all functions on every function."""
        freq = Counter(str(s.best) for s in searches if s.best is not None)
        lists = {str(s.best): s.best for s in searches if s.best is not None}
        chosen = sorted(freq, key=lambda k: (-freq[k], k))
        if self.config.broadcast is not None:
            chosen = chosen[: self.config.broadcast]
        self.stats.broadcast_lists = len(chosen)
        block = max(1, self.config.block * self.config.round_size // max(1, len(chosen)))
        for start in range(0, len(searches), block):
            part = searches[start : start + block]
            self._evaluate(part, [[lists[k] for k in chosen if k not in s.tried] for s in part])
            progress("broadcast", min(start + block, len(searches)), len(searches))

    def run(
        self, functions: Sequence[Function], progress: ProgressFn = _noop
    ) -> list[FunctionSearch]:
        """Tune every function; returns their final search states, in input order."""
        start = time.perf_counter()
        searches = [FunctionSearch(fn, self.config) for fn in functions]
        t0 = time.perf_counter()
        for i in range(0, len(searches), self.config.block):
            block = searches[i : i + self.config.block]
            self.random_search(block)
            if self.config.minimize:
                self.minimize(block)
            progress("search", min(i + self.config.block, len(searches)), len(searches))
        t1 = time.perf_counter()
        if self.config.broadcast != 0:
            self.broadcast(searches, progress)
        t2 = time.perf_counter()
        self.stats.phase_seconds = {"search+minimize": t1 - t0, "broadcast": t2 - t1}
        self.stats.wall_seconds = time.perf_counter() - start
        return searches
