"""The functions a model is evaluated on, each with its reference (the autotuner's best list).

A test SOURCE is one of

* a data set (``passlm dataset make``) or a tuned file (``passlm autotune``): the functions of
  the chosen splits, with the best lists already found;
* a corpus (``passlm corpus build``): the functions of the chosen splits, autotuned now;
* a directory of C/C++ files, or one file: compiled (:data:`passlm.llvm.ir.IR_RECIPE`), split into
  one normalized module per function, autotuned now.

Autotuning "now" runs the project's autotuner (``trials`` lists per function, then
minimization and broadcasting of at most 100 lists); the committed tuned data had 100 trials
and 50 broadcast lists per function. The report says which budget each reference had.

Functions whose content hash is in the model's training split are dropped (the paper's test
set is deduplicated against training), as are repeats across sources.
"""

from __future__ import annotations

import itertools
import shlex
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from passlm.data.format import parse_answer, parse_prompt
from passlm.errors import InputError, PasslmError
from passlm.llvm.backend import Compiler
from passlm.llvm.ir import C_SUFFIXES, CXX_SUFFIXES, compile_source, content_hash, split_functions
from passlm.llvm.ir import count_instructions as count
from passlm.llvm.toolchain import Toolchain
from passlm.tables import artifact_kind

SOURCE_SUFFIXES = C_SUFFIXES | CXX_SUFFIXES


@dataclass(frozen=True)
class TestFunction:
    """One function to evaluate on, and what the autotuner found for it."""

    __test__ = False  # not a pytest class

    hash: str
    function: str
    source: str  # the code base it comes from
    ir: str  # normalized unoptimized one-function module
    o0_count: int
    oz_count: int
    best_count: int
    best_passes: str
    optimized_ir: str | None  # the best list's output, where the source stores it


@dataclass
class TestSet:
    """The functions of all sources, and what was dropped or computed to get them."""

    __test__ = False

    functions: list[TestFunction] = field(default_factory=list)
    sources: list[dict[str, Any]] = field(default_factory=list)  # one description per source
    repeated: int = 0  # same function in two sources (or twice in one)
    seen_in_training: int = 0
    training_set: str | None = None
    splits: list[str] = field(default_factory=list)  # of the data set, tuned and corpus sources


def training_data_of(model_dir: Path) -> list[Path]:
    """The data sets a passlm model learned from, when its recorded commands name them here:
    its own, then (for a fine-tune, ``passlm train --init``) those of the model it started
    from, and so on back to the model trained from scratch
    (:func:`~passlm.model.checkpoint.lineage_of`)."""
    from passlm.model.checkpoint import lineage_of

    found: list[Path] = []
    for entry in lineage_of(model_dir):
        try:
            words = shlex.split(str(entry.get("command", "")))
        except ValueError:
            continue
        if words[:2] != ["passlm", "train"]:
            continue
        # the data sets are the leading arguments (`passlm train A.parquet B.parquet -o ...`)
        # and the values of --ir-only
        named = []
        for word in words[2:]:
            if word.startswith("-"):
                break
            named.append(word)
        named += [b for a, b in itertools.pairwise(words) if a == "--ir-only"]
        named += [w.removeprefix("--ir-only=") for w in words if w.startswith("--ir-only=")]
        for word in named:
            if Path(word).is_file() and Path(word) not in found:
                found.append(Path(word))
    return found


@dataclass(frozen=True)
class TrainingSet:
    """What a model was trained on: hashes to deduplicate against, and (IR, best list) pairs
    for the retrieval baseline (data sets and tuned files have them; a corpus does not)."""

    path: str
    hashes: frozenset[str]
    irs: tuple[str, ...]
    lists: tuple[str, ...]


