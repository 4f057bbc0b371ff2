"""Methods side by side on the same functions: the rows of the paper's Tables III and IV.

A method proposes candidate lists per function. Every distinct (function, list) is compiled
once, whichever methods propose it. A method's result on a function is the fewest instructions
among ``-Oz`` and its candidates that compiled (it never loses to ``-Oz``), except for an
*as-is* method (``predict``), whose one list is used as it is: it can lose to ``-Oz``, a list
that fails to compile counts as the unoptimized function, and a function with no proposal
(too long for the model) gets ``-Oz``. Extra compiles are the candidates other than ``-Oz``.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from passlm.evaluate.baselines import PopularLists, Retrieval, random_lists
from passlm.evaluate.metrics import fraction_of, gain_share, improvement, paired, stored_interval
from passlm.evaluate.testset import TestFunction
from passlm.llvm.backend import Compiler, Task
from passlm.llvm.passes import OZ, PassList, parse_pass_list

AUTOTUNER = "autotuner"
BASELINE, MODEL, REFERENCE = "baseline", "model", "reference"
# input-size bins (unoptimized instructions), as the paper's Figure 5
SIZE_BINS = ((1, 10), (11, 25), (26, 50), (51, 100), (101, 250), (251, None))


@dataclass(frozen=True)
class Method:
    """A way of choosing pass lists: candidates per function, best first."""

    name: str
    group: str  # BASELINE, MODEL or REFERENCE
    candidates: Sequence[Sequence[PassList]]
    as_is: bool = False
    seconds: float | None = None  # time spent proposing (model inference, retrieval)


@dataclass(frozen=True)
class MethodResult:
    """What a method got on every function."""

    name: str
    group: str
    counts: list[int]
    compiles: list[int] | None  # extra compiles per function; None: not counted (reference)
    chosen: list[str]  # the list whose result was kept, per function ("-Oz" where -Oz won)
    seconds: float | None = None
    as_is: bool = False

    def row(self, oz: Sequence[int], reference: float) -> dict[str, Any]:
        """The table row: compiles, improved/regressed, saved/lost, overall, share of autotuner."""
        imp = improvement(oz, self.counts)
        spent = sum(self.compiles) if self.compiles is not None else None
        return {
            "method": self.name,
            "group": self.group,
            "extra_compiles": spent,
            "compiles_per_function": spent / len(oz) if spent is not None and oz else None,
            **imp.to_dict(),
            "fraction_of_autotuner": fraction_of(imp.overall, reference),
            "seconds": None if self.seconds is None else round(self.seconds, 2),
        }


def run_methods(
    functions: Sequence[TestFunction], methods: Sequence[Method], compiler: Compiler
) -> tuple[list[MethodResult], dict[str, Any]]:
    """Compile every method's candidates (each distinct one once); results, then the costs."""
    index: dict[tuple[int, tuple[str, ...]], int] = {}
    tasks: list[Task] = []
    for m in methods:
        if len(m.candidates) != len(functions):
            raise ValueError(
                f"{m.name}: {len(m.candidates)} proposals for {len(functions)} functions"
            )
        for i, lists in enumerate(m.candidates):
            for passes in lists:
                key = (i, passes.passes)
                if passes.passes != OZ.passes and key not in index:
                    index[key] = len(tasks)
                    tasks.append(Task(functions[i].ir, passes))
    start = time.perf_counter()
    results = compiler.run_tasks(tasks)
    compile_seconds = time.perf_counter() - start

    def count(i: int, passes: PassList) -> int | None:
        r = results[index[(i, passes.passes)]]
        return r.count if r.ok else None

    out = []
    for m in methods:
        counts, spent, chosen = [], [], []
        for i, (f, lists) in enumerate(zip(functions, m.candidates, strict=True)):
            cands = [p for p in lists if p.passes != OZ.passes]
            if m.as_is:
                spent.append(0)
                if not lists:
                    counts.append(f.oz_count)
                    chosen.append(str(OZ))
                    continue
                first = lists[0]
                c = f.oz_count if first.passes == OZ.passes else count(i, first)
                counts.append(f.o0_count if c is None else c)
                chosen.append(str(first))
                continue
            best, best_list = f.oz_count, str(OZ)
            for p in cands:
                c = count(i, p)
                if c is not None and c < best:
                    best, best_list = c, str(p)
            counts.append(best)
            spent.append(len(cands))
            chosen.append(best_list)
        out.append(MethodResult(m.name, m.group, counts, spent, chosen, m.seconds, m.as_is))
    out.append(
        MethodResult(
            AUTOTUNER, REFERENCE, [f.best_count for f in functions], None,
            [f.best_passes for f in functions],
        )
    )  # fmt: skip
    return out, {"compiles": len(tasks), "compile_seconds": round(compile_seconds, 1)}


