"""Saving and loading models and training state; safetensors and JSON only, never pickle.

A model directory (:func:`save_model`) is a Hugging Face one that describes itself::

    model.safetensors  config.json  generation_config.json  tokenizer.json  passlm.json

``AutoModelForCausalLM.from_pretrained(dir)`` loads it; ``passlm.json`` records how it was made
(preset, steps, data hash, tokenizer hash, LLVM version, command). A training checkpoint
(:func:`save_checkpoint`) adds ``optimizer.safetensors`` (AdamW moments and the RNG state) and
``trainer.json`` (step, param groups, schedule). Directories are written next to their final
place and renamed into it, so a crash never leaves a half-written one.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from passlm.errors import InputError
from passlm.files import atomic_write, check_output_dir
from passlm.model.tokenizer import load_tokenizer, save_tokenizer

META_FILE = "passlm.json"
TOKENIZER_FILE = "tokenizer.json"
OPTIMIZER_FILE = "optimizer.safetensors"
TRAINER_FILE = "trainer.json"


def _write_dir(final: Path, fill) -> None:
    """Create ``final`` atomically: ``fill(tmp)`` writes a sibling, which replaces ``final``
    (a directory; a file there is an error, not replaced)."""
    check_output_dir(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}."))
    try:
        fill(tmp)
        old = final.with_name(f".{final.name}.old")
        if old.exists():
            shutil.rmtree(old)
        if final.exists():
            final.rename(old)  # the one moment without `final`: readers fall back to `old`
        tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _existing_dir(final: Path) -> Path | None:
    """``final``, or its previous version if a crash hit between the two renames."""
    old = final.with_name(f".{final.name}.old")
    return final if final.is_dir() else old if old.is_dir() else None


def _write_model_files(model, tokenizer, path: Path, meta: dict[str, Any]) -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    model.save_pretrained(path, safe_serialization=True)
    save_tokenizer(tokenizer, path / TOKENIZER_FILE)
    atomic_write(path / META_FILE, json.dumps(meta, indent=2, sort_keys=True) + "\n")


def save_model(model, tokenizer, path: str | Path, meta: dict[str, Any]) -> None:
    """Write a self-describing model directory (replacing any at ``path``)."""
    _write_dir(Path(path), lambda tmp: _write_model_files(model, tokenizer, tmp, meta))


def load(path: str | Path, *, device: str | torch.device = "cpu"):
    """``(model, tokenizer)`` from a passlm model directory or any local HF causal-LM directory.

    The tokenizer is a ``tokenizers.Tokenizer`` (from ``tokenizer.json``, else the fast
    tokenizer ``AutoTokenizer`` finds). The model is in eval mode on ``device``.
    """
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # passlm shows its own progress; keep stderr readable
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InputError(f"{path}: a file, not a model directory")
    if not path.is_dir():
        raise InputError(f"{path}: no such model directory")
    if not (path / "config.json").is_file():
        raise InputError(f"{path}: not a model directory (no config.json)")
    try:
        model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise InputError(f"{path}: cannot load model ({first})") from None
    if (path / TOKENIZER_FILE).is_file():
        tokenizer = load_tokenizer(path / TOKENIZER_FILE)
    else:
        from transformers import AutoTokenizer

        try:
            hf = AutoTokenizer.from_pretrained(path, local_files_only=True, use_fast=True)
            tokenizer = hf.backend_tokenizer
        except (OSError, ValueError, AttributeError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise InputError(f"{path}: no usable tokenizer ({first})") from None
    model.passlm_stored_dtype = model.dtype  # passlm.model.fast computes in it where it can
    reads = _format_of(path)  # what passlm.optimize.prompts renders for it
    model.passlm_prompt, model.passlm_names = reads.passlm_prompt, reads.passlm_names
    model.passlm_plain_prompts = reads.passlm_plain_prompts
    if torch.device(device).type == "cpu" and model.dtype != torch.float32:
        model = model.float()  # shipped weights may be bf16; transformers on CPU wants fp32
    model.to(device)
    model.eval()
    return model, tokenizer


@dataclass(frozen=True)
class PromptFormat:
    """The prompt a model reads, as ``passlm.optimize.prompts`` asks a loaded model for it: for a
    model served elsewhere (``optimize --endpoint``), whose weights passlm does not load."""

    passlm_prompt: str
    passlm_names: str
    passlm_plain_prompts: bool = False  # reads plain prompts too (beside its context kind)


def prompt_format(path: str | Path) -> PromptFormat:
    """The prompt the model in directory ``path`` reads, from its ``passlm.json`` (plain, names
    kept, if it says nothing); a missing directory or an unknown value is a clear error."""
    path = Path(path)
    if not path.is_dir():
        raise InputError(f"{path}: no such model directory")
    return _format_of(path)


def _format_of(path: Path) -> PromptFormat:
    """``passlm.json``'s prompt kind and names kind (the defaults where it says nothing or is
    foreign or unreadable; an unknown value is a clear error)."""
    from passlm.data.format import PLAIN_PROMPTS, PROMPT_KINDS, PROMPT_PLAIN
    from passlm.llvm.names import NAMES_KEPT, NAMES_KINDS

    try:
        meta = read_meta(path)
    except (OSError, ValueError):
        meta = {}
    if not isinstance(meta, dict):
        meta = {}

    def choice(key: str, known: tuple[str, ...], default: str) -> str:
        kind = meta.get(key, default)
        if kind not in known:
            raise InputError(f"{path / META_FILE}: unknown {key} {kind!r} (known: {known})")
        return kind

    plain_too = meta.get(PLAIN_PROMPTS, False)
    if not isinstance(plain_too, bool):
        raise InputError(f"{path / META_FILE}: {PLAIN_PROMPTS} must be true or false")
    return PromptFormat(
        choice("prompt", PROMPT_KINDS, PROMPT_PLAIN),
        choice("names", NAMES_KINDS, NAMES_KEPT),
        plain_too,
    )


def stored_dtype(name: str) -> torch.dtype:
    """The torch dtype a model is written in (``--dtype``); a clear error for another name."""
    if name not in ("float32", "bfloat16", "float16"):
        raise InputError(f"dtype must be float32, bfloat16 or float16 (--dtype), not {name!r}")
    return getattr(torch, name)


def export_model(src: str | Path, dst: str | Path, *, dtype: str = "bfloat16") -> Path:
    """Copy a model directory with its weights cast to ``dtype`` (bf16 halves the size)."""
    cast = stored_dtype(dtype)
    model, tokenizer = load(src)
    model = model.to(cast)
    meta = {**read_meta(src), "exported_from": str(src), "dtype": dtype}
    if meta.get("init") and "lineage" not in meta:  # a fine-tune trained before lineages
        meta["lineage"] = lineage_of(src)[1:]
    save_model(model, tokenizer, dst, meta)
    return Path(dst)


# What a lineage entry keeps of each model's passlm.json: enough to find and check its data.
_LINEAGE_KEYS = ("command", "data_hash", "examples", "steps", "init")


def lineage_of(model_dir: str | Path) -> list[dict[str, Any]]:
    """How a model came to be: its own training record, then that of the model it was
    fine-tuned from (``init``), and so on back to the model trained from scratch.

    A model that recorded its lineage (``passlm train --init`` does) is taken at its word, so
    the record survives the ancestors being moved or overwritten, as when a fine-tune of the
    shipped model is exported in its place. A loop in the ``init`` chain ends the walk.
    """
    out: list[dict[str, Any]] = []
    seen: set[Path] = set()
    current: Path | None = Path(model_dir)
    while current is not None and current.resolve() not in seen:
        seen.add(current.resolve())
        try:
            meta = read_meta(current)
        except (OSError, ValueError):
            break
        if not isinstance(meta, dict) or not meta:
            break
        out.append({k: meta[k] for k in _LINEAGE_KEYS if k in meta})
        recorded = meta.get("lineage")
        if isinstance(recorded, list):
            out.extend(e for e in recorded if isinstance(e, dict))
            break
        init = meta.get("init")
        current = Path(init) if isinstance(init, str) and init else None
    return out


def read_meta(path: str | Path) -> dict[str, Any]:
    """``passlm.json`` of a model directory ({} for a foreign one)."""
    meta = Path(path) / META_FILE
    return json.loads(meta.read_text(encoding="utf-8")) if meta.is_file() else {}


def save_checkpoint(
    path: str | Path,
    model,
    tokenizer,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    step: int,
    meta: dict[str, Any],
) -> None:
    """Model directory plus what resuming needs: AdamW moments, schedule, RNG, step."""

    def fill(tmp: Path) -> None:
        _write_model_files(model, tokenizer, tmp, meta)
        state = optimizer.state_dict()
        tensors = {
            f"state.{idx}.{key}": value.detach().cpu().contiguous()
            for idx, entries in state["state"].items()
            for key, value in entries.items()
        }
        tensors["rng.cpu"] = torch.get_rng_state()
        if torch.cuda.is_available():
            for i, s in enumerate(torch.cuda.get_rng_state_all()):
                tensors[f"rng.cuda.{i}"] = s
        save_file(tensors, str(tmp / OPTIMIZER_FILE))
        trainer = {
            "step": step,
            "param_groups": state["param_groups"],
            "scheduler": scheduler.state_dict(),
        }
        atomic_write(tmp / TRAINER_FILE, json.dumps(trainer, indent=1) + "\n")

    _write_dir(Path(path), fill)


def load_checkpoint(
    path: str | Path,
    model,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
) -> int | None:
    """Restore a checkpoint into ``model``, ``optimizer`` and ``scheduler``; its step, or None."""
    found = _existing_dir(Path(path))
    if found is None:
        return None
    try:
        trainer = json.loads((found / TRAINER_FILE).read_text(encoding="utf-8"))
        tensors = load_file(str(found / OPTIMIZER_FILE))
        weights = load_file(str(found / "model.safetensors"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{found}: unreadable checkpoint ({exc})") from None
    device = next(model.parameters()).device
    missing, unexpected = model.load_state_dict(weights, strict=False)
    # Tied embeddings are saved once (as the input embedding); anything else is a mismatch.
    tied = {"lm_head.weight"} if model.config.tie_word_embeddings else set()
    if set(missing) - tied or unexpected:
        raise InputError(f"{found}: checkpoint does not match the model ({missing or unexpected})")
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        if name.startswith("state."):
            _, idx, key = name.split(".", 2)
            state.setdefault(int(idx), {})[key] = value.to(device) if key != "step" else value
    groups = trainer["param_groups"]
    for g in groups:
        g["betas"] = tuple(g["betas"])
    optimizer.load_state_dict({"state": state, "param_groups": groups})
    scheduler.load_state_dict(trainer["scheduler"])
    torch.set_rng_state(tensors["rng.cpu"])
    if torch.cuda.is_available():
        cuda = [tensors[k] for k in sorted(tensors) if k.startswith("rng.cuda.")]
        with contextlib.suppress(RuntimeError):  # resumed on fewer GPUs
            torch.cuda.set_rng_state_all(cuda)
    return int(trainer["step"])
