"""The training data set: one (prompt, answer) example per tuned function, as Parquet.

Examples that do not fit a length limit are dropped, never truncated: a truncated answer would
teach the model to stop in the middle of the IR. The report says how many were dropped per split.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from passlm.corpus.splits import SPLITS
from passlm.data.format import (
    PROMPT_OZ,
    PROMPT_OZ_SUMMARY,
    PROMPT_PLAIN,
    OzContext,
    render_answer,
    render_prompt,
)
from passlm.errors import InputError, PasslmError
from passlm.llvm.names import NAMES_ANONYMIZED, NAMES_KEPT, renamer
from passlm.llvm.passes import OZ, PassList, parse_pass_list
from passlm.search.tuned import TunedFunction
from passlm.tables import read_rows, write_rows

if TYPE_CHECKING:
    from tokenizers import Tokenizer

KIND = "dataset"
SCHEMA = pa.schema(
    [
        ("hash", pa.string()),
        ("split", pa.string()),
        ("source", pa.string()),
        ("function", pa.string()),
        ("prompt", pa.string()),
        ("answer", pa.string()),
        ("o0_count", pa.int32()),
        ("oz_count", pa.int32()),
        ("best_count", pa.int32()),
        ("best_passes", pa.string()),
        ("tokens", pa.int32()),  # prompt + answer + <s> + </s>; 0 without a tokenizer
    ]
)
# Tuned-file metadata carried into the data set (the rest, e.g. compute, stays with it).
_TUNED_KEYS = ("llvm_version", "passlm_version", "corpus", "config", "command", "splits", "limit")
_CORPUS_KEYS = ("ir_recipe", "seed", "holdout", "limits")


@dataclass(frozen=True)
class Example:
    """One training example: a tuned function rendered as prompt and answer."""

    hash: str
    split: str
    source: str
    function: str
    prompt: str
    answer: str
    o0_count: int
    oz_count: int
    best_count: int
    best_passes: str
    tokens: int


@dataclass(frozen=True)
class SplitReport:
    """Examples of one split: made, and dropped as too long (characters, then tokens)."""

    split: str
    functions: int
    kept: int
    dropped_chars: int
    dropped_tokens: int

    @property
    def dropped(self) -> int:
        return self.dropped_chars + self.dropped_tokens


@dataclass(frozen=True)
class DatasetReport:
    """What :func:`make_dataset` did, recorded in the data set's metadata."""

    aux: bool
    oz_ties: bool  # answers say -Oz where the autotuner found nothing better
    max_tokens: int | None
    max_chars: int | None
    tokenizer: str | None  # tokenizer hash
    splits: tuple[SplitReport, ...]
    denied: int = 0  # best lists on the deny list, answered with -Oz instead
    oz_keep: float = 1.0  # fraction of the training split's -Oz answers kept
    oz_dropped: int = 0  # training examples answered -Oz left out by oz_keep
    winner_functions: int = 0  # training functions answered with every list that won (winners)
    winner_examples: int = 0  # the examples those functions gave
    prompt: str = PROMPT_PLAIN  # PROMPT_OZ: prompts carry the -Oz context
    names: str = NAMES_KEPT  # NAMES_ANONYMIZED: prompts and answers renamed (passlm.llvm.names)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "splits": [asdict(s) for s in self.splits]}


def _split_order(split: str) -> int:
    return SPLITS.index(split) if split in SPLITS else len(SPLITS)


def _render(
    row: TunedFunction,
    aux: bool,
    oz_ir: Mapping[str, str] | None,
    denied: Mapping[str, str] | None = None,
    oz_context: Mapping[str, OzContext] | None = None,
    oz_kind: str = PROMPT_OZ,
    anonymized: bool = False,
) -> tuple[str, str, PassList]:
    """(prompt, answer, the answer's pass list) for one tuned function."""
    if denied is not None and row.hash in denied:
        # LLVM gets the best list wrong (deny list): never teach it; -Oz is the safe answer
        passes, count, optimized = OZ, row.oz_count, denied[row.hash]
    elif oz_ir is not None and 0 <= row.oz_count <= row.best_count:
        # -Oz is as good as anything found: teach -Oz (the safe answer) rather than whichever
        # shorter list happened to tie on this function.
        passes, count, optimized = OZ, row.oz_count, oz_ir.get(row.hash)
    else:
        try:
            passes = parse_pass_list(row.best_passes)
        except PasslmError as exc:
            raise InputError(f"{row.function} ({row.hash}): bad best_passes: {exc}") from None
        count, optimized = row.best_count, row.optimized_ir
    if aux and not optimized:
        raise InputError(f"{row.function} ({row.hash}): no optimized IR for the aux answer")
    rename = renamer(row.ir, anonymized)
    ir = rename(optimized) if aux and optimized else None
    context = None
    if oz_context is not None:
        context = oz_context.get(row.hash)
        if context is None:
            raise InputError(f"{row.function} ({row.hash}): no -Oz output for its prompt")
        context = OzContext(context.count, rename(context.ir))
    prompt = render_prompt(rename(row.ir), context, oz_kind)
    return prompt, render_answer(passes, row.o0_count, count, ir), passes


