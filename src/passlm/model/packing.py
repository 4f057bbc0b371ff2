"""Training sequences: examples tokenized with an answer-only loss mask and packed into blocks.

An example becomes ``<s> prompt answer </s>``; its labels are the token ids on the answer and
``</s>`` and ``-100`` (ignored) on ``<s>`` and the prompt, so the loss is on answer tokens only.

Packing is plain concatenation: each epoch is the examples in a seeded random order, joined
into one stream; epochs follow each other without a gap, and block ``i`` is the stream's tokens
``[i * block_size, (i + 1) * block_size]`` (``block_size + 1`` tokens: inputs and next-token
targets overlap by one, so every target is trained exactly once). Attention is not cut at
example boundaries: the ``<s>`` that starts each example tells the model a new one begins, and
a block-diagonal mask would need a 4-D mask or a flash-attention varlen path that the CPU
cannot use. No padding and no token is wasted, which matters at CPU speeds (DESIGN.md,
"Training budget"). Block ``i`` depends only on ``i`` and the seed, so a resumed run sees the
same data as one that never stopped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from passlm.data.format import PASSES_CLOSE, PASSES_OPEN
from passlm.model.config import BOS_ID, EOS_ID

IGNORE = -100  # label of tokens without loss (torch cross_entropy's ignore_index)


@dataclass(frozen=True)
class Encoded:
    """One example as token ids and labels of equal length."""

    ids: np.ndarray  # int64 [n]
    labels: np.ndarray  # int64 [n]: ids on the answer and </s>, IGNORE elsewhere


def encode_example(tokenizer, prompt: str, answer: str, *, list_loss: bool = True) -> Encoded:
    """``<s> prompt answer </s>`` with the loss on the answer and ``</s>`` only.

    Prompt and answer are encoded separately so the mask boundary is exact (a BPE token never
    straddles it); the prompt ends in a newline and lines are pre-tokenization units anyway.
    ``list_loss=False`` also masks the answer's pass list (``Run passes `...```, up to and with
    the closing backtick): the example then teaches the counts and the optimized IR *given* the
    list, and nothing about which list to choose.
    """
    p = tokenizer.encode(prompt, add_special_tokens=False).ids
    encoding = tokenizer.encode(answer, add_special_tokens=False)
    a = encoding.ids
    ids = np.array([BOS_ID, *p, *a, EOS_ID], dtype=np.int64)
    labels = ids.copy()
    labels[: 1 + len(p)] = IGNORE
    if not list_loss and answer.startswith(PASSES_OPEN):
        close = answer.find(PASSES_CLOSE, len(PASSES_OPEN))
        if close >= 0:
            # every token that starts inside the list, the backtick's included
            head = sum(1 for start, _ in encoding.offsets if start <= close)
            labels[1 + len(p) : 1 + len(p) + head] = IGNORE
    return Encoded(ids, labels)


class PackedStream:
    """Fixed-length blocks cut from an endless, per-epoch shuffled stream of examples."""

    def __init__(self, examples: Sequence[Encoded], block_size: int, seed: int) -> None:
        if not examples:
            raise ValueError("no training examples")
        if block_size < 1:
            raise ValueError("block_size must be positive")
        self.examples = list(examples)
        self.block_size = block_size
        self.seed = seed
        self.epoch_tokens = sum(len(e.ids) for e in self.examples)  # same for every order
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def _epoch(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        if k not in self._cache:
            order = np.random.default_rng([self.seed, k]).permutation(len(self.examples))
            ids = np.concatenate([self.examples[i].ids for i in order])
            labels = np.concatenate([self.examples[i].labels for i in order])
            if len(self._cache) > 4:  # blocks are read in order: old epochs are done
                self._cache.pop(min(self._cache))
            self._cache[k] = (ids, labels)
        return self._cache[k]

    def _span(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        parts_ids, parts_labels = [], []
        pos = start
        while pos < stop:
            k, offset = divmod(pos, self.epoch_tokens)
            ids, labels = self._epoch(k)
            end = min(self.epoch_tokens, offset + stop - pos)
            parts_ids.append(ids[offset:end])
            parts_labels.append(labels[offset:end])
            pos += end - offset
        return np.concatenate(parts_ids), np.concatenate(parts_labels)

    def block(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Block ``i``: ids and labels, ``block_size + 1`` tokens each."""
        start = i * self.block_size
        return self._span(start, start + self.block_size + 1)

    def batch(self, step: int, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        """The blocks of training step ``step`` (0-based): ids, labels ``[batch, block + 1]``."""
        blocks = [self.block(step * batch_size + j) for j in range(batch_size)]
        return np.stack([b[0] for b in blocks]), np.stack([b[1] for b in blocks])
