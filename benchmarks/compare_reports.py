"""Two models' ``passlm eval`` reports on the same test set, compared function by function.

Each report's share of the autotuner's gain has its own bootstrap interval, which says how much
of it comes from which functions the test set happens to hold; two models whose intervals
overlap may still differ, because the same functions carry both. This script resamples the
functions once for both reports (a paired bootstrap), so the interval is that of the
*difference* of the two shares, and counts the functions where each model's result is ahead.

    .venv/bin/python benchmarks/compare_reports.py BASE_REPORT_DIR OTHER_REPORT_DIR
        [--methods sample-1,sample-3,sample-10] [-o reports/....json]

A method written ``BASE NAME=OTHER NAME`` compares rows that the two reports name apart, such
as ``predict`` with each model's own calibrated margin: ``"predict (margin 0)=predict (margin 2)"``.

Both reports must hold the same functions (by hash) with the same ``-Oz`` and autotuner counts:
the same test set, evaluated with the same LLVM.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from passlm.errors import InputError
from passlm.evaluate.metrics import fraction_interval, gain_share, paired, stored_interval
from passlm.evaluate.report import read_report
from passlm.files import atomic_write

AUTOTUNER = "autotuner"
console = Console(width=140)


def _functions(path: Path) -> dict[str, dict]:
    """The per-function records of the report in directory ``path``, by function hash."""
    try:
        report = read_report(path)
    except FileNotFoundError:
        raise InputError(f"{path}: no passlm eval report (report.json) there") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable passlm eval report ({exc})") from None
    records = report.get("functions") if isinstance(report, dict) else None
    if not records:
        raise InputError(f"{path}: the report holds no per-function records")
    return {r["hash"]: r for r in records}


def _count(record: dict, method: str, where: Path) -> int:
    try:
        return int(record[method]["count"])
    except (KeyError, TypeError, ValueError):
        raise InputError(
            f"{where}: no {method!r} result for function {record.get('function')} "
            f"({record.get('hash')}); evaluate both models with that strategy"
        ) from None


def compare(base: Path, other: Path, methods: list[str]) -> dict:
    """Per method: both shares, the paired interval of ``other - base``, and the functions
    where each is ahead."""
    a, b = _functions(base), _functions(other)
    if set(a) != set(b):
        raise InputError(
            f"{base} and {other} hold different functions ({len(a)} and {len(b)}, "
            f"{len(set(a) & set(b))} in common): not the same test set"
        )
    hashes = list(a)  # the base report's order, so its interval is the one its report gives
    for h in hashes:
        if a[h]["oz_count"] != b[h]["oz_count"]:
            raise InputError(
                f"function {h}: -Oz gives {a[h]['oz_count']} in one report and "
                f"{b[h]['oz_count']} in the other: another LLVM?"
            )
        if _count(a[h], AUTOTUNER, base) != _count(b[h], AUTOTUNER, other):
            raise InputError(f"function {h}: the two reports' autotuner counts differ")
    oz = [a[h]["oz_count"] for h in hashes]
    ref = [_count(a[h], AUTOTUNER, base) for h in hashes]
    out: dict = {
        "base": str(base),
        "other": str(other),
        "functions": len(hashes),
        "autotuner_vs_oz": round((sum(oz) - sum(ref)) / sum(oz), 6) if sum(oz) else None,
        "methods": {},
    }
    for method in methods:
        # "NAME=OTHER NAME": rows named apart, e.g. predict with each model's own margin
        name_a, _, name_b = method.partition("=")
        name_b = name_b or name_a
        ca = [_count(a[h], name_a, base) for h in hashes]
        cb = [_count(b[h], name_b, other) for h in hashes]
        share_a, share_b = gain_share(oz, ca, ref), gain_share(oz, cb, ref)
        against = paired(oz, cb, ca, ref)
        out["methods"][method] = {
            "base_share": None if share_a is None else round(share_a, 6),
            "other_share": None if share_b is None else round(share_b, 6),
            "base_interval": stored_interval(fraction_interval(oz, ca, ref)),
            "other_interval": stored_interval(fraction_interval(oz, cb, ref)),
            "difference_interval": stored_interval(against.interval),
            "other_ahead": against.ahead,
            "base_ahead": against.behind,
        }
    return out


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def _span(v: list[float] | None, signed: bool = False) -> str:
    if v is None:
        return "-"
    f = "{:+.1f}" if signed else "{:.1f}"
    return f"[{f.format(100 * v[0])}, {f.format(100 * v[1])}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", type=Path, help="the first model's passlm eval output directory")
    parser.add_argument("other", type=Path, help="the second model's, on the same test set")
    parser.add_argument("--methods", default="sample-1,sample-3,sample-10")
    parser.add_argument("-o", "--output", type=Path, help="write the comparison as JSON")
    args = parser.parse_args()
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if not methods:
        raise InputError("--methods: name at least one method")
    result = compare(args.base, args.other, methods)
    table = Table(
        "method",
        "base",
        "other",
        "other − base [95%]",
        "other ahead",
        "base ahead",
        title=f"{result['functions']} functions; the autotuner saves "
        f"{result['autotuner_vs_oz'] or 0:.2%} of -Oz's instructions",
    )
    for method, r in result["methods"].items():
        table.add_row(
            method,
            f"{_pct(r['base_share'])} {_span(r['base_interval'])}",
            f"{_pct(r['other_share'])} {_span(r['other_interval'])}",
            _span(r["difference_interval"], signed=True),
            str(r["other_ahead"]),
            str(r["base_ahead"]),
        )
    console.print(table)
    if args.output:
        atomic_write(args.output, json.dumps(result, indent=1) + "\n")
        console.print(f"wrote {args.output}")


if __name__ == "__main__":
    from passlm.cli import report_errors

    report_errors(main)