def read_training(path: Path, split: str = "train") -> TrainingSet:
    """The ``split`` functions of a data set, tuned file or corpus."""
    kind = artifact_kind(path)
    if kind == "dataset":
        from passlm.data.dataset import read_dataset

        examples = [e for e in read_dataset(path)[0] if e.split == split]
        pairs = [(e.hash, parse_prompt(e.prompt), e.best_passes) for e in examples]
    elif kind == "tuned":
        from passlm.search.tuned import read_tuned

        pairs = [(r.hash, r.ir, r.best_passes) for r in read_tuned(path)[0] if r.split == split]
    elif kind == "corpus":
        from passlm.corpus.store import read_corpus

        pairs = [(r.hash, None, None) for r in read_corpus(path)[0] if r.split == split]
    else:
        raise InputError(f"{path}: a {kind} file has no training split (want a data set)")
    listed = [(ir, p) for _, ir, p in pairs if ir is not None and p is not None]
    return TrainingSet(
        str(path),
        frozenset(h for h, _, _ in pairs),
        tuple(ir for ir, _ in listed),
        tuple(p for _, p in listed),
    )


def merge_training(sets: Sequence[TrainingSet]) -> TrainingSet:
    """One training set from a fine-tune chain's (:func:`training_data_of` order): every
    function of every set is deduplicated against; the retrieval pairs come from the last set,
    the from-scratch data whose answers are first-turn pass lists (a feedback data set's
    prompts are whole conversations)."""
    if not sets:
        raise ValueError("no training sets to merge")
    base = sets[-1]
    return TrainingSet(
        " + ".join(t.path for t in sets),
        frozenset().union(*(t.hashes for t in sets)),
        base.irs,
        base.lists,
    )


Progress = Callable[[str, int, int], None]


def parse_source(text: str, option: str = "--source") -> tuple[Path, str]:
    """``PATH:SPLIT``, a tuned or corpus file and one of its splits, as the benchmarks take a
    test source; a clear error naming ``option`` for anything else."""
    path, _, split = text.rpartition(":")
    if not path or not split:
        raise InputError(f"{option} {text}: expected PATH:SPLIT, e.g. data/tuned.parquet:test")
    if not Path(path).is_file():
        raise InputError(f"{option} {text}: no such file {path}")
    return Path(path), split


def _noop(phase: str, done: int, total: int) -> None:
    pass


def load_test_set(
    sources: Sequence[Path],
    *,
    splits: Sequence[str],
    toolchain: Toolchain,
    compiler: Compiler,
    trials: int = 200,
    exclude: set[str] | None = None,
    training_set: str | None = None,
    limit: int | None = None,
    seed: int = 0,
    progress: Progress = _noop,
) -> TestSet:
    """Read or build the functions of every source; drop repeats and training functions."""
    out = TestSet(training_set=training_set, splits=list(splits))
    seen: set[str] = set()
    exclude = exclude or set()
    for path in sources:
        functions, about = _load_source(
            Path(path), splits, toolchain, compiler, trials, limit, seed, progress
        )
        kept = 0
        for f in functions:
            if f.hash in seen:
                out.repeated += 1
            elif f.hash in exclude:
                out.seen_in_training += 1
            else:
                seen.add(f.hash)
                out.functions.append(f)
                kept += 1
        out.sources.append({**about, "path": str(path), "functions": kept})
    if not out.functions:
        raise InputError(
            f"{', '.join(map(str, sources))}: no test functions "
            f"(splits {', '.join(splits)}; {out.seen_in_training} seen in training)"
        )
    return out


