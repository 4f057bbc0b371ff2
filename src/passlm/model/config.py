"""Model presets: named Llama shapes in ``presets/*.json``, parsed into :class:`ModelPreset`.

A preset fixes the architecture only; the vocabulary size comes from the tokenizer, so one
preset serves any tokenizer (:func:`llama_config`). The shapes run from ``cpu-tiny`` (tests) to
``paper-7b`` (the paper's Llama 2 7B). Parameter counts: :func:`parameter_count`, analytic, so the
large presets are never built to be counted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING

from passlm.errors import InputError

if TYPE_CHECKING:
    from transformers import LlamaConfig

PRESET_DIR = Path(__file__).parent / "presets"
# Token ids fixed by passlm.model.tokenizer (<s>, </s>, <pad>).
BOS_ID, EOS_ID, PAD_ID = 0, 1, 2
# tokens a prompt must leave free in the context for an answer: a short pass list fits
ANSWER_ROOM = 16


@dataclass(frozen=True)
class ModelPreset:
    """The shape of a ``LlamaForCausalLM``, without its vocabulary."""

    name: str  # the file name without .json; what --preset takes
    description: str  # size and intended use, one line
    hidden_size: int  # width of the residual stream
    num_layers: int  # transformer blocks
    num_heads: int  # attention heads; head size = hidden_size / num_heads
    num_kv_heads: int  # key/value heads (== num_heads: plain multi-head; fewer: grouped-query)
    intermediate_size: int  # SwiGLU hidden width (about 8/3 of hidden_size in Llama)
    max_positions: int  # longest sequence (prompt + answer) the model is trained and used on
    tie_embeddings: bool  # share input and output embeddings: a large saving for small models
    rope_theta: float = 10000.0  # RoPE base, Llama 2's value

    def __post_init__(self) -> None:
        for name in ("hidden_size", "num_layers", "num_heads", "num_kv_heads"):
            if getattr(self, name) < 1:
                raise ValueError(f"preset {self.name}: {name} must be positive")
        if self.intermediate_size < 1 or self.max_positions < 1 or self.rope_theta <= 0:
            raise ValueError(f"preset {self.name}: sizes and rope_theta must be positive")
        if self.hidden_size % self.num_heads:
            raise ValueError(f"preset {self.name}: hidden_size is not a multiple of num_heads")
        if self.num_heads % self.num_kv_heads:
            raise ValueError(f"preset {self.name}: num_heads is not a multiple of num_kv_heads")
        if (self.hidden_size // self.num_heads) % 2:
            raise ValueError(f"preset {self.name}: head size must be even for rotary embeddings")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads


def preset_names() -> list[str]:
    """Names of the bundled presets, sorted."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.json"))


def load_preset(name_or_path: str | Path) -> ModelPreset:
    """A bundled preset by name, or a preset JSON file by path; bad input is an InputError."""
    path = Path(name_or_path)
    if path.suffix != ".json":
        path = PRESET_DIR / f"{name_or_path}.json"
        if not path.is_file():
            known = ", ".join(preset_names())
            raise InputError(f"unknown model preset {str(name_or_path)!r} (known: {known})")
    if not path.is_file():
        raise InputError(f"{path}: no such preset file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        known_fields = {f.name for f in fields(ModelPreset)}
        unknown = sorted(set(data) - known_fields)
        if unknown:
            raise ValueError(f"unknown fields {', '.join(unknown)}")
        return ModelPreset(**data)
    except (ValueError, TypeError) as exc:  # JSONDecodeError is a ValueError
        raise InputError(f"{path}: invalid preset ({exc})") from None


def llama_config(preset: ModelPreset, vocab_size: int) -> LlamaConfig:
    """The ``transformers`` config of ``preset`` with the tokenizer's vocabulary size."""
    from transformers import LlamaConfig

    if vocab_size < 3:
        raise ValueError(f"vocab_size {vocab_size} leaves no room for <s> </s> <pad>")
    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=preset.hidden_size,
        intermediate_size=preset.intermediate_size,
        num_hidden_layers=preset.num_layers,
        num_attention_heads=preset.num_heads,
        num_key_value_heads=preset.num_kv_heads,
        max_position_embeddings=preset.max_positions,
        rope_theta=preset.rope_theta,
        tie_word_embeddings=preset.tie_embeddings,
        bos_token_id=BOS_ID,
        eos_token_id=EOS_ID,
        pad_token_id=PAD_ID,
        attention_dropout=0.0,  # no dropout: small data is better served by more data
        rms_norm_eps=1e-5,
    )


def parameter_count(preset: ModelPreset, vocab_size: int) -> int:
    """Parameters of ``LlamaForCausalLM(llama_config(preset, vocab_size))``, computed."""
    d, kv = preset.hidden_size, preset.num_kv_heads * preset.head_dim
    attention = 2 * d * d + 2 * d * kv  # q, o: d x d; k, v: d x kv (no biases)
    mlp = 3 * d * preset.intermediate_size  # gate, up, down
    per_layer = attention + mlp + 2 * d  # two RMSNorm weights
    embeddings = vocab_size * d * (1 if preset.tie_embeddings else 2)
    return embeddings + preset.num_layers * per_layer + d  # + final norm
