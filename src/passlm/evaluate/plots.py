"""The report's figures as PNG bytes (matplotlib, no display needed)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

COLORS = {"baseline": "#8c8c8c", "model": "#4c72b0", "reference": "#55a868"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=110)
    _pyplot().close(fig)
    return buf.getvalue()


def overall(rows: Sequence[dict[str, Any]], title: str) -> bytes:
    """Horizontal bars: each method's overall improvement over -Oz (Table III's last column)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 0.42 * len(rows) + 1.2))
    names = [r["method"] for r in rows][::-1]
    values = [100 * r["overall"] for r in rows][::-1]
    colors = [COLORS.get(r["group"], "#4c72b0") for r in rows][::-1]
    ax.barh(range(len(names)), values, color=colors)
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels(names)
    ax.axvline(0, color="black", linewidth=0.8)
    for y, v in enumerate(values):
        # labels right of the bar's end, or right of zero for a loss: never over the names
        ax.annotate(f"{v:+.2f}%", (max(v, 0.0), y), xytext=(3, 0), textcoords="offset points",
                    va="center", ha="left", fontsize=8)  # fmt: skip
    ax.set_xlabel("improvement over -Oz (instruction count), %")
    ax.set_title(title)
    return _png(fig)


def grouped(
    groups: dict[str, dict[str, Any]], methods: Sequence[str], title: str, xlabel: str
) -> bytes:
    """Grouped bars: overall improvement per group (code base, size bin) for a few methods."""
    plt = _pyplot()
    names = list(groups)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(names) * max(1, len(methods)) / 2), 4))
    width = 0.8 / max(1, len(methods))
    for j, m in enumerate(methods):
        xs = [i + (j - (len(methods) - 1) / 2) * width for i in range(len(names))]
        ax.bar(xs, [100 * groups[g]["overall"][m] for g in names], width, label=m)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels([f"{g}\n({groups[g]['functions']} fns)" for g in names], fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("improvement over -Oz, %")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return _png(fig)


def pass_frequency(stats: dict[str, dict[str, Any]], top: int = 25) -> bytes:
    """Figure 3 (left): how often each pass appears in the chosen lists, per method."""
    plt = _pyplot()
    first = next(iter(stats.values()))["frequency"]
    passes = list(first)[:top]
    for s in stats.values():  # passes only the other methods use still show
        passes += [p for p in list(s["frequency"])[:top] if p not in passes]
    passes = passes[: top + 10]
    fig, ax = plt.subplots(figsize=(11, 4))
    width = 0.8 / len(stats)
    for j, (name, s) in enumerate(stats.items()):
        total = sum(s["frequency"].values()) or 1
        xs = [i + (j - (len(stats) - 1) / 2) * width for i in range(len(passes))]
        ax.bar(xs, [100 * s["frequency"].get(p, 0) / total for p in passes], width, label=name)
    ax.set_xticks(range(len(passes)))
    ax.set_xticklabels(passes, rotation=75, fontsize=7)
    ax.set_ylabel("share of passes in chosen lists, %")
    ax.set_title("Pass frequency")
    ax.legend(fontsize=8)
    return _png(fig)


def list_length(stats: dict[str, dict[str, Any]]) -> bytes:
    """Figure 3 (right): distribution of the chosen lists' lengths, per method."""
    plt = _pyplot()
    lengths = sorted({int(k) for s in stats.values() for k in s["lengths"]})
    fig, ax = plt.subplots(figsize=(7, 3.5))
    width = 0.8 / len(stats)
    for j, (name, s) in enumerate(stats.items()):
        total = sum(s["lengths"].values()) or 1
        xs = [i + (j - (len(stats) - 1) / 2) * width for i in range(len(lengths))]
        ax.bar(xs, [100 * s["lengths"].get(str(n), 0) / total for n in lengths], width, label=name)
    ax.set_xticks(range(len(lengths)))
    ax.set_xticklabels([str(n) for n in lengths])
    ax.set_xlabel("passes in the list (an O-level counts as one)")
    ax.set_ylabel("functions, %")
    ax.set_title("Pass list length")
    ax.legend(fontsize=8)
    return _png(fig)
