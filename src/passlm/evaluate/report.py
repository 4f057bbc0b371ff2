"""The evaluation report: JSON (everything), Markdown tables, PNG figures, one HTML page.

The HTML page is self-contained (styles inline, figures as data URIs), so it can be mailed or
attached to a CI run and opened anywhere. Every file is written atomically.
"""

from __future__ import annotations

import base64
import gzip
import html
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from passlm.files import atomic_write_files

FIGURES = {
    "overall.png": "Overall improvement over -Oz, per method",
    "by_source.png": "By code base (the paper's Figure 4)",
    "by_size.png": "By input size in unoptimized instructions (Figure 5)",
    "pass_frequency.png": "Pass frequency in the chosen lists (Figure 3)",
    "list_length.png": "Length of the chosen lists (Figure 3)",
}


@dataclass(frozen=True)
class Section:
    """One table of the report."""

    title: str
    header: Sequence[str]
    rows: Sequence[Sequence[str]]
    note: str = ""


def _pct(v: float | None, signed: bool = True, digits: int = 2) -> str:
    if v is None:
        return "-"
    return f"{100 * v:+.{digits}f}%" if signed else f"{100 * v:.{digits}f}%"


def _given_pct(v: float | None) -> str:
    """A value already in percent."""
    return "-" if v is None else f"{v:.1f}%"


def share_text(row: dict[str, Any]) -> str:
    """A row's fraction of the autotuner's gain, with its interval in square brackets where
    the row has one (and it is not a single point); "-" where there is no fraction."""
    share = _pct(row["fraction_of_autotuner"], signed=False, digits=1)
    ci = row.get("fraction_interval")
    if not ci or ci[0] == ci[1]:
        return share
    return f"{share} [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"


def _num(v: float | int | None, digits: int = 1) -> str:
    if v is None:
        return "-"
    return f"{v:,}" if isinstance(v, int) else f"{v:,.{digits}f}"


def sections(report: dict[str, Any]) -> list[Section]:
    """The report's tables, in reading order (rendered as Markdown and as HTML)."""
    out = []
    rows = report["rows"]
    out.append(
        Section(
            "Methods vs -Oz (the paper's Tables III/IV)",
            ("method", "extra compiles", "functions improved", "functions regressed",
             "instructions saved", "instructions regressed", "overall improvement",
             "of autotuner's gain", "proposal seconds"),
            [
                (r["method"],
                 "-" if r["extra_compiles"] is None
                 else f"{r['extra_compiles']:,} ({r['compiles_per_function']:.1f}/fn)",
                 _num(r["improved"]), _num(r["regressed"]), _num(r["saved"]), _num(r["lost"]),
                 _pct(r["overall"]), share_text(r),
                 _num(r["seconds"]))
                for r in rows
            ],
            "Extra compiles: lists compiled beyond -Oz. Overall improvement: "
            "(Σ -Oz − Σ method) / Σ -Oz over all functions."
            + (" In square brackets: a 95% interval of the share of the autotuner's gain, a "
               "bootstrap over the test functions (which functions a test set holds decides "
               "much of that share where few functions carry the gain)."
               if any(r.get("fraction_interval") for r in rows) else ""),
        )
    )  # fmt: skip
    if report.get("comparisons"):
        out.append(
            Section(
                "Against the baselines at the same compiles",
                ("method", "baseline", "difference in share of the autotuner's gain (points)",
                 "95% interval", "functions ahead", "functions behind"),
                [
                    (c["method"], c["baseline"], f"{100 * c['difference']:+.1f}",
                     "-" if c["interval"] is None
                     else f"[{100 * c['interval'][0]:+.1f}, {100 * c['interval'][1]:+.1f}]",
                     _num(c["ahead"]), _num(c["behind"]))
                    for c in report["comparisons"]
                ],
                "Paired over the test functions: the method's share minus the baseline's, "
                "bootstrapped on the same functions. An interval that holds 0 is a tie at this "
                "number of functions; the random-search row is one draw of its seed.",
            )
        )  # fmt: skip
    q = report.get("quality")
    if q and q.get("ir_functions"):
        out.append(
            Section(
                "Generated IR (the paper's §IV-D), greedy full answers",
                ("metric", "value"),
                [
                    ("functions whose IR was generated", _num(q["ir_functions"])),
                    ("answers with a complete IR block", _given_pct(q["ir_complete_pct"])),
                    ("generated IR parses and verifies", _given_pct(q["ir_parses_pct"])),
                    ("exact match with the compiler's output", _given_pct(q["ir_exact_pct"])),
                    ("BLEU against the compiler's output", _num(q["ir_bleu"], 3)),
                    ("instruction count MAPE, before", _given_pct(q["count_mape_before"])),
                    ("instruction count MAPE, after", _given_pct(q["count_mape_after"])),
                ],
            )
        )  # fmt: skip
        if q.get("taxonomy"):
            total = sum(q["taxonomy"].values())
            out.append(
                Section(
                    "Errors in the generated IR (the paper's Table V)",
                    ("error", "count", "share"),
                    [(k, _num(v), _pct(v / total, False, 1)) for k, v in q["taxonomy"].items()],
                )
            )
    for key, title in (("by_source", "By code base"), ("by_size", "By input size")):
        groups = report.get(key) or {}
        if not groups:
            continue
        methods = report["plotted_methods"]
        out.append(
            Section(
                title,
                ("group", "functions", "-Oz instructions", *methods),
                [
                    (g, _num(v["functions"]), _num(v["oz_instructions"]),
                     *(_pct(v["overall"][m]) for m in methods))
                    for g, v in groups.items()
                ],
            )
        )  # fmt: skip
    ts = report["test_set"]
    out.append(
        Section(
            "Test functions",
            ("source", "kind", "functions", "reference"),
            [(s["path"], s["kind"], _num(s["functions"]), s["reference"]) for s in ts["sources"]],
            f"Splits: {', '.join(ts['splits'])}. Dropped: {ts['seen_in_training']} seen in "
            f"training ({ts['training_set'] or 'no training set given: not deduplicated'}), "
            f"{ts['repeated']} repeated across sources.",
        )
    )
    return out