def winning_lists(
    oz_count: int, candidates: Sequence[tuple[PassList, int | None]], cap: int
) -> list[tuple[PassList, int]]:
    """The candidates (list, its count on the function; None: it failed) that reach the lowest
    count, if that beats -Oz: at most ``cap``, the first ones of the given order, each once."""
    counts = [c for _, c in candidates if c is not None]
    low = min(counts, default=oz_count)
    if low >= oz_count:
        return []
    out: list[tuple[PassList, int]] = []
    for passes, count in candidates:
        if count == low and all(passes != p for p, _ in out):
            out.append((passes, count))
    return out[:cap]


def _kept(function_hash: str, fraction: float) -> bool:
    """A seeded coin per function (its hash), the same on every run and in any order."""
    draw = int(hashlib.sha256(f"oz-keep:{function_hash}".encode()).hexdigest()[:16], 16)
    return draw < fraction * 16**16


def make_dataset(
    tuned_rows: Sequence[TunedFunction],
    *,
    aux: bool = True,
    max_tokens: int | None = None,
    tokenizer: Tokenizer | None = None,
    max_chars: int | None = None,
    oz_ir: Mapping[str, str] | None = None,
    denied: Mapping[str, str] | None = None,
    oz_keep: float = 1.0,
    winners: Mapping[str, Sequence[tuple[PassList, int]]] | None = None,
    winner_ir: Mapping[tuple[str, PassList], str] | None = None,
    oz_context: Mapping[str, OzContext] | None = None,
    oz_summary: bool = False,
    anonymize_names: bool = False,
) -> tuple[list[Example], DatasetReport]:
    """Render one example per tuned function, dropping those longer than the limits.

    ``aux``: answers carry the optimized IR (False: pass list and counts only). ``oz_ir``
    (function hash -> its IR after -Oz): where the autotuner found nothing better than -Oz, the
    answer is -Oz (the paper's labels) instead of the best list, which then only ties. ``max_chars``
    limits len(prompt + answer); ``denied`` (function hash -> its IR after -Oz) lists the
    functions whose best list is on the deny list: they are answered with -Oz. ``max_tokens``
    limits the tokens of prompt + answer + ``<s>`` and ``</s>``, counted with ``tokenizer``
    (required then). ``oz_keep`` keeps that fraction of the training split's -Oz answers (a
    seeded choice per function; other splits keep their natural mix), so that training sees
    more of the functions where a list beats -Oz. ``winners`` (function hash -> (list, count)
    pairs, from :func:`winning_lists`) answers each such training function once per list that
    won on it rather than once with the autotuner's, so that the model learns every list that
    suits the code, not one tie-break (answers without the optimized IR, unless ``winner_ir``
    holds it for every (function hash, list) answered: ``aux`` needs it). ``oz_context``
    (function hash -> what -Oz made of it, for every function): prompts carry the -Oz context
    (:data:`passlm.data.format.PROMPT_OZ`; with ``oz_summary``, its one-line summary instead,
    :data:`~passlm.data.format.PROMPT_OZ_SUMMARY`). ``anonymize_names``: every IR in prompts
    and answers has the function's names renumbered (:mod:`passlm.llvm.names`).
    Examples come in corpus order: split (train, val, test, heldout), source, file, function.
    """
    for name, limit in (("max_tokens", max_tokens), ("max_chars", max_chars)):
        if limit is not None and limit <= 0:
            raise InputError(f"{name} must be positive, got {limit}")
    if not 0.0 < oz_keep <= 1.0:
        raise InputError(f"oz_keep must be in (0, 1], got {oz_keep}")
    if max_tokens is not None and tokenizer is None:
        raise InputError("max_tokens needs a tokenizer to count tokens with")
    if winners and aux:
        missing = [
            h
            for h, lists in winners.items()
            for passes, _ in lists
            if (h, passes) not in (winner_ir or {})
        ]
        if missing:
            raise InputError(
                f"{len(missing)} winning answers have no optimized IR (function {missing[0]}): "
                "use aux=False"
            )
    rows = sorted(
        tuned_rows, key=lambda r: (_split_order(r.split), r.split, r.source, r.file, r.function)
    )
    oz_kind = PROMPT_OZ_SUMMARY if oz_summary else PROMPT_OZ
    answered = [_render(r, aux, oz_ir, denied, oz_context, oz_kind, anonymize_names) for r in rows]
    keep = [
        oz_keep >= 1.0
        or r.split != "train"
        or passes != OZ
        or bool(winners and winners.get(r.hash))
        or _kept(r.hash, oz_keep)
        for r, (_, _, passes) in zip(rows, answered, strict=True)
    ]
    oz_dropped = keep.count(False)
    rows = [r for r, k in zip(rows, keep, strict=True) if k]
    rendered = [(p, a) for (p, a, _), k in zip(answered, keep, strict=True) if k]
    winner_functions = winner_examples = 0
    if winners:  # one example per list that won, in place of the function's one
        expanded_rows, expanded = [], []
        for row, (prompt, answer) in zip(rows, rendered, strict=True):
            lists = winners.get(row.hash) if row.split == "train" else None
            if not lists:
                expanded_rows.append(row)
                expanded.append((prompt, answer))
                continue
            winner_functions += 1
            winner_examples += len(lists)
            rename = renamer(row.ir, anonymize_names)
            for passes, count in lists:
                expanded_rows.append(row)
                ir = rename(winner_ir[(row.hash, passes)]) if aux and winner_ir else None
                expanded.append((prompt, render_answer(passes, row.o0_count, count, ir)))
        rows, rendered = expanded_rows, expanded
    tokens = [0] * len(rows)
    token_hash = None
    if tokenizer is not None:
        from passlm.model.tokenizer import sequence_tokens, tokenizer_hash

        token_hash = tokenizer_hash(tokenizer)
        tokens = sequence_tokens(tokenizer, [p for p, _ in rendered], [a for _, a in rendered])
    counts: dict[str, list[int]] = {}  # split -> [functions, kept, dropped_chars, dropped_tokens]
    examples = []
    for row, (prompt, answer), n in zip(rows, rendered, tokens, strict=True):
        c = counts.setdefault(row.split, [0, 0, 0, 0])
        c[0] += 1
        if max_chars is not None and len(prompt) + len(answer) > max_chars:
            c[2] += 1
        elif max_tokens is not None and n > max_tokens:
            c[3] += 1
        else:
            c[1] += 1
            examples.append(
                Example(
                    hash=row.hash,
                    split=row.split,
                    source=row.source,
                    function=row.function,
                    prompt=prompt,
                    answer=answer,
                    o0_count=row.o0_count,
                    oz_count=row.oz_count,
                    best_count=row.best_count,
                    best_passes=row.best_passes,
                    tokens=n,
                )
            )
    report = DatasetReport(
        aux=aux,
        oz_ties=oz_ir is not None,
        max_tokens=max_tokens,
        max_chars=max_chars,
        tokenizer=token_hash,
        splits=tuple(SplitReport(split, *c) for split, c in counts.items()),
        denied=len({r.hash for r in rows} & denied.keys()) if denied else 0,
        oz_keep=oz_keep,
        oz_dropped=oz_dropped,
        winner_functions=winner_functions,
        winner_examples=winner_examples,
        prompt=oz_kind if oz_context is not None else PROMPT_PLAIN,
        names=NAMES_ANONYMIZED if anonymize_names else NAMES_KEPT,
    )
    return examples, report


