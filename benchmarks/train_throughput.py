"""Training throughput: tokens/second of the real training loop on this machine, per preset.

For each preset and each variant of the loop, trains on real (prompt, answer) examples of the
data set for a few warm-up steps and then a timed stretch, with the same batch shape as
``passlm train`` (default 4 x 1024 tokens), and prints side by side the parameters, tokens/s,
seconds per step, the hours one epoch of the data set would take, and the speed-up over the
first variant. Variants: ``fp32`` and ``bf16`` (``passlm train --precision``), and
``full-fp32`` / ``full-bf16``, the loop as it was before the output layer ran on the answer
tokens only (full [batch, block, vocab] logits, then the masked cross-entropy).

    .venv/bin/python benchmarks/train_throughput.py [--dataset data/dataset.parquet]
        [--presets cpu-tiny,cpu-small,cpu-base] [--variants full-fp32,fp32,bf16] [--steps 8]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from passlm.data.dataset import read_dataset
from passlm.model import train as train_module
from passlm.model.config import load_preset, parameter_count
from passlm.model.packing import IGNORE
from passlm.model.tokenizer import count_tokens, load_tokenizer
from passlm.model.train import TrainConfig, train

console = Console(width=120)
ANSWER_LOSS = train_module.answer_loss


def full_logits_loss(model, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, int]:
    """The earlier loop's loss: logits at every position, then the masked cross-entropy."""
    logits = model(input_ids=x).logits  # [batch, block, vocab]
    total = torch.nn.functional.cross_entropy(
        logits.float().flatten(0, 1), y.flatten(), ignore_index=IGNORE, reduction="sum"
    )
    return total, int((y != IGNORE).sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=Path("data/dataset.parquet"))
    parser.add_argument("--tokenizer", type=Path, default=Path("data/tokenizer.json"))
    parser.add_argument("--presets", default="cpu-tiny,cpu-small,cpu-base")
    parser.add_argument("--variants", default="full-fp32,fp32,bf16")
    parser.add_argument("--steps", type=int, default=8, help="timed steps per preset")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--block-size", type=int, default=1024)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    examples, _ = read_dataset(args.dataset)
    pairs = [(e.prompt, e.answer) for e in examples if e.split == "train"]
    tok = load_tokenizer(args.tokenizer)
    epoch_tokens = sum(count_tokens(tok, [p + a for p, a in pairs])) + 2 * len(pairs)
    console.print(
        f"{len(pairs)} training examples of {args.dataset}, {epoch_tokens:,} tokens per epoch; "
        f"batch {args.batch_size} x {args.block_size}; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads on {os.cpu_count()} cores, device {args.device}"
    )
    table = Table(title="training throughput")
    for col in ("preset", "variant", "parameters", "tokens/s", "s/step", "hours/epoch", "speed-up"):
        table.add_column(col, justify="left" if col in ("preset", "variant") else "right")
    for name in args.presets.split(","):
        preset = load_preset(name)
        first = None
        for variant in args.variants.split(","):
            step_s = _time_variant(args, pairs, tok, preset, variant)
            first = first or step_s
            tps = args.batch_size * args.block_size / step_s
            table.add_row(
                name,
                variant,
                f"{parameter_count(preset, tok.get_vocab_size()) / 1e6:.2f}M",
                f"{tps:,.0f}",
                f"{step_s:.2f}",
                f"{epoch_tokens / tps / 3600:.2f}",
                f"{first / step_s:.2f}x",
            )
    console.print(table)


def _time_variant(args, pairs, tok, preset, variant: str) -> float:
    """Median seconds per timed step of the real loop in this variant."""
    full, _, precision = variant.rpartition("-")
    if full not in ("", "full") or precision not in ("fp32", "bf16"):
        raise SystemExit(f"unknown variant {variant!r}: use [full-]fp32 or [full-]bf16")
    train_module.answer_loss = full_logits_loss if full else ANSWER_LOSS
    try:
        total = args.warmup + args.steps
        config = TrainConfig(
            steps=total,
            batch_size=args.batch_size,
            block_size=args.block_size,
            warmup_steps=1,
            checkpoint_every=total,
            device=args.device,
            precision=precision,
        )
        times: list[float] = []
        last = [time.perf_counter()]

        def on_step(record: dict, times=times, last=last) -> None:
            now = time.perf_counter()
            if record["step"] > args.warmup:
                times.append(now - last[0])
            last[0] = now

        with tempfile.TemporaryDirectory() as tmp:
            last[0] = time.perf_counter()
            train(pairs, tok, preset, config, tmp, resume=False, on_step=on_step)
        return statistics.median(times)
    finally:
        train_module.answer_loss = ANSWER_LOSS


if __name__ == "__main__":
    from passlm.cli import report_errors

    report_errors(main)
