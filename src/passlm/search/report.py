"""What the autotuner found: improvement over -Oz, and the pass-frequency and list-length
distributions (the paper's Figure 3)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from passlm.llvm.passes import parse_pass_list
from passlm.search.tuned import TunedFunction


@dataclass(frozen=True)
class Summary:
    """Improvement of the best lists over -Oz on a set of functions."""

    functions: int
    improved: int  # best list has fewer instructions than -Oz
    regressed: int  # more than -Oz (only possible when -Oz itself failed)
    o0_total: int
    oz_total: int
    best_total: int

    @property
    def overall_improvement(self) -> float:
        """(Σ -Oz − Σ best) / Σ -Oz."""
        return (self.oz_total - self.best_total) / self.oz_total if self.oz_total else 0.0

    @property
    def improved_fraction(self) -> float:
        """Share of functions where the best list beats -Oz."""
        return self.improved / self.functions if self.functions else 0.0


def summarize(rows: Sequence[TunedFunction]) -> Summary:
    """Totals over ``rows`` (functions whose -Oz failed are left out)."""
    rows = [r for r in rows if r.oz_count >= 0]
    return Summary(
        functions=len(rows),
        improved=sum(r.best_count < r.oz_count for r in rows),
        regressed=sum(r.best_count > r.oz_count for r in rows),
        o0_total=sum(r.o0_count for r in rows),
        oz_total=sum(r.oz_count for r in rows),
        best_total=sum(r.best_count for r in rows),
    )


def pass_frequency(rows: Sequence[TunedFunction], improved_only: bool = False) -> Counter[str]:
    """How often each pass or O-level appears in the best lists."""
    counts: Counter[str] = Counter()
    for r in rows:
        if not improved_only or r.best_count < r.oz_count:
            counts.update(parse_pass_list(r.best_passes).passes)
    return counts


def length_histogram(rows: Sequence[TunedFunction]) -> Counter[int]:
    """Number of functions by length of their best list."""
    return Counter(len(parse_pass_list(r.best_passes)) for r in rows)


def plot(rows: Sequence[TunedFunction], out_dir: str | Path, top: int = 30) -> list[Path]:
    """Write the pass-frequency and list-length plots as PNG files; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    freq = pass_frequency(rows).most_common(top)
    fig, ax = plt.subplots(figsize=(10, 4))
    ax.bar([n for n, _ in freq], [c for _, c in freq], color="#4c72b0")
    ax.set_ylabel("occurrences in best lists")
    ax.set_title(f"Pass frequency in the autotuner's best lists ({len(rows)} functions)")
    ax.tick_params(axis="x", rotation=75, labelsize=8)
    fig.tight_layout()
    p1 = out / "pass_frequency.png"
    fig.savefig(p1, dpi=120)
    plt.close(fig)

    hist = length_histogram(rows)
    fig, ax = plt.subplots(figsize=(6, 4))
    lengths = sorted(hist)
    ax.bar(lengths, [hist[n] for n in lengths], color="#55a868")
    ax.set_xlabel("passes in the best list")
    ax.set_ylabel("functions")
    ax.set_title("Best pass-list length")
    fig.tight_layout()
    p2 = out / "list_length.png"
    fig.savefig(p2, dpi=120)
    plt.close(fig)
    return [p1, p2]