def oz_result(functions: Sequence[TestFunction]) -> MethodResult:
    """``-Oz`` itself: the reference every other row is measured against (0 extra compiles)."""
    n = len(functions)
    return MethodResult(str(OZ), BASELINE, [f.oz_count for f in functions], [0] * n, [str(OZ)] * n)


def random_matched(
    functions: Sequence[TestFunction], like: MethodResult, *, seed: int = 0
) -> Method:
    """Random search with exactly the compiles ``like`` spent on each function."""
    assert like.compiles is not None
    return Method(
        f"random search ({like.name} budget)",
        BASELINE,
        [random_lists(f.hash, n, seed=seed) for f, n in zip(functions, like.compiles, strict=True)],
    )


def popular_matched(
    functions: Sequence[TestFunction], like: MethodResult, popular: PopularLists
) -> Method:
    """The most popular training lists, as many per function as ``like`` compiled there."""
    assert like.compiles is not None
    return Method(
        f"popular lists ({like.name} budget)",
        BASELINE,
        [popular.propose(n) for n in like.compiles],
    )


def sampling_matched(
    functions: Sequence[TestFunction], like: MethodResult, samples: Sequence[Sequence[PassList]]
) -> Method:
    """A model's own samples per function (most probable first; ``-Oz``, compiled anyway, left
    out), as many per function as ``like`` compiled there: plain sampling at ``like``'s
    compiles, function by function (fewer where a function has fewer samples)."""
    assert like.compiles is not None
    if len(samples) != len(functions):
        raise ValueError(f"{len(samples)} sample lists for {len(functions)} functions")
    return Method(
        f"sampling ({like.name} budget)",
        MODEL,
        [
            [p for p in lists if p.passes != OZ.passes][:n]
            for lists, n in zip(samples, like.compiles, strict=True)
        ],
    )


def with_matched_baselines(
    functions: Sequence[TestFunction],
    methods: Sequence[Method],
    compiler: Compiler,
    *,
    seed: int = 0,
    popular: PopularLists | None = None,
    samples: Sequence[Sequence[PassList]] | None = None,
) -> tuple[list[MethodResult], dict[str, Any]]:
    """Every method, then random search (and, given ``popular``, the most popular training
    lists) with exactly the compiles of each method that picks the best of its lists, and,
    given a model's ``samples``, each ``feedback-K`` row against that model's plain sampling at
    its compiles; ordered baselines, model strategies (each followed by its matched baselines),
    the autotuner last; and the compile costs of both runs."""
    results, costs = run_methods(functions, methods, compiler)
    best_of = [r for r in results if r.compiles is not None and not r.as_is]
    matched = [random_matched(functions, r, seed=seed) for r in best_of]
    if popular is not None and len(popular):
        matched += [popular_matched(functions, r, popular) for r in best_of if r.group == MODEL]
    if samples is not None:
        matched += [
            sampling_matched(functions, r, samples)
            for r in best_of
            if r.group == MODEL and r.name.startswith("feedback-")
        ]
    randoms, random_costs = run_methods(functions, matched, compiler)
    ordered = _ordered([*results[:-1], *randoms[:-1], results[-1]])
    return ordered, {
        "compiles": costs["compiles"] + random_costs["compiles"],
        "compile_seconds": round(costs["compile_seconds"] + random_costs["compile_seconds"], 1),
    }


