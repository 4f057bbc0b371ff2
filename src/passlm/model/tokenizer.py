"""An IR-aware byte-level BPE tokenizer (Hugging Face ``tokenizers``), saved as ``tokenizer.json``.

Why it looks like this (numbers: ``passlm tokenizer train`` on the corpus, vocabulary 8192):

* **Byte level, no normalizer**: every byte sequence has an encoding and ``decode(encode(x)) ==
  x`` for any text (no ``<unk>``, no lost whitespace, unicode and escaped strings included).
* **Line pre-tokenization** (:data:`LINES`): a BPE token never crosses a newline, but may span
  spaces inside a line, so frequent instructions (``store i32 %0, ptr %3, align 4\\n``) become
  one or a few tokens. Unoptimized IR is so repetitive that this more than triples characters
  per token over GPT-2's word-level splitting (:data:`GPT2`); CPU training reads a few million
  tokens an hour, so this multiplies the functions seen per hour.
* **Tokens of at most 32 characters** (``max_token_length``): without a cap BPE spends its
  vocabulary on whole struct definitions of single code bases, which compresses training files
  and generalizes worse to new ones.
* **Added tokens**: every pass name and O-level, bare (``-mem2reg``) and after a space
  (`` -mem2reg``), and the format's fixed phrases (:data:`passlm.data.format.MARKERS`) are single
  tokens, so ``Run passes `-mem2reg -instcombine -Oz``` is one token per pass, and constrained
  decoding chooses among whole names.
* Special tokens ``<s>`` (id 0), ``</s>`` (1), ``<pad>`` (2); no post-processor: the training
  code adds ``<s>``/``</s>`` by id (see :data:`SPECIAL_PER_SEQUENCE`). Text is encoded with
  ``encode_special_tokens`` on, so a literal ``<s>`` in IR is ordinary bytes, never a control
  token. That flag is not stored in ``tokenizer.json``: load with :func:`load_tokenizer`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from pathlib import Path

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

from passlm.data.format import MARKERS
from passlm.errors import InputError
from passlm.files import atomic_write
from passlm.llvm.passes import ALL_ACTIONS, O_LEVELS

BOS, EOS, PAD = "<s>", "</s>", "<pad>"
SPECIAL_TOKENS = (BOS, EOS, PAD)
SPECIAL_PER_SEQUENCE = 2  # <s> and </s> around prompt + answer

# Pre-tokenizations (named so an ablation can pick one): each splits text into the "words"
# inside which BPE merges, then maps bytes to the byte-level alphabet.
LINES = "lines"  # a line and its newline
OPERANDS = "operands"  # a line cut after each ", " (an instruction's operands)
GPT2 = "gpt2"  # GPT-2's word regex (plain ByteLevel BPE, the baseline)
_SPLITS = {LINES: r"[^\n]*\n?", OPERANDS: r"[^\n,]*,? ?|\n"}
PRE_TOKENIZERS = (LINES, OPERANDS, GPT2)


def added_tokens() -> list[str]:
    """Pass names and O-levels (bare and after a space) and the format's fixed phrases."""
    names = [name if name in O_LEVELS else f"-{name}" for name in ALL_ACTIONS]
    return [*MARKERS, *names, *(f" {name}" for name in names)]


def _pre_tokenizer(kind: str) -> pre_tokenizers.PreTokenizer:
    if kind == GPT2:
        return pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    if kind not in _SPLITS:
        raise ValueError(f"pre-tokenizer {kind!r} is not one of {', '.join(PRE_TOKENIZERS)}")
    return pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_SPLITS[kind]), "isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )


def train_tokenizer(
    texts: Iterable[str],
    vocab_size: int = 8192,
    *,
    pre_tokenizer: str = LINES,
    max_token_length: int | None = 32,
    min_frequency: int = 2,
) -> Tokenizer:
    """Train a byte-level BPE on ``texts``; the result has at most ``vocab_size`` tokens.

    The BPE vocabulary is trained ``vocab_size - len(added_tokens())`` large, so special and
    added tokens fit in the total (a multiple of 64 stays one, for tied embeddings).
    Deterministic for the same texts in the same order.
    """
    extra = added_tokens()
    bpe_size = vocab_size - len(extra)
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    if bpe_size < len(SPECIAL_TOKENS) + len(alphabet):
        raise ValueError(f"vocab_size {vocab_size} is too small: at least {len(extra) + 259}")
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = _pre_tokenizer(pre_tokenizer)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=bpe_size,
        min_frequency=min_frequency,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=alphabet,
        max_token_length=max_token_length,
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer)
    # normalized=False: matched on the raw text, so " -instcombine" keeps its space.
    tokenizer.add_tokens([AddedToken(t, normalized=False) for t in extra])
    tokenizer.encode_special_tokens = True
    return tokenizer


def save_tokenizer(tokenizer: Tokenizer, path: str | Path) -> None:
    """Write ``tokenizer.json`` atomically."""
    atomic_write(path, tokenizer.to_str(pretty=True))


def load_tokenizer(path: str | Path) -> Tokenizer:
    """Read a ``tokenizer.json``; a missing or invalid file is an :class:`InputError`."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such tokenizer file")
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as exc:  # tokenizers raises a bare Exception on malformed JSON
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise InputError(f"{path}: not a tokenizer.json ({first})") from None
    tokenizer.encode_special_tokens = True  # not saved in tokenizer.json
    return tokenizer


def tokenizer_hash(tokenizer: Tokenizer) -> str:
    """SHA-256 (16 hex digits) of the tokenizer's JSON, recorded in data sets and models."""
    return hashlib.sha256(tokenizer.to_str().encode("utf-8")).hexdigest()[:16]


def count_tokens(tokenizer: Tokenizer, texts: Sequence[str]) -> list[int]:
    """Tokens of each text, without special tokens."""
    return [len(e.ids) for e in tokenizer.encode_batch(list(texts), add_special_tokens=False)]


def sequence_tokens(
    tokenizer: Tokenizer, prompts: Sequence[str], answers: Sequence[str]
) -> list[int]:
    """Tokens of each training sequence: prompt + answer + ``<s>`` and ``</s>``."""
    return [
        p + a + SPECIAL_PER_SEQUENCE
        for p, a in zip(
            count_tokens(tokenizer, prompts), count_tokens(tokenizer, answers), strict=True
        )
    ]


def chars_per_token(tokenizer: Tokenizer, texts: Sequence[str]) -> float:
    """Characters per token over ``texts`` (higher: more text per model step)."""
    tokens = sum(count_tokens(tokenizer, texts))
    return sum(len(t) for t in texts) / tokens if tokens else 0.0
