"""The training curve (the paper's Figure 2): loss, and the validation metrics over steps."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def read_log(path: str | Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Step records and evaluation records of a ``train_log.jsonl``."""
    steps, evals = [], []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        record = json.loads(line)
        (evals if "eval" in record else steps).append(record)
    return steps, evals


def _smooth(values: list[float], window: int) -> list[float]:
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def plot_training(log_path: str | Path, png_path: str | Path) -> Path:
    """Loss; improvement over -Oz of the greedy lists; count error; generated IR that parses."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps, evals = read_log(log_path)
    # a run that validated nothing (--eval-functions 0) has only its loss to draw
    fig, axes = plt.subplots(1, 4 if evals else 1, figsize=(16, 3.6) if evals else (5, 3.6))
    axes = list(axes) if evals else [axes]
    if steps:
        xs = [r["step"] for r in steps]
        losses = [r["loss"] for r in steps]
        axes[0].plot(xs, losses, color="#cccccc", linewidth=0.8)
        axes[0].plot(xs, _smooth(losses, 25), color="#4c72b0")
    axes[0].set_title("training loss (answer tokens)")
    axes[0].set_yscale("log")
    if evals:
        _plot_evals(axes[1:], evals)
    for ax in axes:
        ax.set_xlabel("step")
    fig.tight_layout()
    out = Path(png_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _plot_evals(axes, evals: list[dict]) -> None:
    """The validation panels: improvement over -Oz, count error, generated IR."""
    ex = [r["step"] for r in evals]

    def series(key: str, scale: float = 1.0) -> list[float]:
        return [
            float("nan") if r["eval"].get(key) is None else r["eval"][key] * scale for r in evals
        ]

    gain, error, ir = axes
    gain.plot(ex, [100 * r["eval"]["model"]["overall"] for r in evals], "o-", label="model")
    gain.plot(ex, [100 * r["eval"]["autotuner"]["overall"] for r in evals], "--", label="autotuner")
    gain.axhline(0, color="black", linewidth=0.6)
    gain.set_title("improvement over -Oz (%), greedy, validation")
    gain.legend(fontsize=8)
    error.plot(ex, series("count_mape_before"), "o-", label="before")
    error.plot(ex, series("count_mape_after"), "o-", label="after")
    error.set_title("instruction count error (MAPE %)")
    error.legend(fontsize=8)
    ir.plot(ex, series("ir_parses_pct"), "o-", label="parses")
    ir.plot(ex, series("ir_exact_pct"), "o-", label="exact match")
    ir.plot(ex, series("ir_bleu", 100), "o-", label="BLEU x100")
    ir.set_title("generated IR (%)")
    ir.legend(fontsize=8)
