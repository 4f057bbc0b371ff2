"""Tokenizer, model presets, training loop, generation, export and load."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def load(path: str | Path) -> tuple[Any, Any]:
    """(model, tokenizer) from a passlm model directory or any local HF causal-LM directory.

    Imported lazily so that ``passlm.model.tokenizer`` users do not pay for torch.
    """
    from passlm.model.checkpoint import load as _load

    return _load(path)
