"""One evaluation of a model on a test set: every method, IR quality, breakdowns, figures."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from passlm import __version__
from passlm.evaluate import plots
from passlm.evaluate.baselines import PopularLists, Retrieval
from passlm.evaluate.compare import (
    AUTOTUNER,
    SIZE_BINS,
    Method,
    MethodResult,
    breakdown,
    matched_comparisons,
    model_methods,
    oz_result,
    pass_statistics,
    retrieval_method,
    size_bin,
    with_matched_baselines,
)
from passlm.evaluate.metrics import fraction_interval, stored_interval
from passlm.evaluate.model_eval import EvalFunction, evaluate_model, summarize
from passlm.evaluate.quality import taxonomy
from passlm.evaluate.testset import TestSet
from passlm.llvm.backend import Compiler
from passlm.llvm.cache import CachedCompiler

Status = Callable[[str, int, int], None]


def _noop(what: str, done: int, total: int) -> None:
    pass


def run_suite(
    test: TestSet,
    model,
    tokenizer,
    compiler: Compiler,
    *,
    model_name: str,
    strategies: Sequence[str],
    retrieval: Retrieval | None = None,
    retrieval_k: Sequence[int] = (1, 10),
    popular: PopularLists | None = None,
    ir_functions: int = 100,
    denylist=None,
    seed: int = 0,
    command: str = "",
    status: Status = _noop,
    margin: float | None = None,
) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The report (a JSON-able dict) and its figures (PNG bytes by file name); ``margin``:
    ``predict``'s, for a second predict row (see :func:`~passlm.evaluate.compare.model_methods`)."""
    functions = test.functions
    # strategies that compile while they propose (guided-N, feedback-K, the -Oz context) ask
    # again for what they compiled when their candidates are compared: answered from memory
    compiler = CachedCompiler(compiler)
    status("model proposals", 0, len(functions))
    methods: list[Method] = model_methods(
        model, tokenizer, functions, strategies, denylist=denylist, compiler=compiler,
        progress=lambda done, total: status("model proposals", done, total), margin=margin,
    )  # fmt: skip
    notes = []
    if retrieval is not None and len(retrieval):
        methods += [retrieval_method(functions, retrieval, k) for k in retrieval_k]
    else:
        notes.append("retrieval baseline left out: no training set to retrieve from")
    if popular is None or not len(popular):
        notes.append("popular-lists baseline left out: no training lists")
    status("compiling", 0, 1)
    reused = compiler.reused
    results, costs = with_matched_baselines(
        functions, methods, compiler, seed=seed, popular=popular
    )
    # of costs["compiles"], those compiled earlier in the run (by guided-N, feedback-K, ...)
    costs["from_memory"] = compiler.reused - reused
    results = [oz_result(functions), *results]

    oz = [f.oz_count for f in functions]
    tuner = next(r for r in results if r.name == AUTOTUNER)
    reference = tuner.row(oz, 0.0)["overall"]
    rows = [r.row(oz, reference) for r in results]

    status("generated IR", 0, 1)
    quality = _quality(model, tokenizer, spread(functions, ir_functions), compiler)

    plotted = _plotted(results)
    by_source = breakdown(functions, results, lambda f: f.source)
    bins = [f"{lo}+" if hi is None else f"{lo}-{hi}" for lo, hi in SIZE_BINS]
    by_size = breakdown(functions, results, lambda f: size_bin(f.o0_count), order=bins)
    passes = {r.name: pass_statistics(r.chosen) for r in results if r.name in plotted}
    report = {
        "title": f"passlm evaluation: {model_name}",
        "model": model_name,
        "created": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "passlm_version": __version__,
        "llvm_version": compiler.version,
        "command": command,
        "seed": seed,
        "test_set": {
            "functions": len(functions),
            "splits": test.splits,
            "sources": test.sources,
            "repeated": test.repeated,
            "seen_in_training": test.seen_in_training,
            "training_set": test.training_set,
        },
        "rows": rows,
        "costs": costs,
        "quality": quality,
        "plotted_methods": plotted,
        "by_source": by_source,
        "by_size": by_size,
        "passes": passes,
        "notes": notes,
        "functions": [
            {
                "hash": f.hash, "function": f.function, "source": f.source,
                "o0_count": f.o0_count, "oz_count": f.oz_count,
                **{r.name: {"count": r.counts[i], "passes": r.chosen[i]} for r in results},
            }
            for i, f in enumerate(functions)
        ],
    }  # fmt: skip
    add_intervals(report)
    return report, figures_of(report)