MATCHED = ("random search", "popular lists", "sampling")  # the baselines given a method's compiles


def matched_comparisons(
    counts: Mapping[str, Sequence[int]],
    oz: Sequence[int],
    tuner: Sequence[int],
    *,
    resamples: int = 2000,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Each method (``counts``: per-function counts by name) against the baselines given its
    compiles (random search, the popular lists, plain sampling), paired over the same
    functions: the difference of their shares of the autotuner's gain with its 95% bootstrap
    interval, and on how many functions each one is ahead of the other. A method is
    significantly ahead where the interval lies above zero, which unpaired intervals of the two
    shares, overlapping, can hide."""
    out = []
    for name, mine in counts.items():
        share = gain_share(oz, mine, tuner)
        for kind in MATCHED:
            theirs = counts.get(f"{kind} ({name} budget)")
            if theirs is None or share is None:
                continue  # no such baseline, or the autotuner gained nothing: no shares
            against = paired(oz, mine, theirs, tuner, resamples=resamples, seed=seed)
            out.append({
                "method": name, "baseline": f"{kind} ({name} budget)",
                "difference": share - gain_share(oz, theirs, tuner),
                "interval": stored_interval(against.interval),
                "ahead": against.ahead,
                "behind": against.behind,
            })  # fmt: skip
    return out


def _ordered(results: list[MethodResult]) -> list[MethodResult]:
    """Baselines, then the model's strategies, each followed by random search, the popular
    lists and plain sampling at its budget; the autotuner last."""
    matches = {r.name: r for r in results if r.name.startswith(MATCHED)}
    matched = set(matches)
    out = []
    for group in (BASELINE, MODEL):
        for r in results:
            if r.group == group and r.name not in matched:
                out.append(r)
                for prefix in MATCHED:
                    match = matches.pop(f"{prefix} ({r.name} budget)", None)
                    if match is not None:
                        out.append(match)
    return [*out, *matches.values(), *(r for r in results if r.group == REFERENCE)]


def retrieval_method(functions: Sequence[TestFunction], retrieval: Retrieval, k: int) -> Method:
    """The best lists of the ``k`` nearest training functions, compiled, best kept."""
    start = time.perf_counter()
    lists = [retrieval.propose(f.ir, k) for f in functions]
    return Method(f"retrieval (k={k})", BASELINE, lists, seconds=time.perf_counter() - start)


def model_methods(
    model,
    tokenizer,
    functions: Sequence[TestFunction],
    strategies: Sequence[str],
    *,
    denylist=None,
    compiler: Compiler | None = None,
    progress: Callable[[int, int], None] | None = None,
    margin: float | None = None,
) -> list[Method]:
    """A method per strategy (predict, oz-backup, sample-N, feedback-K, guided-N); with a
    ``margin``, ``predict`` gives two rows: the greedy list as it is, and ``predict (margin
    m)``, which leaves -Oz only where the model is that sure (:func:`~passlm.optimize.
    strategies.greedy_margin`).

    Priority sampling gives the same first k lists whatever N is asked, so the widest N is
    sampled once per function and sample-k takes its first k; likewise guided-k is the first k
    picks of the widest guided-N. feedback-K and guided-N need ``compiler``.
    """
    from passlm.optimize.strategies import (
        FEEDBACK,
        GUIDED,
        PREDICT,
        SAMPLE,
        greedy_margins,
        parse_strategy,
        propose,
        sure_or_oz,
    )

    specs = [parse_strategy(s) for s in strategies]
    irs = [f.ir for f in functions]
    methods: list[Method] = []
    greedy: list[list[PassList]] | None = None
    sure: list[list[PassList]] | None = None  # predict with the margin
    greedy_seconds = 0.0
    if any(s.kind in (PREDICT, "oz-backup") for s in specs):
        start = time.perf_counter()
        if margin is not None and any(s.kind == PREDICT for s in specs):
            # one decoding gives both: the greedy lists and where the margin keeps them
            scored = greedy_margins(model, tokenizer, irs, denylist=denylist, compiler=compiler)
            greedy = [lists for lists, _ in scored]
            sure = [sure_or_oz(lists, m, margin) for lists, m in scored]
        else:
            greedy = propose(
                model, tokenizer, irs, parse_strategy(PREDICT),
                denylist=denylist, compiler=compiler,
            )  # fmt: skip
        greedy_seconds = time.perf_counter() - start
    runs: dict[str, tuple[int, list[list[PassList]], float]] = {}  # kind: widest N, lists, s
    for kind in (SAMPLE, GUIDED):
        widest = max((s.n for s in specs if s.kind == kind), default=0)
        if not widest:
            continue
        spec = parse_strategy(f"{kind}-{widest}")
        start = time.perf_counter()
        lists: list[list[PassList]] = []
        if kind == GUIDED:  # every function in step: one batch of compiles per pick
            lists = propose(None, None, irs, spec, denylist=denylist, compiler=compiler)
        else:
            for i, ir in enumerate(irs):
                lists += propose(model, tokenizer, [ir], spec, denylist=denylist, compiler=compiler)
                if progress is not None:
                    progress(i + 1, len(irs))
        runs[kind] = (widest, lists, time.perf_counter() - start)
    for s in specs:
        if s.kind in runs:  # the narrower ones are prefixes of the same run
            widest, lists, seconds = runs[s.kind]
            name = f"{s.name} (no model)" if s.kind == GUIDED else s.name
            methods.append(
                Method(name, MODEL, [c[: s.n] for c in lists],
                       seconds=seconds if s.n == widest else None)
            )  # fmt: skip
        elif s.kind == FEEDBACK:
            start = time.perf_counter()
            lists = propose(model, tokenizer, irs, s, denylist=denylist, compiler=compiler)
            methods.append(Method(s.name, MODEL, lists, seconds=time.perf_counter() - start))
        else:
            assert greedy is not None
            methods.append(
                Method(s.name, MODEL, greedy, as_is=s.kind == PREDICT, seconds=greedy_seconds)
            )
            if s.kind == PREDICT and sure is not None:
                name = parse_strategy(PREDICT, margin=margin).name
                methods.append(Method(name, MODEL, sure, as_is=True, seconds=greedy_seconds))
    return methods


# ------------------------------------------------------------------------------ breakdowns


def size_bin(o0_count: int) -> str:
    """The Figure 5 bin of a function's unoptimized size."""
    for lo, hi in SIZE_BINS:
        if hi is None or o0_count <= hi:
            return f"{lo}+" if hi is None else f"{lo}-{hi}"
    raise AssertionError  # the last bin is open


def breakdown(
    functions: Sequence[TestFunction],
    results: Sequence[MethodResult],
    key: Callable[[TestFunction], str],
    order: Sequence[str] | None = None,
) -> dict[str, dict[str, Any]]:
    """Per group of functions (code base, size bin): each method's overall improvement."""
    groups: dict[str, list[int]] = {}
    for i, f in enumerate(functions):
        groups.setdefault(key(f), []).append(i)
    names = list(order) if order is not None else sorted(groups)
    out = {}
    for g in names:
        idx = groups.get(g)
        if not idx:
            continue
        oz = [functions[i].oz_count for i in idx]
        out[g] = {
            "functions": len(idx),
            "oz_instructions": sum(oz),
            "overall": {
                r.name: improvement(oz, [r.counts[i] for i in idx]).overall for r in results
            },
        }
    return out


def pass_statistics(lists: Sequence[str]) -> dict[str, Any]:
    """Pass frequency and list-length histogram of chosen lists (Figure 3)."""
    parsed = [parse_pass_list(p) for p in lists]
    freq: Counter[str] = Counter()
    for p in parsed:
        freq.update(p.passes)
    lengths = Counter(len(p.passes) for p in parsed)
    return {
        "frequency": dict(freq.most_common()),
        "lengths": {str(k): lengths[k] for k in sorted(lengths)},
    }
