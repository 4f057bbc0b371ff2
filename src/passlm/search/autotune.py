"""``passlm autotune``: tune every function of a corpus and write the tuned data set."""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from passlm.corpus.store import CorpusFunction, read_corpus
from passlm.errors import InputError, PasslmError
from passlm.llvm.backend import Compiler, Task
from passlm.llvm.passes import OZ
from passlm.search.evaluator import Evaluator, Function
from passlm.search.store import TrialStore
from passlm.search.tuned import TunedFunction, write_tuned
from passlm.search.tuner import Autotuner, FunctionSearch, ProgressFn, TuneConfig, _noop


def default_store_path(output: str | Path) -> Path:
    """Where the result store of ``output`` lives unless told otherwise."""
    output = Path(output)
    return output.with_name(output.name + ".store.sqlite")


def select(functions: Sequence[CorpusFunction], splits: Sequence[str] | None, limit: int | None):
    """The corpus functions to tune: some splits, at most ``limit`` (deterministically)."""
    chosen = [f for f in functions if splits is None or f.split in splits]
    return chosen[:limit] if limit is not None else chosen


def _final_rows(
    searches: list[FunctionSearch], corpus: Sequence[CorpusFunction], compiler: Compiler
) -> tuple[list[TunedFunction], list[dict]]:
    """Compile every function's best list once more for its optimized IR.

    A few pass orders are not deterministic in LLVM 19 (seen: ``-O1 -gvn-sink`` giving 54 and
    57 instructions on the same function): a best list whose replay disagrees with the store
    is not a label to teach or a result to promise. Such functions fall back to ``-Oz`` and are
    listed in the second return value.
    """
    done = [(s, c) for s, c in zip(searches, corpus, strict=True) if s.best is not None]
    results = compiler.run_tasks([Task(c.ir, s.best, want_ir=True) for s, c in done])  # type: ignore[arg-type]
    unreproducible = [
        i
        for i, ((s, _), r) in enumerate(zip(done, results, strict=True))
        if not r.ok or r.count != s.best_count
    ]
    fallback = compiler.run_tasks([Task(done[i][1].ir, OZ, want_ir=True) for i in unreproducible])
    replaced: dict[int, tuple[str, int, str]] = {}
    notes = []
    for i, r in zip(unreproducible, fallback, strict=True):
        s, c = done[i]
        if not r.ok or r.count != s.oz_count:
            raise PasslmError(
                f"{c.function} ({c.hash}): -Oz gave {r.count or r.error}, the store says "
                f"{s.oz_count}; is the store from another LLVM build?"
            )
        replaced[i] = (str(OZ), r.count, r.ir or "")  # type: ignore[arg-type]
        notes.append(
            {
                "function": c.function,
                "hash": c.hash,
                "passes": str(s.best),
                "store_count": s.best_count,
                "replay": results[i].count if results[i].ok else results[i].error,
            }
        )
    rows = []
    for i, ((s, c), r) in enumerate(zip(done, results, strict=True)):
        passes, count, ir = replaced.get(i, (str(s.best), s.best_count, r.ir or ""))
        kinds = ",".join(f"{k}:{n}" for k, n in sorted(s.errors.items()))
        rows.append(
            TunedFunction(
                hash=c.hash,
                function=c.function,
                source=c.source,
                file=c.file,
                split=c.split,
                ir=c.ir,
                o0_count=c.instcount,
                oz_count=s.oz_count if s.oz_count is not None else -1,
                best_passes=passes,
                best_count=count,
                optimized_ir=ir,
                trials=len(s.tried),
                errors=sum(s.errors.values()),
                error_kinds=kinds,
            )
        )
    return rows, notes


def autotune(
    corpus_path: str | Path,
    output: str | Path,
    compiler: Compiler,
    config: TuneConfig,
    *,
    store_path: str | Path | None = None,
    splits: Sequence[str] | None = None,
    limit: int | None = None,
    executor: str = "local",
    progress: ProgressFn = _noop,
) -> tuple[list[TunedFunction], dict]:
    """Tune a corpus; write the tuned Parquet file to ``output`` and return its rows and meta."""
    corpus, corpus_meta = read_corpus(corpus_path)
    chosen = select(corpus, splits, limit)
    if not chosen:
        raise InputError(f"{corpus_path}: no functions to tune (splits: {splits or 'all'})")
    if corpus_meta.get("llvm_version") not in (None, compiler.version):
        raise InputError(
            f"{corpus_path} was built with LLVM {corpus_meta.get('llvm_version')}, "
            f"this compiler is LLVM {compiler.version}"
        )
    store = TrialStore(store_path or default_store_path(output), compiler.version)
    try:
        evaluator = Evaluator(compiler, store)
        tuner = Autotuner(evaluator, config)
        start = time.perf_counter()
        searches = tuner.run([Function(c.hash, c.ir) for c in chosen], progress)
        rows, unreproducible = _final_rows(searches, chosen, compiler)
        wall = time.perf_counter() - start
        meta = {
            "llvm_version": compiler.version,
            "corpus": str(corpus_path),
            "corpus_meta": corpus_meta,
            "config": asdict(config),
            "splits": list(splits) if splits else None,
            "limit": limit,
            "command": " ".join(["passlm", *sys.argv[1:]]),
            "compute": {
                "executor": executor,
                "wall_seconds": round(wall, 1),
                "compiles_this_run": evaluator.compiled,
                "answered_by_store": evaluator.cached,
                "trials_total": sum(r.trials for r in rows),
                "compile_seconds_this_run": round(evaluator.compile_seconds, 1),
                "phase_seconds": {k: round(v, 1) for k, v in tuner.stats.phase_seconds.items()},
                "broadcast_lists": tuner.stats.broadcast_lists,
                "cpus": os.cpu_count(),
                "machine": platform.machine(),
            },
            "functions_without_result": len(chosen) - len(rows),
            "unreproducible_best_lists": unreproducible,
        }
        write_tuned(output, rows, meta)
    finally:
        store.close()
    return rows, meta
