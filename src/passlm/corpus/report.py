"""Showing a corpus build: a rich progress bar while it runs, tables when it is done."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from passlm.corpus.build import Reporter
from passlm.corpus.compile import FileResult
from passlm.corpus.splits import SPLITS


class RichReporter(Reporter):
    """Stages as status lines and compilation as a progress bar; use as a context manager."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[functions]} functions, {task.fields[failed]} failed"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self.task: Any = None
        self.total = 0
        self.done = 0
        self.functions = 0
        self.failed = 0

    def __enter__(self) -> RichReporter:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def stage(self, message: str) -> None:
        self.progress.console.print(f"[dim]{message}[/]", highlight=False)

    def start_files(self, total: int) -> None:
        self.total = total
        self.task = self.progress.add_task("compiling", total=total, functions=0, failed=0)

    def file_done(self, result: FileResult) -> None:
        self.functions += len(result.functions)
        self.failed += result.status == "failed"
        self.done += 1
        if not self.console.is_terminal and self.done * 10 // self.total > (
            (self.done - 1) * 10 // self.total
        ):  # a log file gets a line per 10% instead of a live bar
            self.console.print(
                f"compiled {self.done}/{self.total} files: {self.functions} functions, "
                f"{self.failed} failed",
                highlight=False,
            )
        self.progress.update(self.task, advance=1, functions=self.functions, failed=self.failed)


def summary_tables(summary: dict[str, Any]) -> list[Table]:
    """Per-source, drop and split tables from a summary (as stored in the metadata)."""
    sources = Table(title="sources")
    sources.add_column("source", overflow="fold")
    for name in ("files", "ok", "failed", "skipped", "functions", "kept"):
        sources.add_column(name, justify="right", no_wrap=True, min_width=len(name))
    for s in summary["sources"]:
        sources.add_row(
            s["name"],
            str(s["files"]),
            str(s["files_ok"]),
            str(s["files_failed"]),
            str(s["files_skipped"]),
            str(s["functions"]),
            str(s["kept"]),
        )
    sources.add_section()
    sources.add_row(
        "total",
        *(
            str(sum(s[k] for s in summary["sources"]))
            for k in ("files", "files_ok", "files_failed", "files_skipped", "functions", "kept")
        ),
    )
    drops = Table("reason", "functions dropped", title="drops")
    for reason, n in summary["drops"].items():
        drops.add_row(reason, str(n))
    splits = Table("split", "functions", "files", title="splits")
    for name in SPLITS:
        counts = summary["splits"].get(name, {"functions": 0, "files": 0})
        splits.add_row(name, str(counts["functions"]), str(counts["files"]))
    return [sources, drops, splits]


def info_lines(meta: dict[str, Any]) -> list[str]:
    """Key facts of a corpus's metadata, one per line."""
    limits = meta.get("limits", {})
    return [
        f"LLVM {meta.get('llvm_version')}, passlm {meta.get('passlm_version')}, "
        f"IR recipe: {meta.get('ir_recipe')}",
        f"seed {meta.get('seed')}, split ratios {meta.get('split_ratios')}, "
        f"holdout {meta.get('holdout')}",
        *(f"without the functions of {path}" for path in meta.get("exclude_corpora") or []),
        f"limits: max_chars={limits.get('max_chars')}, "
        f"max_instructions={limits.get('max_instructions')}, "
        f"min_instructions={limits.get('min_instructions')}",
        f"command: {' '.join(meta.get('command') or [])}",
        f"built in {meta.get('summary', {}).get('seconds')} s",
        *(f"source {s['name']}: {s['licence']}" for s in meta.get("sources", [])),
    ]
