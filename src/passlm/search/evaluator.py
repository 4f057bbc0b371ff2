"""Evaluate pass lists on functions through the result store: nothing is compiled twice."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from passlm.llvm.backend import Compiler, Task
from passlm.llvm.passes import PassList
from passlm.search.store import Trial, TrialStore


@dataclass(frozen=True)
class Function:
    """A function to tune: its content hash and normalized one-function module."""

    hash: str
    ir: str


class Evaluator:
    """Looks every (function, pass list) up in the store and compiles only what is missing."""

    def __init__(self, compiler: Compiler, store: TrialStore) -> None:
        self.compiler = compiler
        self.store = store
        self.compiled = 0  # compiles actually run by this evaluator
        self.cached = 0  # requests answered by the store
        self.compile_seconds = 0.0

    def evaluate(self, requests: Sequence[tuple[Function, PassList]]) -> list[Trial]:
        """The trial of every request, compiling the unknown ones in one batch and storing them."""
        keys = [(fn.hash, str(passes)) for fn, passes in requests]
        by_hash: dict[str, list[str]] = {}
        for h, p in keys:
            by_hash.setdefault(h, []).append(p)
        known: dict[tuple[str, str], Trial] = {}
        for h, passes in by_hash.items():
            for p, trial in self.store.lookup(h, passes).items():
                known[(h, p)] = trial
        missing: dict[tuple[str, str], tuple[Function, PassList]] = {}
        for key, request in zip(keys, requests, strict=True):
            if key not in known and key not in missing:
                missing[key] = request
        if missing:
            tasks = [Task(fn.ir, passes) for fn, passes in missing.values()]
            results = self.compiler.run_tasks(tasks)
            rows = []
            for key, result in zip(missing, results, strict=True):
                trial = Trial(result.count, result.error_kind, result.error, result.seconds)
                known[key] = trial
                rows.append((key[0], key[1], trial))
                self.compile_seconds += result.seconds
            self.store.add(rows)
            self.compiled += len(rows)
        self.cached += len(requests) - len(missing)
        return [known[key] for key in keys]
