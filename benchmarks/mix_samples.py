"""Two sets of samples of the same functions, mixed: the first m lists of one, then the other's.

``sample-N`` compiles one model's first N priority samples for one prompt. Would N compiles do
better split between two sources of lists: two models, or one model read two ways (a model
trained on plain and ``-Oz``-summary prompts together, ``passlm train`` under "Optimize")? Given
two samples files of the same functions (``benchmarks/device_samples.py score --lists``), this
scores, for every m from 0 to N, the first m lists of the first file, then the second file's
lists not yet compiled, then the first file's again where the second ran short, N in all;
shares of the autotuner's gain per split with their 95% bootstrap intervals, and paired
intervals against each file's own ``sample-N``. Every list was compiled by ``score``, so each
mix is an exact replay of what it would compile. A choice of m should be made on a split
other than the one it is reported on (val, say, for the held-out and unseen code bases).

    .venv/bin/python benchmarks/mix_samples.py FIRST.json.gz SECOND.json.gz
        [--budgets 3,10] [-o reports/....json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from passlm.errors import InputError
from passlm.evaluate.metrics import share_points
from passlm.files import atomic_write
from sample_selection import read_samples, then_other  # the lists file's reader, the mix


def mix_split(first: dict[str, dict], second: dict[str, dict], n: int) -> dict[str, dict]:
    """Every mix at a budget of n compiles on the functions both files hold."""
    hashes = [h for h in first if h in second]
    oz = [first[h]["oz"] for h in hashes]
    reference = [min(first[h]["best"], first[h]["oz"]) for h in hashes]
    own = {
        "first": [then_other(first[h], second[h], n, n) for h in hashes],
        "second": [then_other(second[h], first[h], n, n) for h in hashes],
    }
    return {
        f"first {m} + second {n - m}": share_points(
            oz, [then_other(first[h], second[h], n, m) for h in hashes], reference, own
        )
        for m in range(n + 1)
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("first", type=Path, help="samples file whose lists come first")
    parser.add_argument("second", type=Path, help="samples file whose lists follow")
    parser.add_argument("--budgets", default="3,10")
    parser.add_argument("-o", "--output", type=Path)
    args = parser.parse_args()
    try:
        budgets = [int(b) for b in args.budgets.split(",") if b.strip()]
    except ValueError:
        raise InputError(f"--budgets: comma-separated numbers, not {args.budgets!r}") from None
    if not budgets or min(budgets) < 1:
        raise InputError(f"--budgets: one or more numbers of at least 1, not {args.budgets!r}")
    first, second = read_samples(args.first), read_samples(args.second)
    shared = [split for split in first if split in second]
    if not shared:
        raise InputError(f"{args.first} and {args.second} hold no split in common")
    console = Console()
    report: dict = {"first": str(args.first), "second": str(args.second), "splits": {}}
    for split in shared:
        functions = sum(h in second[split] for h in first[split])
        report["splits"][split] = {"functions": functions}
        for n in budgets:
            rows = mix_split(first[split], second[split], n)
            report["splits"][split][f"budget {n}"] = rows
            table = Table(
                "lists", "share [95%]", "vs first [95%]", "vs second [95%]",
                title=f"{split}: {functions} functions, {n} compiles",
            )  # fmt: skip
            for name, r in rows.items():
                table.add_row(
                    name, f"{r['share']} {r['interval']}", str(r["vs first"]),
                    str(r["vs second"]),
                )  # fmt: skip
            console.print(table)
    if args.output is not None:
        atomic_write(args.output, json.dumps(report, indent=1) + "\n")
        console.print(f"wrote {args.output}")


if __name__ == "__main__":
    from passlm.cli import report_errors

    report_errors(main)