def _load_source(
    path: Path,
    splits: Sequence[str],
    toolchain: Toolchain,
    compiler: Compiler,
    trials: int,
    limit: int | None,
    seed: int,
    progress: Progress,
) -> tuple[list[TestFunction], dict[str, Any]]:
    if path.is_dir() or path.suffix in SOURCE_SUFFIXES:
        modules = _compile_sources(path, toolchain)[:limit]
        return _autotune(modules, compiler, trials, seed, progress), {
            "kind": "C/C++ sources",
            "reference": f"autotuned now, {trials} trials per function",
        }
    if not path.exists():
        raise InputError(f"{path}: no such file or directory")
    kind = artifact_kind(path)
    if kind == "dataset":
        from passlm.data.dataset import read_dataset

        examples, _ = read_dataset(path)
        chosen = [e for e in examples if e.split in splits][:limit]
        functions = []
        for e in chosen:
            ir = parse_prompt(e.prompt)
            if ir is None:
                continue
            answer = parse_answer(e.answer)
            functions.append(
                TestFunction(
                    e.hash, e.function, e.source, ir, e.o0_count, e.oz_count,
                    e.best_count, e.best_passes, answer.ir,
                )
            )  # fmt: skip
        about = {"kind": "data set", "reference": "the data set's best lists"}
        return functions, about
    if kind == "tuned":
        from passlm.search.tuned import read_tuned

        rows, meta = read_tuned(path)
        chosen = [r for r in rows if r.split in splits and r.oz_count >= 0][:limit]
        functions = [
            TestFunction(
                r.hash, r.function, r.source, r.ir, r.o0_count, r.oz_count,
                r.best_count, r.best_passes, r.optimized_ir or None,
            )
            for r in chosen
        ]  # fmt: skip
        trials_used = (meta.get("config") or {}).get("trials")
        return functions, {
            "kind": "tuned functions",
            "reference": f"the tuned file's best lists ({trials_used} trials per function)",
        }
    if kind == "corpus":
        from passlm.corpus.store import read_corpus

        rows, _ = read_corpus(path)
        chosen = [r for r in rows if r.split in splits][:limit]
        modules = [(r.function, r.source, r.ir) for r in chosen]
        return _autotune(modules, compiler, trials, seed, progress), {
            "kind": "corpus",
            "reference": f"autotuned now, {trials} trials per function",
        }
    raise InputError(f"{path}: a passlm {kind} file is not a test source (want a data set, "
                     "tuned file, corpus or C/C++ sources)")  # fmt: skip


def _compile_sources(path: Path, toolchain: Toolchain) -> list[tuple[str, str, str]]:
    """(function, code base, module) of every function of the C/C++ files under ``path``."""
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in SOURCE_SUFFIXES)
        base = path.resolve().name
        if not files:
            raise InputError(f"{path}: no C/C++ files (.c .cc .cpp .cxx) in this directory")
    else:
        files, base = [path], path.stem
    out = []
    for file in files:
        try:
            modules = split_functions(compile_source(file, toolchain), toolchain)
        except PasslmError as exc:
            if len(files) == 1:
                raise
            # one broken file in a code base should not sink the evaluation of the rest
            import sys

            print(f"passlm: skipping {exc}", file=sys.stderr)
            continue
        out += [(name, base, ir) for name, ir in modules.items()]
    return out


def _autotune(
    modules: Sequence[tuple[str, str, str]],
    compiler: Compiler,
    trials: int,
    seed: int,
    progress: Progress,
) -> list[TestFunction]:
    """The autotuner's reference for modules that have none yet (a throw-away trial store)."""
    from passlm.search.evaluator import Evaluator, Function
    from passlm.search.store import TrialStore
    from passlm.search.tuner import Autotuner, TuneConfig

    unique: dict[str, tuple[str, str, str]] = {}
    for name, base, ir in modules:
        unique.setdefault(content_hash(ir), (name, base, ir))
    if not unique:
        return []
    config = TuneConfig(trials=trials, broadcast=min(100, trials), seed=seed)
    with tempfile.TemporaryDirectory(prefix="passlm-eval-") as tmp:
        store = TrialStore(Path(tmp) / "trials.sqlite", compiler.version)
        try:
            tuner = Autotuner(Evaluator(compiler, store), config)
            searches = tuner.run(
                [Function(h, ir) for h, (_, _, ir) in unique.items()],
                lambda phase, done, total: progress(f"autotuning ({phase})", done, total),
            )
        finally:
            store.close()
    out = []
    for s, (h, (name, base, ir)) in zip(searches, unique.items(), strict=True):
        if s.best is None or s.oz_count is None:
            continue  # nothing compiled, not even -Oz: no reference to compare against
        out.append(
            TestFunction(h, name, base, ir, count(ir), s.oz_count, s.best_count or s.oz_count,
                         str(s.best), None)
        )  # fmt: skip
    return out