def dataset_meta(
    tuned_meta: dict[str, Any], report: DatasetReport, *, tuned_path: str, command: str
) -> dict[str, Any]:
    """Metadata of a data set: where its tuned file came from, and how it was rendered."""
    corpus_meta = tuned_meta.get("corpus_meta") or {}
    return {
        "llvm_version": tuned_meta.get("llvm_version"),
        "tuned": tuned_path,
        "tuned_meta": {k: tuned_meta.get(k) for k in _TUNED_KEYS},
        "corpus_meta": {k: corpus_meta.get(k) for k in _CORPUS_KEYS},
        "command": command,
        **report.to_dict(),
    }


def prompt_of(meta: Mapping[str, Any]) -> str:
    """The prompt a data set's examples were made with (plain unless its metadata says)."""
    return str(meta.get("prompt", PROMPT_PLAIN))


def names_of(meta: Mapping[str, Any]) -> str:
    """Whether a data set's IR has its names anonymized (kept unless its metadata says)."""
    return str(meta.get("names", NAMES_KEPT))


def ir_by_split(path: str | Path) -> dict[str, list[str]]:
    """The IR texts of a corpus or tuned file by split (tuned: unoptimized, then optimized IR)."""
    from passlm.corpus.store import read_corpus
    from passlm.search.tuned import read_tuned
    from passlm.tables import read_meta

    try:
        read_meta(path, "corpus")
    except InputError:
        rows, _ = read_tuned(path)  # the error names the kind it found
        texts: dict[str, list[str]] = {}
        for r in rows:
            texts.setdefault(r.split, []).append(r.ir)
            if r.optimized_ir:
                texts[r.split].append(r.optimized_ir)
        return texts
    corpus, _ = read_corpus(path)
    texts = {}
    for c in corpus:
        texts.setdefault(c.split, []).append(c.ir)
    return texts


def write_dataset(path: str | Path, examples: Sequence[Example], meta: dict[str, Any]) -> None:
    """Write examples (in the given order) and metadata as Parquet, atomically."""
    write_rows(path, examples, SCHEMA, KIND, meta)


def read_dataset(path: str | Path) -> tuple[list[Example], dict[str, Any]]:
    """All examples and the metadata of a data set file."""
    return read_rows(path, KIND, Example)
