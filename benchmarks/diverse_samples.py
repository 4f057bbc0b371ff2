"""Ten of the model's samples chosen to differ, without compiling them.

``sample-N`` compiles the model's first N priority samples, and most of them give the function
a count that an earlier one already gave (the same output, or as good as). Would N lists
chosen from a wider pool of samples (``device_samples.py sample --n 30``, then ``score
--lists``) to differ from each other find more? Each rule here reads only the lists' text and
their priority order, as a strategy could before compiling anything:

* ``first``: the first N (``sample-N``);
* ``distinct pass set``: skip a list whose set of passes an earlier pick has;
* ``last pass ≤ k`` / ``first pass ≤ k``: at most k picks ending (beginning) with one pass;
* ``mmr λ``: maximal marginal relevance, each pick the list that best trades its priority
  rank against λ times its largest Jaccard overlap of passes with the picks so far.

Each rule fills up with the pool's remaining lists in order where it skips too many. Shares of
the autotuner's gain per split with 95% bootstrap intervals, paired against ``first``; the rule
that does best on ``--choose-on`` (val: the split the model's training chose nothing on) is
reported on the others. Also how many of the first N lists repeat a count an earlier one got.

    .venv/bin/python benchmarks/diverse_samples.py SAMPLES.json.gz [--n 10]
        [--choose-on data/tuned.parquet:val] [-o reports/....json]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

from rich.console import Console
from rich.table import Table

from passlm.errors import InputError
from passlm.evaluate.metrics import best_of, share_points
from passlm.files import atomic_write
from sample_selection import read_samples  # the lists file's reader

Rule = Callable[[Sequence[str], int], list[int]]


def _fill(picked: list[int], size: int, n: int) -> list[int]:
    """``picked``, then the pool's other lists in priority order, n in all."""
    rest = [i for i in range(size) if i not in picked]
    return (picked + rest)[:n]


def capped(lists: Sequence[str], n: int, key: Callable[[str], object], cap: int) -> list[int]:
    """Priority order, at most ``cap`` picks per ``key`` of a list."""
    picked: list[int] = []
    seen: dict[object, int] = {}
    for i, passes in enumerate(lists):
        if len(picked) >= n:
            break
        k = key(passes)
        if seen.get(k, 0) < cap:
            picked.append(i)
            seen[k] = seen.get(k, 0) + 1
    return _fill(picked, len(lists), n)


def mmr(lists: Sequence[str], n: int, weight: float) -> list[int]:
    """Maximal marginal relevance over the lists' pass sets (rank as relevance)."""
    sets = [frozenset(p.split()) for p in lists]
    picked: list[int] = []
    rest = list(range(len(lists)))

    def value(i: int) -> float:
        overlap = max((len(sets[i] & sets[j]) / len(sets[i] | sets[j]) for j in picked), default=0)
        return -i / len(lists) - weight * overlap

    while rest and len(picked) < n:
        best = max(rest, key=value)
        picked.append(best)
        rest.remove(best)
    return picked


def rules() -> dict[str, Rule]:
    """Every rule, by name."""
    out: dict[str, Rule] = {
        "first": lambda lists, n: list(range(min(n, len(lists)))),
        "distinct pass set": partial(capped, key=lambda p: frozenset(p.split()), cap=1),
    }
    for cap in (1, 2, 3):
        out[f"last pass ≤ {cap}"] = partial(capped, key=lambda p: p.split()[-1], cap=cap)
    for cap in (2, 3):
        out[f"first pass ≤ {cap}"] = partial(capped, key=lambda p: p.split()[0], cap=cap)
    for weight in (0.5, 1.0, 2.0):
        out[f"mmr {weight}"] = partial(mmr, weight=weight)
    return out


def repeated(rows: list[dict], n: int) -> float:
    """The fraction of the first n compiled lists whose count an earlier one already got."""
    repeats = total = 0
    for r in rows:
        seen: set[int | None] = set()
        for count in r["counts"][:n]:
            total += 1
            repeats += count in seen
            seen.add(count)
    return repeats / total if total else 0.0


def score_rules(rows: list[dict], n: int) -> dict[str, dict]:
    """Each rule's share on ``rows`` (records of a samples file), paired against ``first``."""
    oz = [r["oz"] for r in rows]
    reference = [min(r["best"], r["oz"]) for r in rows]

    def counts(rule: Rule) -> list[int]:
        return [best_of(r["oz"], [r["counts"][i] for i in rule(r["lists"], n)]) for r in rows]

    all_rules = rules()
    first = counts(all_rules["first"])
    return {
        name: share_points(oz, counts(rule), reference, {"first": first})
        for name, rule in all_rules.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("samples", type=Path, help="device_samples.py score --lists output")
    parser.add_argument("--n", type=int, default=10, help="lists compiled per function")
    parser.add_argument("--choose-on", default="data/tuned.parquet:val")
    parser.add_argument("-o", "--output", type=Path)
    args = parser.parse_args()
    if args.n < 1:
        raise InputError(f"--n must be at least 1, got {args.n}")
    splits = {split: list(rows.values()) for split, rows in read_samples(args.samples).items()}
    if args.choose_on not in splits:
        raise InputError(f"--choose-on {args.choose_on}: not in {args.samples} ({list(splits)})")
    console = Console()
    report: dict = {"samples": str(args.samples), "n": args.n, "splits": {}}
    for split, rows in splits.items():
        pool = min((len(r["lists"]) for r in rows), default=0)
        scored = score_rules(rows, args.n)
        report["splits"][split] = {
            "functions": len(rows),
            "smallest pool": pool,
            "first n repeating a count": round(repeated(rows, args.n), 4),
            "rules": scored,
        }
        table = Table(
            "rule", "share [95%]", "vs first [95%]", "ahead / behind",
            title=f"{split}: {len(rows)} functions, {args.n} of at least {pool} samples; "
            f"{repeated(rows, args.n):.0%} of the first {args.n} repeat a count",
        )  # fmt: skip
        for name, r in scored.items():
            table.add_row(
                name, f"{r['share']} {r['interval']}", str(r["vs first"]),
                f"{r['ahead of first']} / {r['behind first']}",
            )  # fmt: skip
        console.print(table)
    chosen_rules = report["splits"][args.choose_on]["rules"]
    chosen = max(chosen_rules, key=lambda name: chosen_rules[name]["share"] or 0.0)
    report["chosen on " + args.choose_on] = chosen
    for split, r in report["splits"].items():
        console.print(f"{chosen} (chosen on {args.choose_on}) on {split}: {r['rules'][chosen]}")
    if args.output is not None:
        atomic_write(args.output, json.dumps(report, indent=1) + "\n")
        console.print(f"wrote {args.output}")


if __name__ == "__main__":
    from passlm.cli import report_errors

    report_errors(main)