def to_markdown(report: dict[str, Any], figures: Sequence[str]) -> str:
    """The report as Markdown; figures are linked as files next to it."""
    lines = [f"# {report['title']}", "", _provenance(report), ""]
    for s in sections(report):
        lines += [f"## {s.title}", ""]
        lines.append("| " + " | ".join(s.header) + " |")
        lines.append("|" + "|".join("---" for _ in s.header) + "|")
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in s.rows]
        if s.note:
            lines += ["", s.note]
        lines.append("")
    for name in figures:
        lines += [f"## {FIGURES.get(name, name)}", "", f"![{FIGURES.get(name, name)}]({name})", ""]
    for note in report.get("notes", []):
        lines.append(f"- {note}")
    return "\n".join(lines).rstrip() + "\n"


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f0f0f0; }
p.note, p.prov { color: #555; font-size: 0.85em; }
img { max-width: 100%; border: 1px solid #eee; }
"""


def to_html(report: dict[str, Any], figures: dict[str, bytes]) -> str:
    """The report as one self-contained HTML page."""
    e = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{e(report['title'])}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{e(report['title'])}</h1>",
        f'<p class="prov">{e(_provenance(report))}</p>',
    ]
    for s in sections(report):
        parts.append(f"<h2>{e(s.title)}</h2><table><thead><tr>")
        parts += [f"<th>{e(h)}</th>" for h in s.header]
        parts.append("</tr></thead><tbody>")
        for r in s.rows:
            parts.append("<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>")
        parts.append("</tbody></table>")
        if s.note:
            parts.append(f'<p class="note">{e(s.note)}</p>')
    for name, data in figures.items():
        title = FIGURES.get(name, name)
        uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
        parts.append(f'<h2>{e(title)}</h2><img src="{uri}" alt="{e(title)}">')
    if report.get("notes"):
        parts.append("<ul>" + "".join(f"<li>{e(n)}</li>" for n in report["notes"]) + "</ul>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _compiles(costs: dict[str, Any]) -> str:
    text = f"{costs['compiles']:,} compiles"
    if costs.get("from_memory"):  # reports written before the compile cache have no count
        text += f" ({costs['from_memory']:,} of them answered from memory)"
    return text


def _provenance(report: dict[str, Any]) -> str:
    return (
        f"Model {report['model']} · {report['test_set']['functions']:,} functions · "
        f"LLVM {report['llvm_version']} · passlm {report['passlm_version']} · "
        f"{_compiles(report['costs'])} in {report['costs']['compile_seconds']} s · "
        f"command: {report['command']}"
    )


REPORT_JSON = "report.json"
# the per-function records, compressed: 5,840 functions x 30 methods are 15 MB of indented JSON
# and 0.7 MB gzipped, which keeps a committed report small and report.json readable
FUNCTIONS_JSON = "functions.json.gz"


def write_report(out_dir: Path, report: dict[str, Any], figures: dict[str, bytes]) -> list[Path]:
    """Write report.json (everything but the per-function records), functions.json.gz (those),
    report.md, report.html and the PNG figures into ``out_dir``: all at once into a new
    directory, within a few renames into an existing one
    (:func:`passlm.files.atomic_write_files`)."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    summary = {k: v for k, v in report.items() if k != "functions"}
    functions = json.dumps(report.get("functions", []), separators=(",", ":")) + "\n"
    files: dict[str, str | bytes] = {
        **figures,
        "report.md": to_markdown(report, list(figures)),
        "report.html": to_html(report, figures),
        FUNCTIONS_JSON: gzip.compress(functions.encode(), mtime=0),  # byte-for-byte repeatable
        REPORT_JSON: json.dumps(summary, indent=1) + "\n",  # last: it marks a finished report
    }
    return atomic_write_files(out_dir, files)


def read_report(out_dir: Path) -> dict[str, Any]:
    """A report written by :func:`write_report`, per-function records included (reports written
    before they moved to functions.json.gz hold them in report.json); raises ValueError (bad
    JSON or gzip) or OSError."""
    report = json.loads((out_dir / REPORT_JSON).read_text())
    functions = out_dir / FUNCTIONS_JSON
    if isinstance(report, dict) and functions.is_file():
        try:
            report["functions"] = json.loads(gzip.decompress(functions.read_bytes()))
        except (OSError, EOFError) as exc:  # gzip's errors for a damaged file
            raise ValueError(f"{functions.name}: {exc}") from None
    return report
