"""Build a corpus: resolve sources, compile files, filter, deduplicate, split, summarize.

Order per function: extract -> size filter -> dedup (by ``content_hash``; the copy in the
earliest split wins, train first) -> split of its file -> dropped when an excluded corpus
(``exclude_corpora``: the training corpus, for a held-out corpus built on its own) has it.
Everything is sorted, so the same recipe, seed and LLVM version give the same rows.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from passlm import __version__
from passlm.corpus.compile import FAILED, OK, SKIPPED, CompileOptions, FileResult, compile_files
from passlm.corpus.filters import DROP_REASONS, DUPLICATE, EXCLUDED
from passlm.corpus.recipe import Recipe
from passlm.corpus.sources import (
    ResolvedSource,
    cache_dir,
    csmith_version,
    find_csmith,
    resolve_source,
)
from passlm.corpus.splits import PRIORITY, SPLITS, assign_split
from passlm.corpus.store import CorpusFunction
from passlm.errors import InputError
from passlm.llvm import ir as irmod
from passlm.llvm.toolchain import Toolchain

FAILURE_EXAMPLES = 3  # error lines kept per source, to see why files fail


@dataclass
class SourceSummary:
    """Counts for one source."""

    name: str
    licence: str
    files: int = 0
    files_ok: int = 0
    files_failed: int = 0
    files_skipped: int = 0
    functions: int = 0  # defined functions found in compiled files
    kept: int = 0  # rows in the corpus
    failure_examples: list[str] = field(default_factory=list)


@dataclass
class Summary:
    """Counts for a whole build; stored in the corpus metadata."""

    sources: list[SourceSummary]
    drops: dict[str, int]
    splits: dict[str, dict[str, int]]  # split -> {"functions": n, "files": n}
    functions_kept: int = 0
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """Plain data."""
        return asdict(self)


class Reporter:
    """Progress callbacks; the CLI passes a rich implementation, tests use this silent one."""

    def stage(self, message: str) -> None:
        """A new stage started (fetching a source, compiling, writing)."""

    def start_files(self, total: int) -> None:
        """Compilation of ``total`` files begins."""

    def file_done(self, result: FileResult) -> None:
        """One file finished."""


@dataclass(frozen=True)
class BuildResult:
    """The rows to write and the metadata that goes with them."""

    rows: list[CorpusFunction]
    meta: dict[str, Any]
    summary: Summary


def resolve_all(
    recipe: Recipe, *, cache: Path, jobs: int, reporter: Reporter
) -> list[ResolvedSource]:
    """Fetch/unpack/generate every source of the recipe, in order."""
    resolved = []
    for entry in recipe.sources:
        reporter.stage(f"resolving {entry.spec}")
        seed = entry.seed if entry.seed is not None else recipe.seed
        resolved.append(
            resolve_source(
                entry.parsed,
                seed=seed,
                licence=entry.licence,
                exclude=entry.exclude,
                flags=entry.flags,
                cache=cache,
                jobs=jobs,
            )
        )
    names = [s.name for s in resolved]
    dupes = sorted({n for n in names if names.count(n) > 1 and n != "csmith"})
    if dupes:
        raise InputError(f"two sources resolve to the same name {dupes[0]}")
    return resolved


def deduplicate(rows: list[CorpusFunction]) -> tuple[list[CorpusFunction], int]:
    """One row per hash: the earliest split wins (train first), then (source, file, function)."""
    best: dict[str, CorpusFunction] = {}
    for row in rows:
        key = (PRIORITY[row.split], row.source, row.file, row.function)
        old = best.get(row.hash)
        if old is None or key < (PRIORITY[old.split], old.source, old.file, old.function):
            best[row.hash] = row
    return sorted(best.values(), key=CorpusFunction.sort_key), len(rows) - len(best)


def build_corpus(
    recipe: Recipe,
    toolchain: Toolchain,
    *,
    jobs: int | None = None,
    cache: Path | None = None,
    options: CompileOptions | None = None,
    reporter: Reporter | None = None,
    command: list[str] | None = None,
) -> BuildResult:
    """Build the corpus of ``recipe``; files that do not compile are counted, not fatal."""
    started = time.monotonic()
    reporter = reporter or Reporter()
    jobs = jobs or os.cpu_count() or 1
    options = options or CompileOptions()
    cache = cache or cache_dir()
    excluded = excluded_hashes(recipe.exclude_corpora)
    sources = resolve_all(recipe, cache=cache, jobs=jobs, reporter=reporter)
    holdout = frozenset(
        sources[recipe.sources.index(entry)].name for entry in recipe.holdout_entries
    )

    per_source = {s.name: SourceSummary(s.name, s.licence) for s in sources}
    drops = dict.fromkeys(DROP_REASONS, 0)
    candidates: list[CorpusFunction] = []
    tasks = [(s, f) for s in sources for f in s.files]
    for s in sources:
        per_source[s.name].files += len(s.files)
    reporter.stage("compiling")
    reporter.start_files(len(tasks))
    for result in compile_files(tasks, toolchain, recipe.limits, jobs=jobs, options=options):
        stats = per_source[result.source]
        if result.status == OK:
            stats.files_ok += 1
        elif result.status == FAILED:
            stats.files_failed += 1
            if len(stats.failure_examples) < FAILURE_EXAMPLES:
                stats.failure_examples.append(f"{result.file}: {result.error}")
        elif result.status == SKIPPED:
            stats.files_skipped += 1
        stats.functions += len(result.functions) + len(result.drops)
        for _, reason in result.drops:
            drops[reason] += 1
        split = assign_split(
            result.source, result.file, seed=recipe.seed, ratios=recipe.splits, holdout=holdout
        )
        for fn in result.functions:
            candidates.append(
                CorpusFunction(
                    hash=irmod.content_hash(fn.ir),
                    ir=fn.ir,
                    function=fn.name,
                    source=result.source,
                    file=result.file,
                    split=split,
                    instcount=irmod.count_instructions(fn.ir),
                    chars=len(fn.ir),
                )
            )
        reporter.file_done(result)

    rows, drops[DUPLICATE] = deduplicate(candidates)
    kept = [row for row in rows if row.hash not in excluded]
    rows, drops[EXCLUDED] = kept, len(rows) - len(kept)
    for stats in per_source.values():
        stats.failure_examples.sort()
    splits: dict[str, dict[str, int]] = {s: {"functions": 0, "files": 0} for s in SPLITS}
    files_per_split: dict[str, set[tuple[str, str]]] = {s: set() for s in SPLITS}
    for row in rows:
        per_source[row.source].kept += 1
        splits[row.split]["functions"] += 1
        files_per_split[row.split].add((row.source, row.file))
    for name, files in files_per_split.items():
        splits[name]["files"] = len(files)
    summary = Summary(
        sources=[per_source[s.name] for s in sources],
        drops=drops,
        splits=splits,
        functions_kept=len(rows),
        seconds=round(time.monotonic() - started, 1),
    )
    meta = _metadata(recipe, sources, holdout, summary, toolchain, command)
    meta["compile_flags"] = list(options.flags)
    return BuildResult(rows=rows, meta=meta, summary=summary)


def excluded_hashes(paths: tuple[str, ...]) -> frozenset[str]:
    """The function hashes of corpora (or tuned files) to leave out of a build."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    hashes: set[str] = set()
    for path in paths:
        if not Path(path).is_file():
            raise InputError(f"{path}: no such corpus to exclude (exclude_corpora)")
        try:
            column = pq.read_table(path, columns=["hash"]).column("hash")
        except (pa.ArrowException, KeyError, OSError) as exc:  # as tables.read_rows: one line
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise InputError(f"{path}: not a corpus with a hash column: {first}") from None
        hashes.update(column.to_pylist())
    return frozenset(hashes)


def _metadata(
    recipe: Recipe,
    sources: list[ResolvedSource],
    holdout: frozenset[str],
    summary: Summary,
    toolchain: Toolchain,
    command: list[str] | None,
) -> dict[str, Any]:
    resolved = [
        {"spec": e.spec, "name": s.name, "licence": s.licence, "files": len(s.files)}
        for e, s in zip(recipe.sources, sources, strict=True)
    ]
    meta: dict[str, Any] = {
        "llvm_version": toolchain.version,
        "passlm_version": __version__,
        "ir_recipe": irmod.IR_RECIPE,
        "command": command if command is not None else list(sys.argv),
        "recipe": recipe.to_json(),
        "sources": resolved,
        "seed": recipe.seed,
        "split_ratios": asdict(recipe.splits),
        # one held-out source stays a string, as corpora built before lists were allowed
        "holdout": None if not holdout else min(holdout) if len(holdout) == 1 else sorted(holdout),
        "exclude_corpora": list(recipe.exclude_corpora),
        "limits": asdict(recipe.limits),
        "summary": summary.to_json(),
    }
    if any(s.name == "csmith" for s in sources):
        meta["csmith_version"] = csmith_version(find_csmith()[0])
    return meta
