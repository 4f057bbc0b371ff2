"""The ``passlm`` command. Thin: it parses arguments and calls the library."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from passlm import __version__
from passlm.errors import InputError, PasslmError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="LLM-guided LLVM pass lists for code size; the compiler guarantees correctness.",
)
console = Console()
err_console = Console(stderr=True)

InputPath = Annotated[Path, typer.Argument(help="Input file (.c, .cpp, .ll or .bc).")]
OutputPath = Annotated[Path | None, typer.Option("-o", "--output", help="Output file.")]
Workers = Annotated[
    int | None,
    typer.Option("--workers", "-j", help="Compile worker processes (default: all cores)."),
]
Timeout = Annotated[float, typer.Option("--timeout", help="Seconds allowed per compile.")]


def _toolchain():
    from passlm.llvm.toolchain import default_toolchain

    return default_toolchain()


def _emit(text: str, output: Path | None) -> None:
    from passlm.files import atomic_write

    if output is None:
        sys.stdout.write(text)
    else:
        atomic_write(output, text)


@app.command("ir")
def ir_cmd(
    source: InputPath,
    output: OutputPath = None,
    normalized: Annotated[bool, typer.Option("--normalize", help="Normalize the IR.")] = False,
) -> None:
    """Compile C/C++ (or read .ll/.bc) to unoptimized LLVM IR."""
    from passlm.llvm.ir import load_ir, normalize

    text = load_ir(source, _toolchain())
    _emit(normalize(text) if normalized else text, output)


@app.command("split")
def split_cmd(
    source: InputPath,
    output: Annotated[Path, typer.Option("-o", "--output", help="Directory for the modules.")],
) -> None:
    """Split a module into one normalized module per defined function."""
    from passlm.files import atomic_write, safe_filename
    from passlm.llvm.ir import count_instructions, load_ir, split_functions

    tc = _toolchain()
    modules = split_functions(load_ir(source, tc), tc)
    if output.exists() and not output.is_dir():
        raise InputError(f"{output}: exists and is not a directory")
    output.mkdir(parents=True, exist_ok=True)
    table = Table("function", "instructions", "file")
    used: set[str] = set()
    for name, text in modules.items():
        stem = base = safe_filename(name)
        k = 1
        while stem in used:  # two names may sanitize to the same file name
            stem, k = f"{base}.{k}", k + 1
        used.add(stem)
        path = output / f"{stem}.ll"
        atomic_write(path, text)
        table.add_row(name, str(count_instructions(text)), str(path))
    console.print(table)


@app.command("passes")
def passes_cmd(
    excluded: Annotated[
        bool, typer.Option("--excluded", help="List the excluded registry passes and why.")
    ] = False,
) -> None:
    """List the action space: transform passes and O-levels of LLVM 19."""
    from passlm.llvm import passes

    if excluded:
        table = Table("pass", "excluded because")
        for name, rule in sorted(passes.EXCLUDED.items()):
            table.add_row(name, rule)
    else:
        table = Table("pass", "kind")
        for name in passes.ALL_ACTIONS:
            table.add_row(name, passes.pass_kind(name))
    console.print(table)
    n = len(passes.EXCLUDED) if excluded else len(passes.ACTION_SPACE)
    console.print(f"{n} {'excluded' if excluded else 'transform'} passes")


@app.command("run")
def run_cmd(
    source: InputPath,
    passes_text: Annotated[
        str, typer.Option("--passes", "-p", help='Pass list, e.g. "-mem2reg -instcombine -Oz".')
    ],
    output: OutputPath = None,
    backend: Annotated[
        str, typer.Option("--backend", help="inprocess (isolated worker) or opt (subprocess).")
    ] = "inprocess",
    timeout: Timeout = 60.0,
) -> None:
    """Run a pass list on a file: counts before and after, optimized IR to -o."""
    from passlm.llvm.backend import SubprocessCompiler
    from passlm.llvm.ir import load_ir
    from passlm.llvm.passes import parse_pass_list
    from passlm.llvm.pool import WorkerPool

    pass_list = parse_pass_list(passes_text)
    tc = _toolchain()
    ir = load_ir(source, tc)
    if backend == "opt":
        compiler = SubprocessCompiler(tc, timeout=timeout)
    elif backend == "inprocess":
        compiler = WorkerPool(tc, workers=1, timeout=timeout)
    else:
        raise InputError(f"--backend {backend}: expected 'inprocess' or 'opt'")
    with compiler:
        before = compiler.count(ir)
        result = compiler.run(ir, pass_list, want_ir=True)
    if not result.ok:
        raise PasslmError(f"{pass_list} failed on {source} ({result.error_kind}): {result.error}")
    if output is not None:
        _emit(result.ir or "", output)
    change = (result.count - before) / before * 100 if before else 0.0  # type: ignore[operator]
    err_console.print(
        f"{source}: {before} -> {result.count} instructions ({change:+.1f}%) with `{pass_list}`"
    )


@app.command("optimize")
def optimize_cmd(
    source: InputPath,
    output: OutputPath = None,
    workers: Workers = None,
    timeout: Timeout = 60.0,
) -> None:
    """Optimize a file for code size and report per function against -Oz."""
    from passlm.llvm.ir import load_ir
    from passlm.llvm.pool import WorkerPool
    from passlm.optimize.pipeline import optimize_ir

    tc = _toolchain()
    ir = load_ir(source, tc)
    with WorkerPool(tc, workers=workers, timeout=timeout) as pool:
        report = optimize_ir(ir, tc, pool)
    table = Table(
        "function",
        "-O0",
        "-Oz",
        "passes",
        "chosen",
        "vs -Oz",
        "compiles",
        title=f"{source} (strategy: {report.strategy})",
    )
    for f in report.functions:
        table.add_row(
            f.name,
            str(f.o0_count),
            str(f.oz_count),
            f.passes,
            str(f.count),
            f"{f.count - f.oz_count:+d}",
            str(f.compiles),
        )
    total_oz = sum(f.oz_count for f in report.functions)
    total = sum(f.count for f in report.functions)
    table.add_section()
    table.add_row(
        "total",
        str(sum(f.o0_count for f in report.functions)),
        str(total_oz),
        "",
        str(total),
        f"{total - total_oz:+d}",
        str(sum(f.compiles for f in report.functions)),
    )
    err_console.print(table)
    err_console.print(
        f"whole module: {report.o0_count} -> {report.count} instructions "
        f"(no model yet: every function uses -Oz)"
    )
    if output is not None:
        _emit(report.optimized_ir, output)
        err_console.print(f"wrote {output}")


@app.command("version")
def version_cmd() -> None:
    """Print the passlm and LLVM versions."""
    console.print(f"passlm {__version__}, LLVM {_toolchain().version}")


def main() -> None:
    """Entry point: user errors become one line on stderr and exit status 2."""
    try:
        app()
    except PasslmError as exc:
        err_console.print(
            f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True
        )
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
