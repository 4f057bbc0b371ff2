"""Tokenizer, model presets, training loop, generation, export and load."""

from __future__ import annotations

from pathlib import Path
from typing import Any

DEFAULT_MODEL = Path(__file__).parent / "default"


def default_model_dir() -> Path:
    """The model shipped inside the package (trained by ``passlm train``, see the README)."""
    from passlm.errors import InputError

    if not (DEFAULT_MODEL / "config.json").is_file():
        raise InputError(f"{DEFAULT_MODEL}: no default model is installed; name one with --model")
    return DEFAULT_MODEL


def load(path: str | Path) -> tuple[Any, Any]:
    """(model, tokenizer) from a passlm model directory or any local HF causal-LM directory.

    Imported lazily so that ``passlm.model.tokenizer`` users do not pay for torch.
    """
    from passlm.model.checkpoint import load as _load

    return _load(path)
