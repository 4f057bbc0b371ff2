"""Averaging the weights of fine-tunes of one model into one model (a "model soup").

Fine-tunes that start from the same weights tend to stay in one basin of the loss, where the
average of their weights is often as good as the best of them and sometimes better on data
unlike the training data (Wortsman et al., "Model soups", ICML 2022; for passlm's own passes it
came out level, README "Averaged fine-tunes"). Models trained apart share no
basin: their average is a broken model, so every member must share an ancestor in its recorded
lineage (:func:`~passlm.model.checkpoint.lineage_of`), the same architecture, the same tokenizer
and the same prompt.

The average is taken in float32 and written in ``dtype``. Its ``passlm.json`` keeps what the
members agree on (preset, tokenizer, prompt, names), records each member (path, weight, data
hash, steps, command) under ``averaged_from``, and as lineage the union of the members'
lineages, so ``passlm eval`` still finds every data set any member learned from. ``predict``'s
margin is not carried over: a margin chosen for one member says nothing about the average
(``passlm model calibrate`` chooses its own).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from passlm.errors import InputError
from passlm.model.checkpoint import (
    lineage_of,
    load,
    prompt_format,
    read_meta,
    save_model,
    stored_dtype,
)
from passlm.model.tokenizer import tokenizer_hash

# passlm.json keys describing one training run or one calibration, which no average has
_RUN_KEYS = (
    "command",
    "data_hash",
    "examples",
    "steps",
    "init",
    "train_config",
    "exported_from",
    "matmul_dtype",
    "lineage",
    "averaged_from",
    "predict_margin",
    "predict_calibration",
)
# config.json keys that say how a model was stored, not what it computes
_STORAGE_KEYS = ("torch_dtype", "dtype", "transformers_version", "_name_or_path")


def _architecture(model) -> dict[str, Any]:
    config = model.config.to_dict()
    return {k: v for k, v in config.items() if k not in _STORAGE_KEYS}


def _lineage_key(entry: dict[str, Any]) -> str:
    return json.dumps([entry.get("command"), entry.get("data_hash")])


def check_weights(weights: Sequence[float] | None, n: int) -> list[float]:
    """``weights`` normalized to sum to one (equal weights where None); a clear error for a
    count other than ``n``, a negative or non-finite weight, or weights summing to zero."""
    if weights is None:
        return [1.0 / n] * n
    if len(weights) != n:
        raise InputError(f"--weights: {len(weights)} weights for {n} models")
    if any(not math.isfinite(w) or w < 0 for w in weights):
        raise InputError(f"--weights: each must be a finite number at least 0, got {weights}")
    total = sum(weights)
    if total <= 0:
        raise InputError("--weights: at least one must be above 0")
    return [w / total for w in weights]


def average_models(
    models: Sequence[str | Path],
    output: str | Path,
    *,
    weights: Sequence[float] | None = None,
    dtype: str = "bfloat16",
    command: str | None = None,
) -> Path:
    """Write to ``output`` the model whose weights are the ``weights``-weighted mean of
    ``models``' weights (equal weights by default); see the module docstring for what the
    members must share and what the new ``passlm.json`` records."""
    cast = stored_dtype(dtype)
    paths = [Path(m) for m in models]
    if len(paths) < 2:
        raise InputError("average: name at least two model directories")
    seen: dict[Path, Path] = {}
    for p in paths:
        if p.resolve() in seen:
            raise InputError(f"{p}: named twice (weigh a model with --weights instead)")
        seen[p.resolve()] = p
    if Path(output).resolve() in seen:
        raise InputError(f"{output}: is one of the models averaged; write the average elsewhere")
    shares = check_weights(weights, len(paths))

    first, first_tok = load(paths[0])  # load() names a missing or broken directory
    arch, tok_hash, reads = _architecture(first), tokenizer_hash(first_tok), prompt_format(paths[0])
    lineages = [lineage_of(paths[0])]
    total = {k: v.detach().float() * shares[0] for k, v in first.state_dict().items()}
    for path, share in zip(paths[1:], shares[1:], strict=True):
        model, tok = load(path)
        other = _architecture(model)
        if other != arch:
            diff = sorted(k for k in arch.keys() | other.keys() if arch.get(k) != other.get(k))
            k = diff[0]
            raise InputError(
                f"{path}: another architecture than {paths[0]} "
                f"({k} {other.get(k)!r}, not {arch.get(k)!r})"
            )
        if tokenizer_hash(tok) != tok_hash:
            raise InputError(f"{path}: another tokenizer than {paths[0]}")
        if prompt_format(path) != reads:
            raise InputError(f"{path}: reads other prompts than {paths[0]} (see passlm.json)")
        lineages.append(lineage_of(path))
        for k, v in model.state_dict().items():
            total[k] += v.detach().float() * share
    _check_related(paths, lineages)

    first.load_state_dict(total)
    first = first.to(cast)
    meta = {k: v for k, v in read_meta(paths[0]).items() if k not in _RUN_KEYS}
    members = []
    for path, share in zip(paths, shares, strict=True):
        own = read_meta(path)
        members.append(
            {"path": str(path), "weight": share}
            | {k: own[k] for k in ("data_hash", "steps", "command") if k in own}
        )
    union: list[dict[str, Any]] = []
    keys: set[str] = set()
    for entry in (e for lineage in lineages for e in lineage):
        if _lineage_key(entry) not in keys:
            keys.add(_lineage_key(entry))
            union.append(entry)
    meta |= {"averaged_from": members, "lineage": union, "dtype": dtype}
    if command is not None:
        meta["command"] = command
    save_model(first, first_tok, output, meta)
    return Path(output)


def _check_related(paths: Sequence[Path], lineages: Sequence[list[dict[str, Any]]]) -> None:
    """Every member shares a lineage entry with the first (a common ancestor, or the first is
    an ancestor of it, or it of the first)."""
    for path, lineage in zip(paths, lineages, strict=True):
        if not lineage:
            raise InputError(
                f"{path}: records no training (no passlm.json), so nothing shows that it shares "
                "an ancestor with the other models"
            )
    base = {_lineage_key(e) for e in lineages[0]}
    for path, lineage in zip(paths[1:], lineages[1:], strict=True):
        if not base & {_lineage_key(e) for e in lineage}:
            raise InputError(
                f"{path}: shares no ancestor with {paths[0]} (their lineages in passlm.json "
                "meet nowhere); the weights of models trained apart do not average"
            )
