"""Evaluation during training: a fixed sample of validation functions, compiled for real."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

from passlm.evaluate.model_eval import EvalFunction, evaluate_model, summarize
from passlm.llvm.backend import Compiler


def sample_functions(
    functions: Sequence[EvalFunction], n: int, seed: int = 0
) -> list[EvalFunction]:
    """``n`` functions drawn with ``seed`` (all if fewer), in a fixed order."""
    chosen = list(functions)
    if n < len(chosen):
        chosen = random.Random(seed).sample(chosen, n)
    return chosen


def validation_fn(
    functions: Sequence[EvalFunction],
    compiler: Compiler,
    tokenizer,
    *,
    ir_functions: int = 8,
    batch_size: int = 8,
) -> Callable[[Any, int], dict[str, Any]]:
    """An ``eval_fn`` for :func:`passlm.model.train.train`: the summary of a greedy evaluation."""

    def run(model, step: int) -> dict[str, Any]:
        outcomes = evaluate_model(
            model, tokenizer, functions, compiler, ir_functions=ir_functions, batch_size=batch_size
        )
        return summarize(outcomes)

    return run