def add_intervals(report: dict[str, Any], *, resamples: int = 2000, seed: int = 0) -> None:
    """Give each row of ``report`` a 95% bootstrap interval of its fraction of the autotuner's
    gain (``fraction_interval``, in place), from the report's per-function counts alone, so a
    stored report.json gets them too (``passlm report``); and ``comparisons``: each method
    against the baselines at its compiles, the difference of shares with its interval."""
    functions = report["functions"]
    if not functions or AUTOTUNER not in functions[0]:
        return
    oz = [f["oz_count"] for f in functions]
    tuner = [f[AUTOTUNER]["count"] for f in functions]
    counts: dict[str, list[int]] = {}  # per method with a share, for the comparisons too
    for row in report["rows"]:
        name = row["method"]
        if name not in functions[0] or row.get("fraction_of_autotuner") is None:
            row["fraction_interval"] = None
            continue
        counts[name] = [f[name]["count"] for f in functions]
        got = fraction_interval(oz, counts[name], tuner, resamples=resamples, seed=seed)
        row["fraction_interval"] = stored_interval(got)
    report["comparisons"] = matched_comparisons(counts, oz, tuner, resamples=resamples, seed=seed)
    report["interval"] = {"level": 0.95, "resamples": resamples, "seed": seed,
                          "method": "percentile bootstrap over functions, paired with the "
                                    "autotuner"}  # fmt: skip


def figures_of(report: dict[str, Any]) -> dict[str, bytes]:
    """The report's figures, drawn from the report alone (so a stored report.json can be
    drawn again after the plotting code changes)."""
    title = f"{report['test_set']['functions']:,} functions"
    plotted = report["plotted_methods"]
    return {
        "overall.png": plots.overall(report["rows"], f"Improvement over -Oz on {title}"),
        "by_source.png": plots.grouped(report["by_source"], plotted, "By code base", "code base"),
        "by_size.png": plots.grouped(
            report["by_size"], plotted, "By input size", "unoptimized instructions"
        ),
        "pass_frequency.png": plots.pass_frequency(report["passes"]),
        "list_length.png": plots.list_length(report["passes"]),
    }


def spread(items: Sequence, n: int) -> list:
    """``n`` items evenly spaced over ``items`` (all of them if there are no more than ``n``),
    so a subset of a test set sorted by code base still covers every code base."""
    if n >= len(items):
        return list(items)
    return [items[i * len(items) // n] for i in range(max(0, n))]


def _plotted(results: Sequence[MethodResult]) -> list[str]:
    """The few methods the breakdown figures show: the autotuner, the model's greedy and its
    widest sampling, and the best retrieval."""
    names = [r.name for r in results]
    model = [r.name for r in results if r.group == "model"]
    retrieval = [n for n in names if n.startswith("retrieval")]
    chosen = [AUTOTUNER]
    if model:
        chosen.append(model[0])
        if model[-1] != model[0]:
            chosen.append(model[-1])
    if retrieval:
        chosen.append(retrieval[-1])
    return chosen


def _quality(model, tokenizer, functions, compiler: Compiler) -> dict[str, Any]:
    """Greedy full answers on ``functions``: IR parses, exact, BLEU, count errors, Table V."""
    if not functions:
        return {"ir_functions": 0}
    evals = [
        EvalFunction(f.hash, f.function, f.source, "test", f.ir, f.o0_count, f.oz_count,
                     f.best_count)
        for f in functions
    ]  # fmt: skip
    outcomes = evaluate_model(model, tokenizer, evals, compiler, ir_functions=len(evals))
    summary = summarize(outcomes)
    failed = [o.ir_error for o in outcomes if o.ir_generated is not None and not o.ir_parses]
    return {
        key: summary[key]
        for key in ("ir_functions", "ir_complete_pct", "ir_parses_pct", "ir_exact_pct",
                    "ir_bleu", "count_mape_before", "count_mape_after", "valid_pass_lists_pct")
    } | {"taxonomy": taxonomy(failed), "failed": len(failed)}  # fmt: skip
