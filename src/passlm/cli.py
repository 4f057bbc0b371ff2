"""The ``passlm`` command. Thin: it parses arguments and calls the library."""

from __future__ import annotations

import contextlib
import dataclasses
import re
import sys
from collections.abc import Callable
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


def _output_file(path: Path | None) -> Path | None:
    """A file output whose directory is missing fails before the command's work, not after."""
    from passlm.files import check_output_file

    if path is not None:
        check_output_file(path)
    return path


def _output_file_new_dir(path: Path | None) -> Path | None:
    """``_output_file`` for a command that creates the file's directory (corpus build)."""
    from passlm.files import check_output_file

    if path is not None:
        check_output_file(path, parent_may_be_missing=True)
    return path


def _output_dir(path: Path | None) -> Path | None:
    """A directory output with a file in its place fails before the command's work."""
    from passlm.files import check_output_dir

    if path is not None:
        check_output_dir(path)
    return path


OutputPath = Annotated[
    Path | None, typer.Option("-o", "--output", help="Output file.", callback=_output_file)
]
Workers = Annotated[
    int | None,
    typer.Option("--workers", "-j", help="Compile worker processes (default: all cores)."),
]
Timeout = Annotated[float, typer.Option("--timeout", help="Seconds allowed per compile.")]
MemoryMB = Annotated[
    int,
    typer.Option("--memory-mb", help="Address-space cap per compile worker in MiB (0: none)."),
]
ModelOutputDir = Annotated[
    Path, typer.Option("-o", "--output", help="Directory to write.", callback=_output_dir)
]
StoredDtype = Annotated[str, typer.Option("--dtype", help="float32, bfloat16 or float16.")]
Margin = Annotated[
    str,
    typer.Option(
        "--margin",
        help="For predict: nats by which the greedy list's log-probability must beat -Oz's to "
        "be used (else -Oz); 'model': the margin `passlm model calibrate` stored with the "
        "model (none stored: the greedy list as it is); 'off': the greedy list as it is; "
        "'inf': always -Oz.",
    ),
]


def _toolchain():
    from passlm.llvm.toolchain import default_toolchain

    return default_toolchain()


def _load_model(path: Path):
    """(model, tokenizer) for inference; small models run on one CPU thread.

    A few-million-parameter model spends its time in per-op overhead, not arithmetic: one
    thread decodes as fast as two and does not thrash when compile workers or another job share
    the cores (measured: 8.8 s vs 43 s for the same answers beside a busy process). Set
    OMP_NUM_THREADS to choose otherwise.
    """
    import os

    from passlm.model import load

    lm, tok = load(path)
    if "OMP_NUM_THREADS" not in os.environ and lm.num_parameters() < 100_000_000:
        import torch

        torch.set_num_threads(1)
    return lm, tok


def _emit(data: str | bytes, output: Path | None) -> None:
    from passlm.files import atomic_write

    if output is None:
        if isinstance(data, bytes):
            sys.stdout.buffer.write(data)
        else:
            sys.stdout.write(data)
    else:
        atomic_write(output, data)


def _status_progress():
    """A progress bar with a count, the time left and a status text (``status=`` field)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        "{task.fields[status]}",
        console=err_console,
    )


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
    output: Annotated[
        Path,
        typer.Option("-o", "--output", help="Directory for the modules.", callback=_output_dir),
    ],
) -> None:
    """Split a module into one normalized module per defined function."""
    from passlm.files import atomic_write, safe_filename
    from passlm.llvm.ir import count_instructions, load_ir

    tc = _toolchain()
    modules = _split_named(source, load_ir(source, tc), tc)
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
    source: Annotated[
        Path, typer.Argument(help="Input file (.c, .cpp, .ll, .bc) or a directory of them.")
    ],
    output: Annotated[
        Path | None,
        typer.Option("-o", "--output", help="Output file; for a directory, an output directory."),
    ] = None,
    model: Annotated[
        Path | None,
        typer.Option("--model", help="Model directory (default: the model shipped with passlm)."),
    ] = None,
    no_model: Annotated[bool, typer.Option("--no-model", help="Use -Oz only.")] = False,
    strategy: Annotated[
        str,
        typer.Option(
            "--strategy",
            "-s",
            help="predict (0 compiles, may lose to -Oz), oz-backup, sample-N, feedback-K, or "
            "guided-N (no model: the training outcome table).",
        ),
    ] = "sample-10",
    outcomes: Annotated[
        Path | None,
        typer.Option(
            "--outcomes", help="For guided-N: an outcome table (default: the shipped one)."
        ),
    ] = None,
    sampling: Annotated[
        str, typer.Option("--sampling", help="For sample-N: priority (unique) or temperature.")
    ] = "priority",
    temperature: Annotated[
        float | None, typer.Option("--temperature", help="For temperature sampling (default 1).")
    ] = None,
    seed: Annotated[
        int | None, typer.Option("--seed", help="For temperature sampling (default 0).")
    ] = None,
    margin: Margin = "model",
    endpoint: Annotated[
        str | None,
        typer.Option(
            "--endpoint",
            help="OpenAI-compatible server (e.g. vLLM) instead of a local model; it gets the "
            "prompt the model in --model (default: the shipped one) reads.",
        ),
    ] = None,
    endpoint_model: Annotated[
        str, typer.Option("--endpoint-model", help="Model name to ask the endpoint for.")
    ] = "passlm",
    verify: Annotated[
        bool,
        typer.Option(
            "--verify",
            help="Run the program built at -O0 and optimized, and compare (needs a main).",
        ),
    ] = False,
    denylist: Annotated[
        Path | None,
        typer.Option("--denylist", help="Deny-list JSON (default: the one shipped)."),
    ] = None,
    emit: Annotated[
        str | None,
        typer.Option("--emit", help="ll, bc or obj (default: from -o's suffix, else ll)."),
    ] = None,
    workers: Workers = None,
    timeout: Timeout = 60.0,
    memory_mb: MemoryMB = 4096,
) -> None:
    """Optimize a file (or every file under a directory) for code size, reported against -Oz.

    The model proposes pass lists per function (--strategy); LLVM compiles them and the best is
    kept, never worse than -Oz unless --strategy predict is asked for.
    """
    from passlm.files import check_output_dir, check_output_file
    from passlm.llvm.cache import CachedCompiler
    from passlm.llvm.denylist import load_denylist
    from passlm.llvm.emit import EMIT_KINDS, text_size
    from passlm.llvm.emit import emit as emit_as
    from passlm.llvm.ir import defined_functions, load_ir
    from passlm.llvm.pool import WorkerPool
    from passlm.optimize.calibrate import parse_margin
    from passlm.optimize.checked import verify_optimized
    from passlm.optimize.pipeline import optimize_ir
    from passlm.optimize.strategies import SAMPLE, parse_strategy

    deny = load_denylist(denylist)
    if sampling != "temperature" and (temperature is not None or seed is not None):
        raise InputError("--temperature and --seed apply to --sampling temperature only")
    spec = parse_strategy(
        strategy,
        sampling=sampling,
        temperature=1.0 if temperature is None else temperature,
        seed=seed or 0,
    )
    if sampling == "temperature" and spec.kind != SAMPLE:
        raise InputError(f"--sampling applies to sample-N, not {spec.name}")
    given_margin = parse_margin(margin, None)  # a bad --margin fails before any work
    if given_margin is not None and endpoint is not None and spec.kind == "predict":
        raise InputError("--margin: an endpoint gives no log-probabilities; use --margin off")
    if emit is None:
        suffix = output.suffix if output is not None else ""
        emit = {".o": "obj", ".obj": "obj", ".bc": "bc"}.get(suffix, "ll")
    if emit not in EMIT_KINDS:
        raise InputError(f"--emit: expected one of {', '.join(EMIT_KINDS)}, not {emit!r}")
    batch = source.is_dir()
    if batch and output is None:
        raise InputError(f"{source}: a directory needs -o OUTPUT_DIRECTORY")
    if output is not None and batch:  # checked before the work, not after it
        check_output_dir(output)
    elif output is not None:
        check_output_file(output)
    tc = _toolchain()
    propose, label, model_used = None, "oz", None
    if not spec.needs_model and endpoint is not None:
        raise InputError(f"--endpoint: {spec.name} uses no model")
    if not spec.needs_model and not no_model:
        from passlm.optimize.strategies import guided_search, propose_guided

        table = str(outcomes) if outcomes is not None else None
        guided_search(table)  # a bad table fails before any work
        label, model_used = f"{spec.name} (outcome table)", table or "shipped outcome table"

        def propose(modules: dict[str, str], compiler):
            return propose_guided(
                list(modules.values()), spec, compiler, denylist=deny, outcomes=table
            )

    elif endpoint is not None:
        from passlm.model import default_model_dir
        from passlm.model.checkpoint import prompt_format
        from passlm.optimize.endpoint import prompt_room, propose_remote, served_context

        # the served model reads the prompt its directory records (the shipped one's by default)
        # and takes prompts as long as its tokenizer and context length there allow, and the
        # server (vLLM's --max-model-len may be shorter)
        served = model if model is not None else default_model_dir()
        reads, room = prompt_format(served), prompt_room(served)
        if room is not None:
            room = room.at_most(served_context(endpoint, endpoint_model))
        label, model_used = f"{spec.name} via {endpoint}", endpoint

        def propose(modules: dict[str, str], compiler):
            return propose_remote(
                endpoint, endpoint_model, list(modules.values()), spec,
                reads=reads, compiler=compiler, room=room,
            )  # fmt: skip

    elif not no_model:
        from passlm.model import default_model_dir
        from passlm.optimize.strategies import propose as model_propose

        model_dir = model if model is not None else default_model_dir()
        lm, tok = _load_model(model_dir)
        if spec.kind == "predict":
            spec = dataclasses.replace(spec, margin=parse_margin(margin, model_dir))
        label, model_used = f"{spec.name} ({model_dir.name})", str(model_dir)

        def propose(modules: dict[str, str], compiler):
            return model_propose(
                lm, tok, list(modules.values()), spec, denylist=deny, compiler=compiler
            )

    with WorkerPool(tc, workers=workers, timeout=timeout, memory_mb=memory_mb) as pool:

        def optimize_one(path: Path, *, check: bool):
            ir = load_ir(path, tc)
            has_main = "main" in defined_functions(ir)
            if check and not has_main and not batch:
                raise InputError(f"{path}: --verify needs a program with a main function")
            modules = _split_named(path, ir, tc)
            # what the strategy compiles while it proposes (-Oz, its picks, its answers) is
            # compiled again to choose among the candidates: remember it, per input file
            compiler = CachedCompiler(pool, always_ir=True)
            proposals = propose(modules, compiler) if propose is not None else None
            report = optimize_ir(
                ir,
                tc,
                compiler,
                proposals,
                modules=modules,
                strategy=label,
                denylist=deny,
                predict=spec.predict_only and propose is not None,
            )
            verdict = None
            if check and has_main:
                verdict = verify_optimized(ir, tc, modules, report, path)
            return report, verdict

        if batch:
            provenance = {
                "passlm_version": __version__,
                "llvm_version": tc.version,
                "strategy": label,
                "model": model_used,
                "denylist_entries": len(deny.entries),
            }

            def measure(report) -> tuple[int, int]:
                return text_size(report.optimized_ir, tc), text_size(report.oz_module_ir, tc)

            _optimize_batch(source, output, optimize_one, verify, provenance, measure)  # type: ignore[arg-type]
            return
        report, verdict = optimize_one(source, check=verify)
    _print_module_report(report, str(source))
    size, oz_size = text_size(report.optimized_ir, tc), text_size(report.oz_module_ir, tc)
    change = 100 * (oz_size - size) / oz_size if oz_size else 0.0
    err_console.print(
        f"object .text: {size} bytes, whole-module -Oz {oz_size} bytes ({change:+.2f}% saved)"
    )
    text = report.optimized_ir
    if verdict is not None:
        if verdict.ok:
            err_console.print(f"verify: {verdict.outcome} ({escape(verdict.reference_text)})")
        else:
            err_console.print(
                f"[red]MISMATCH[/red]: the optimized program behaves differently "
                f"({escape(verdict.detail)}); reproducer in {verdict.reproducer}. Writing "
                f"whole-module -Oz instead."
            )
            text = verdict.fallback_ir
    if output is not None or emit != "ll":
        _emit(emit_as(text, emit, tc), output)
        err_console.print(f"wrote {output or 'stdout'} ({emit})")
    if verdict is not None and not verdict.ok:
        raise typer.Exit(1)


def _print_module_report(report, title: str) -> None:
    table = Table(
        "function",
        "-O0",
        "-Oz",
        "passes",
        "chosen",
        "vs -Oz",
        "compiles",
        title=f"{title} (strategy: {report.strategy})",
    )
    for f in report.functions:
        table.add_row(
            f.name,
            str(f.o0_count),
            str(f.oz_count),
            escape(f.passes),
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
    for f in report.functions:
        if f.note:
            err_console.print(f"{escape(f.name)}: {escape(f.note)}; -Oz used")
    saved = (total_oz - total) / total_oz if total_oz else 0.0
    err_console.print(
        f"functions: {total_oz} instructions at -Oz -> {total} chosen ({100 * saved:+.2f}%)"
    )
    err_console.print(
        f"module: {report.o0_count} unoptimized, {report.oz_module_count} with whole-module -Oz, "
        f"{report.linked_count} with the per-function lists; written: {report.output_kind} "
        f"({report.count} instructions)"
    )


def _split_named(path: Path, ir: str, tc) -> dict[str, str]:
    """``split_functions`` with an error that names the input (in batch mode, which file)."""
    from passlm.errors import InvalidIR
    from passlm.llvm.ir import split_functions

    try:
        return split_functions(ir, tc)
    except InvalidIR as exc:
        raise InputError(f"{path}: {exc}") from None


def _optimize_batch(
    source: Path, output: Path, optimize_one, verify: bool, provenance: dict, measure
) -> None:
    """Every input file under ``source`` into ``output``, resumably, with a progress bar."""
    from passlm.optimize.batch import SUMMARY, find_inputs, run_batch

    files = find_inputs(source, output)
    output.mkdir(parents=True, exist_ok=True)
    mismatches: list[str] = []

    def one(path: Path):
        report, verdict = optimize_one(path, check=verify)
        if verdict is not None and not verdict.ok:
            mismatches.append(f"{path}: {verdict.detail}; reproducer in {verdict.reproducer}")
            report = dataclasses.replace(report, optimized_ir=verdict.fallback_ir)
        return report

    with _status_progress() as progress:
        bar = progress.add_task("optimizing", total=len(files), status="")

        def on_file(path: Path, record: dict | None, error: str | None) -> None:
            if error is not None:
                progress.console.print(f"[red]failed[/red] {escape(error)}")
            progress.update(bar, advance=1, status=escape(str(path.name)))

        result, failures = run_batch(
            files, source, output, one, on_file=on_file, provenance=provenance, measure=measure
        )
    saved = result.functions_oz - result.functions_chosen
    pct = 100 * saved / result.functions_oz if result.functions_oz else 0.0
    err_console.print(
        f"{result.files} files: {result.optimized} optimized now, {result.done_before} done "
        f"before, {result.failed} failed; functions {result.functions_oz} instructions at -Oz "
        f"-> {result.functions_chosen} ({pct:+.2f}% saved); modules written "
        f"{result.module_written} vs whole-module -Oz {result.module_oz}; object .text "
        f"{result.text_bytes} bytes vs {result.text_bytes_oz}; summary in {output / SUMMARY}"
    )
    for line in mismatches:
        err_console.print(f"[red]MISMATCH[/red] {escape(line)} (whole-module -Oz written)")
    if failures:
        err_console.print(f"{len(failures)} file(s) failed; run the same command to retry them")
        raise typer.Exit(1)
    if mismatches:
        raise typer.Exit(1)


@app.command("verify")
def verify_cmd(
    programs: Annotated[
        list[Path] | None,
        typer.Argument(help="Runnable programs (.c, .cpp, .ll, .bc with a main)."),
    ] = None,
    passes: Annotated[
        str | None, typer.Option("--passes", "-p", help="One list, run on every function.")
    ] = None,
    lists: Annotated[
        Path | None,
        typer.Option("--lists", help="Pool of lists: tuned .parquet (best lists) or text file."),
    ] = None,
    csmith: Annotated[
        int, typer.Option("--csmith", help="Also check N Csmith programs (seeds --seed ...).")
    ] = 0,
    seed: Annotated[int, typer.Option("--seed", help="First Csmith seed; list draws.")] = 0,
    rounds: Annotated[int, typer.Option("--rounds", help="Rounds of pool lists per program.")] = 3,
    model: Annotated[
        Path | None,
        typer.Option("--model", help="Also check a model's proposals ('default': shipped)."),
    ] = None,
    model_strategy: Annotated[
        str,
        typer.Option(
            "--model-strategy", help="Which proposals: predict or sample-N (a round per rank)."
        ),
    ] = "sample-5",
    runner: Annotated[str, typer.Option("--runner", help="native or lli.")] = "native",
    run_timeout: Annotated[
        float, typer.Option("--run-timeout", help="Seconds a -O0 run may take.")
    ] = 10.0,
    output: Annotated[
        Path,
        typer.Option(
            "-o", "--output", help="Directory: log, reproducers, summary.", callback=_output_dir
        ),
    ] = Path("passlm-verify"),
    jobs: Annotated[int, typer.Option("--jobs", "-j", help="Programs checked at once.")] = 2,
    timeout: Timeout = 60.0,
    memory_mb: MemoryMB = 4096,
) -> None:
    """Differential testing: each program at -O0 vs with pass lists; reproducers on mismatch."""
    import json
    import threading

    from passlm.files import atomic_write
    from passlm.llvm.ir import compile_source, load_ir
    from passlm.llvm.passes import parse_pass_list
    from passlm.llvm.pool import WorkerPool
    from passlm.verify.campaign import Campaign, load_pool, read_log, summarize
    from passlm.verify.differential import RUNNERS, Program

    if runner not in RUNNERS:
        raise InputError(f"--runner: expected one of {', '.join(RUNNERS)}, not {runner!r}")
    if (passes is None) == (lists is None) and model is None:
        raise InputError("name the lists to check: --passes LIST, --lists FILE and/or --model")
    if passes is not None and lists is not None:
        raise InputError("--passes and --lists exclude each other")
    if not programs and csmith <= 0:
        raise InputError("no programs: name files or ask for --csmith N")
    pool = [parse_pass_list(passes)] if passes is not None else []
    if lists is not None:
        pool = load_pool(lists)
    tc = _toolchain()
    loaders = []
    for path in programs or []:
        loaders.append(
            (str(path), lambda path=path: Program(load_ir(path, tc), tc, name=str(path),
                                                  runner=runner, timeout=run_timeout))
        )  # fmt: skip
    if csmith > 0:
        from passlm.corpus.sources import cache_dir, generate_csmith

        def csmith_program(s: int) -> Program:
            src = generate_csmith(1, s, cache_dir())  # on demand: csmith takes ~1 s a program
            name = src.files[0]
            ir = compile_source(src.root / name, tc, src.flags)
            return Program(ir, tc, name=name, runner=runner, timeout=run_timeout)

        for s in range(seed, seed + csmith):
            loaders.append((f"csmith-{s}.c", lambda s=s: csmith_program(s)))
    proposer = None
    if model is not None:
        from passlm.model import default_model_dir
        from passlm.optimize.strategies import parse_strategy
        from passlm.optimize.strategies import propose as model_propose

        spec = parse_strategy(model_strategy)
        if spec.kind == "feedback":
            raise InputError(
                f"--model-strategy: {spec.name} is not checked here (predict or sample-N)"
            )
        lm, tok = _load_model(default_model_dir() if str(model) == "default" else model)
        lock = threading.Lock()
        # Csmith programs share most functions (the safe-math helpers); sampling is deterministic
        # per module text, so each distinct module is asked once.
        memo: dict[str, list] = {}

        def proposer(program):
            with lock:  # one model, shared by the checking threads
                texts = list(program.modules.values())
                fresh = list(dict.fromkeys(t for t in texts if t not in memo))
                memo.update(zip(fresh, model_propose(lm, tok, fresh, spec), strict=True))
                proposed = [memo[t] for t in texts]
            rounds = max((len(c) for c in proposed), default=0)
            return [
                {
                    n: c[r] if r < len(c) else None
                    for n, c in zip(program.modules, proposed, strict=True)
                }
                for r in range(rounds)
            ]

    campaign = Campaign(
        pool, output, rounds=1 if passes is not None else rounds, seed=seed, proposer=proposer
    )
    compilers = [
        WorkerPool(tc, workers=1, timeout=timeout, memory_mb=memory_mb) for _ in range(max(1, jobs))
    ]
    try:
        with _status_progress() as progress:
            bar = progress.add_task("verifying", total=len(loaders), status="")
            found = [0]

            def on_done(result) -> None:
                found[0] += sum(f.kind in ("miscompile", "link") for f in result.findings)
                progress.update(bar, advance=1, status=f"{found[0]} mismatch(es)")
                for f in result.findings:
                    if f.kind in ("miscompile", "link"):
                        progress.console.print(
                            f"MISMATCH {escape(f.program)} {escape(f.function)}: {escape(f.passes)}"
                            f" -> {f.reproducer}"
                        )

            logged = read_log(campaign.log_path)  # checked by an earlier run: not again
            progress.update(bar, completed=sum(name in logged for name, _ in loaders))
            results = campaign.run(loaders, compilers, on_done=on_done)
    finally:
        for c in compilers:
            c.close()
    names = {name for name, _ in loaders}
    summary = summarize([r for r in results if r.program in names])
    summary["command"] = " ".join(["passlm", *sys.argv[1:]])
    summary["llvm_version"] = tc.version
    summary["passlm_version"] = __version__
    summary["seed"] = seed
    summary["runner"] = runner
    atomic_write(output / "summary.json", json.dumps(summary, indent=1) + "\n")
    table = Table("what", "count", title=f"differential testing ({output})")
    for key in ("programs", "with_oracle", "errors", "builds", "pairs", "distinct_lists"):
        table.add_row(key.replace("_", " "), str(summary[key]))
    for kind, n in sorted(summary["findings"].items()):
        table.add_row(f"findings: {kind}", str(n))
    console.print(table)
    if summary["miscompiles"]:
        raise typer.Exit(1)


@app.command("version")
def version_cmd() -> None:
    """Print the passlm and LLVM versions."""
    console.print(f"passlm {__version__}, LLVM {_toolchain().version}")


corpus_app = typer.Typer(
    no_args_is_help=True, help="Build and inspect corpora of unoptimized IR functions."
)
app.add_typer(corpus_app, name="corpus")


@corpus_app.command("build")
def corpus_build_cmd(
    output: Annotated[
        Path,
        typer.Option(
            "-o", "--output", help="Corpus file (.parquet).", callback=_output_file_new_dir
        ),
    ],
    sources: Annotated[
        list[str] | None,
        typer.Argument(
            help="Directory, archive, pypi:NAME[==VERSION] or csmith:N (added to --recipe).",
            show_default=False,
        ),
    ] = None,
    recipe: Annotated[
        Path | None, typer.Option("--recipe", help="TOML recipe listing the sources.")
    ] = None,
    max_chars: Annotated[
        int | None, typer.Option("--max-chars", help="Drop modules longer (default 8000).")
    ] = None,
    max_instructions: Annotated[
        int | None, typer.Option("--max-instructions", help="Drop modules with more.")
    ] = None,
    min_instructions: Annotated[
        int | None, typer.Option("--min-instructions", help="Drop modules with fewer.")
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Split and Csmith seed.")] = None,
    jobs: Annotated[
        int | None, typer.Option("--jobs", "-j", help="Files compiled at once (default: cores).")
    ] = None,
    holdout: Annotated[
        list[str] | None,
        typer.Option("--holdout", help="Source kept whole out of training (repeatable)."),
    ] = None,
    exclude_corpus: Annotated[
        list[str] | None,
        typer.Option(
            "--exclude-corpus",
            help="Drop functions this corpus or tuned file has, e.g. the training corpus "
            "(repeatable).",
        ),
    ] = None,
) -> None:
    """Compile sources into a deduplicated Parquet corpus of one-function IR modules."""
    from passlm.corpus.build import build_corpus
    from passlm.corpus.recipe import make_recipe
    from passlm.corpus.report import RichReporter, summary_tables
    from passlm.corpus.store import prepare_output, write_corpus

    plan = make_recipe(
        recipe,
        list(sources or []),
        seed=seed,
        holdout=holdout,
        exclude_corpora=exclude_corpus,
        max_chars=max_chars,
        max_instructions=max_instructions,
        min_instructions=min_instructions,
    )
    output = prepare_output(output)
    with RichReporter(err_console) as reporter:
        result = build_corpus(
            plan, _toolchain(), jobs=jobs, reporter=reporter, command=["passlm", *sys.argv[1:]]
        )
        reporter.stage(f"writing {output}")
        write_corpus(result.rows, output, result.meta)
    for table in summary_tables(result.meta["summary"]):
        err_console.print(table)
    size = output.stat().st_size / 1e6
    err_console.print(
        f"wrote {output}: {len(result.rows)} functions, {size:.1f} MB, "
        f"{result.summary.seconds:.0f} s"
    )


@corpus_app.command("info")
def corpus_info_cmd(
    corpus: Annotated[Path, typer.Argument(help="Corpus file (.parquet).")],
) -> None:
    """Print a corpus's provenance, limits and counts."""
    from passlm.corpus.report import info_lines, summary_tables
    from passlm.corpus.store import read_metadata

    meta = read_metadata(corpus)
    for line in info_lines(meta):
        console.print(line, highlight=False, soft_wrap=True)
    for table in summary_tables(meta["summary"]):
        console.print(table)


@app.command("autotune")
def autotune_cmd(
    corpus: Annotated[Path | None, typer.Argument(help="Corpus Parquet file to tune.")] = None,
    output: OutputPath = None,
    report: Annotated[
        Path | None, typer.Option("--report", help="Summarize a tuned Parquet file instead.")
    ] = None,
    plots: Annotated[
        Path | None, typer.Option("--plots", help="With --report: write PNG plots here.")
    ] = None,
    trials: Annotated[int, typer.Option(help="Random-search pass lists per function.")] = 1000,
    seconds: Annotated[
        float | None, typer.Option(help="Per-function budget of compile seconds.")
    ] = None,
    max_length: Annotated[int, typer.Option(help="Longest random pass list.")] = 8,
    broadcast: Annotated[
        int, typer.Option(help="Most frequent best lists tried everywhere (-1: all).")
    ] = 100,
    minimize: Annotated[bool, typer.Option(help="Minimize the best lists.")] = True,
    seed: Annotated[int, typer.Option(help="Search seed.")] = 0,
    split: Annotated[
        list[str] | None, typer.Option("--split", help="Only these splits (repeatable).")
    ] = None,
    limit: Annotated[int | None, typer.Option(help="Only the first N functions.")] = None,
    store: Annotated[
        Path | None, typer.Option(help="Result store (default: OUTPUT.store.sqlite).")
    ] = None,
    workers: Workers = None,
    timeout: Timeout = 60.0,
    memory_mb: MemoryMB = 4096,
    ray: Annotated[bool, typer.Option("--ray", help="Compile on a Ray cluster.")] = False,
    ray_address: Annotated[
        str | None, typer.Option("--ray-address", help="Ray cluster address (default: local).")
    ] = None,
) -> None:
    """Search the best pass list of every corpus function (resumable), or --report on a result."""
    if report is not None:
        _autotune_report(report, plots)
        return
    if corpus is None or output is None:
        raise InputError("autotune needs CORPUS and -o OUTPUT (or --report TUNED)")
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from passlm.llvm.pool import WorkerPool
    from passlm.search.autotune import autotune
    from passlm.search.tuner import TuneConfig

    config = TuneConfig(
        trials=trials,
        seconds=seconds,
        max_length=max_length,
        minimize=minimize,
        seed=seed,
        broadcast=None if broadcast < 0 else broadcast,
    )
    tc = _toolchain()
    if ray:
        from passlm.search.ray_executor import RayCompiler

        compiler = RayCompiler(tc, address=ray_address, timeout=timeout)
    else:
        compiler = WorkerPool(tc, workers=workers, timeout=timeout, memory_mb=memory_mb)
    columns = (
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with compiler, Progress(*columns, console=err_console) as bar:
        tasks: dict[str, object] = {}

        def progress(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = bar.add_task(phase, total=total)
            bar.update(tasks[phase], completed=done)  # type: ignore[arg-type]

        rows, meta = autotune(
            corpus,
            output,
            compiler,
            config,
            store_path=store,
            splits=split,
            limit=limit,
            executor="ray" if ray else "local",
            progress=progress,
        )
    c = meta["compute"]
    err_console.print(
        f"tuned {len(rows)} functions in {c['wall_seconds']:.0f}s: {c['compiles_this_run']:,} "
        f"compiles this run, {c['answered_by_store']:,} answered by the store; wrote {output}"
    )
    _autotune_report(output, None)


@app.command("outcomes")
def outcomes_cmd(
    tuned: Annotated[Path, typer.Argument(help="Tuned Parquet file (from autotune).")],
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Outcome table to write.", callback=_output_file)
    ],
    lists: Annotated[int, typer.Option("--lists", help="Most popular best lists to compile.")] = 60,
    split: Annotated[str, typer.Option("--split", help="Functions of this split.")] = "train",
    denylist: Annotated[
        Path | None, typer.Option("--denylist", help="Deny-list JSON (default: the one shipped).")
    ] = None,
    store: Annotated[
        Path | None, typer.Option(help="Result store (default: OUTPUT.store.sqlite).")
    ] = None,
    workers: Workers = None,
    timeout: Timeout = 60.0,
    memory_mb: MemoryMB = 4096,
) -> None:
    """The table guided-N reads: the popular lists compiled on every training function (resumable)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from passlm.llvm.denylist import load_denylist
    from passlm.llvm.pool import WorkerPool
    from passlm.search.outcomes import outcomes_from_tuned, write_outcomes
    from passlm.search.store import TrialStore
    from passlm.search.tuned import KIND as TUNED_KIND
    from passlm.tables import read_meta

    if lists < 1:
        raise InputError(f"--lists must be at least 1, got {lists}")
    read_meta(tuned, TUNED_KIND)  # a wrong input fails before the store is created beside -o
    deny = load_denylist(denylist)
    tc = _toolchain()
    trials = TrialStore(store or output.with_name(output.name + ".store.sqlite"), tc.version)
    columns = ("compiling", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with (
        WorkerPool(tc, workers=workers, timeout=timeout, memory_mb=memory_mb) as pool,
        Progress(*columns, console=err_console) as bar,
    ):
        task = bar.add_task("compiling", total=None)
        table = outcomes_from_tuned(
            tuned, pool, trials, lists=lists, split=split, allows=deny.allows,
            command=" ".join(["passlm", *sys.argv[1:]]),
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )  # fmt: skip
    trials.close()
    write_outcomes(output, table)
    failed = sum(c is None for r in table.rows for c in r.counts)
    err_console.print(
        f"{len(table.lists)} lists on {len(table.rows)} {split} functions "
        f"({failed} compiles failed); wrote {output}"
    )


def _autotune_report(path: Path, plots: Path | None) -> None:
    from passlm.search.report import length_histogram, pass_frequency, plot, summarize
    from passlm.search.tuned import read_tuned

    rows, meta = read_tuned(path)
    table = Table(
        "split",
        "functions",
        "improved",
        "-O0",
        "-Oz",
        "best",
        "over -Oz",
        title=f"{path} (LLVM {meta.get('llvm_version')})",
    )
    groups = [*sorted({r.split for r in rows}), "all"]
    for name in groups:
        s = summarize([r for r in rows if name in ("all", r.split)])
        table.add_row(
            name,
            str(s.functions),
            f"{s.improved} ({100 * s.improved_fraction:.1f}%)",
            f"{s.o0_total:,}",
            f"{s.oz_total:,}",
            f"{s.best_total:,}",
            f"{100 * s.overall_improvement:.2f}%",
        )
    console.print(table)
    freq = pass_frequency(rows)
    console.print(
        "most frequent in best lists: "
        + ", ".join(f"{name} {n}" for name, n in freq.most_common(15))
    )
    hist = length_histogram(rows)
    console.print("best-list lengths: " + ", ".join(f"{k}: {hist[k]}" for k in sorted(hist)))
    if meta.get("compute"):
        c = meta["compute"]
        console.print(
            f"compute: {c.get('trials_total', 0):,} trials, {c.get('wall_seconds')}s "
            f"wall (last run), {c.get('cpus')} CPUs, executor {c.get('executor')}"
        )
    if plots is not None:
        for p in plot(rows, plots):
            console.print(f"wrote {p}")


dataset_app = typer.Typer(no_args_is_help=True, help="Render tuned functions as training data.")
app.add_typer(dataset_app, name="dataset")


@dataset_app.command("make")
def dataset_make_cmd(
    tuned: Annotated[Path, typer.Argument(help="Tuned Parquet file (from autotune).")],
    output: Annotated[
        Path,
        typer.Option("-o", "--output", help="Data set file (.parquet).", callback=_output_file),
    ],
    aux: Annotated[
        bool, typer.Option("--aux/--no-aux", help="Answers carry the optimized IR.")
    ] = True,
    max_tokens: Annotated[
        int | None, typer.Option("--max-tokens", help="Drop longer examples (needs --tokenizer).")
    ] = None,
    tokenizer: Annotated[
        Path | None, typer.Option("--tokenizer", help="tokenizer.json to count tokens with.")
    ] = None,
    max_chars: Annotated[
        int | None, typer.Option("--max-chars", help="Drop examples with more characters.")
    ] = None,
    oz_ties: Annotated[
        bool,
        typer.Option(
            "--oz-ties/--best-ties",
            help="Answer -Oz where nothing beat it (default), or the autotuner's tying list.",
        ),
    ] = True,
    denylist: Annotated[
        Path | None,
        typer.Option("--denylist", help="Deny-list JSON (default: the one shipped)."),
    ] = None,
    oz_keep: Annotated[
        float,
        typer.Option(
            "--oz-keep",
            help="Keep this fraction of the training split's -Oz answers (seeded per function).",
        ),
    ] = 1.0,
    winners: Annotated[
        int,
        typer.Option(
            "--winners",
            help="Compile the training split's N most popular best lists on each training "
            "function and answer it once per list that reaches its lowest count, if that beats "
            "-Oz (needs --no-aux; 0: off).",
        ),
    ] = 0,
    winners_cap: Annotated[
        int, typer.Option("--winners-cap", help="At most this many answers per function.")
    ] = 4,
    canonical: Annotated[
        Path | None,
        typer.Option(
            "--canonical",
            help="Outcome table (passlm outcomes): answer each of its training functions where "
            "one of its lists beats -Oz once, with the winning list that comes first in the "
            "table's coverage order (compiled again for the optimized IR unless --no-aux; not "
            "with --winners).",
        ),
    ] = None,
    oz_context: Annotated[
        bool,
        typer.Option(
            "--oz-context",
            help="Prompts also carry what -Oz makes of the function (its count and IR), which "
            "a model trained on them reads at every use (one -Oz compile, never counted).",
        ),
    ] = False,
    oz_summary: Annotated[
        bool,
        typer.Option(
            "--oz-summary",
            help="As --oz-context, but one line: -Oz's count, blocks and opcode counts "
            "instead of its IR (a prompt about as short as the plain one).",
        ),
    ] = False,
    anonymize_names: Annotated[
        bool,
        typer.Option(
            "--anonymize-names",
            help="Renumber each function's global, callee and struct-type names in its prompt "
            "and answer (@g0, %struct.T0; intrinsics and library functions kept), as a model "
            "trained on them then reads every function.",
        ),
    ] = False,
    workers: Workers = None,
) -> None:
    """Render (prompt, answer) examples; drop, never truncate, those over the limits."""
    from passlm.data.dataset import dataset_meta, make_dataset, write_dataset
    from passlm.data.format import OzContext
    from passlm.llvm.backend import Task
    from passlm.llvm.denylist import load_denylist
    from passlm.llvm.passes import OZ, parse_pass_list
    from passlm.llvm.pool import WorkerPool
    from passlm.search.tuned import read_tuned

    tok = None
    if tokenizer is not None:
        from passlm.model.tokenizer import load_tokenizer

        tok = load_tokenizer(tokenizer)
    if winners < 0 or winners_cap < 1:
        raise InputError(
            f"--winners must be >= 0 and --winners-cap >= 1, got {winners}, {winners_cap}"
        )
    if winners and aux:
        raise InputError("--winners answers carry no optimized IR: add --no-aux")
    if winners and canonical:
        raise InputError("--winners and --canonical are two ways to label: choose one")
    if oz_context and oz_summary:
        raise InputError("--oz-context and --oz-summary are two -Oz contexts: choose one")
    summary, oz_context = oz_summary, oz_context or oz_summary
    rows, tuned_meta = read_tuned(tuned)
    if oz_context:  # a function -Oz failed on has no -Oz context to show
        rows = [r for r in rows if r.oz_count >= 0]
    deny = load_denylist(denylist)
    ties = [r for r in rows if 0 <= r.oz_count <= r.best_count] if oz_ties else []
    refused = [r for r in rows if r.best_passes and not deny.allows(parse_pass_list(r.best_passes))]
    need = {r.hash: r for r in [*ties, *refused]}
    if oz_context:  # every prompt carries -Oz's output
        need.update((r.hash, r) for r in rows)
    won: dict = {}
    won_ir: dict = {}
    with WorkerPool(_toolchain(), workers=workers) as pool:
        results = pool.run_tasks([Task(r.ir, OZ, want_ir=aux or oz_context) for r in need.values()])
        if winners:
            won = _winners(
                rows, deny, winners, winners_cap, pool, refused={r.hash for r in refused}
            )
        if canonical is not None:
            won = _canonical(canonical, rows, deny)
            if aux:
                won_ir = _answer_ir(canonical, rows, won, pool)
    oz_of = {}
    for r, res in zip(need.values(), results, strict=True):
        if not res.ok or res.count != r.oz_count:
            raise InputError(
                f"{tuned}: -Oz on {r.function} ({r.hash}) gave {res.count or res.error}, "
                f"the tuned file says {r.oz_count}; is it from another LLVM build?"
            )
        oz_of[r.hash] = res.ir or ""
    oz_ir = {r.hash: oz_of[r.hash] for r in ties} if oz_ties else None
    examples, report = make_dataset(
        rows,
        aux=aux,
        max_tokens=max_tokens,
        tokenizer=tok,
        max_chars=max_chars,
        oz_ir=oz_ir,
        denied={r.hash: oz_of[r.hash] for r in refused},
        oz_keep=oz_keep,
        winners=won,
        winner_ir=won_ir,
        oz_context={h: OzContext(need[h].oz_count, ir) for h, ir in oz_of.items()}
        if oz_context
        else None,
        oz_summary=summary,
        anonymize_names=anonymize_names,
    )
    meta = dataset_meta(
        tuned_meta, report, tuned_path=str(tuned), command=" ".join(["passlm", *sys.argv[1:]])
    )
    write_dataset(output, examples, meta)
    table = Table("split", "functions", "kept", "dropped (chars)", "dropped (tokens)")
    for s in report.splits:
        table.add_row(
            s.split, str(s.functions), str(s.kept), str(s.dropped_chars), str(s.dropped_tokens)
        )
    console.print(table)
    err_console.print(
        f"wrote {output}: {len(examples)} examples; {report.denied} deny-listed best lists "
        f"answered with -Oz"
        + (f"; {report.oz_dropped} training -Oz answers left out" if oz_keep < 1.0 else "")
        + (
            f"; {report.winner_functions} training functions answered with every list that won "
            f"({report.winner_examples} examples)"
            if winners
            else ""
        )
        + (
            f"; {report.winner_functions} training functions answered with their canonical "
            "winning list"
            if canonical
            else ""
        )
    )


def _canonical(table_path: Path, rows, deny) -> dict:
    """Function hash -> [(its canonical winning list, count)] for the training functions of
    ``rows`` in the outcome table (:func:`passlm.search.outcomes.canonical_winners`)."""
    from passlm.search.outcomes import canonical_winners, read_outcomes

    table = read_outcomes(table_path)
    train = {r.hash for r in rows if r.split == "train" and r.oz_count >= 0}
    if not train & {r.hash for r in table.rows}:
        raise InputError(f"{table_path}: none of its functions is in the tuned file's train split")
    return {
        h: [(passes, count)]
        for h, (passes, count) in canonical_winners(table).items()
        if h in train and deny.allows(passes)
    }


def _answer_ir(table_path: Path, rows, won: dict, pool) -> dict:
    """(function hash, list) -> the optimized IR of each answer in ``won``, compiled again; an
    error where the compiler's count is not the table's (a table from another LLVM build)."""
    from passlm.llvm.backend import Task

    ir_of = {r.hash: r.ir for r in rows}
    pairs = [(h, passes, count) for h, lists in won.items() for passes, count in lists]
    results = pool.run_tasks([Task(ir_of[h], passes, want_ir=True) for h, passes, _ in pairs])
    out = {}
    for (h, passes, count), res in zip(pairs, results, strict=True):
        if not res.ok or res.count != count or not res.ir:
            raise InputError(
                f"{table_path}: {passes} on {h} gave {res.count if res.ok else res.error}, the "
                f"table says {count}; is it from another LLVM build?"
            )
        out[(h, passes)] = res.ir
    return out


def _winners(rows, deny, n: int, cap: int, pool, *, refused: set[str]) -> dict:
    """Function hash -> the lists that win on it (``winning_lists``), for the training split:
    the ``n`` most popular best lists compiled on every training function, and its own best."""
    from passlm.data.dataset import winning_lists
    from passlm.evaluate.baselines import PopularLists
    from passlm.llvm.passes import parse_pass_list

    train = [r for r in rows if r.split == "train" and r.oz_count >= 0]
    lists = PopularLists([r.best_passes for r in train], deny.allows).propose(n)
    with _status_progress() as progress:
        task = progress.add_task(f"{len(lists)} popular lists", total=len(train), status="")
        out = {}
        for i in range(0, len(train), 256):
            chunk = train[i : i + 256]
            grid = pool.run_grid([r.ir for r in chunk], lists)
            for r, got in zip(chunk, grid, strict=True):
                candidates = [(p, res.count) for p, res in zip(lists, got, strict=True)]
                if r.best_count < r.oz_count and r.hash not in refused:
                    candidates.append((parse_pass_list(r.best_passes), r.best_count))
                lists_won = winning_lists(r.oz_count, candidates, cap)
                if lists_won:
                    out[r.hash] = lists_won
            progress.advance(task, len(chunk))
    return out


tokenizer_app = typer.Typer(no_args_is_help=True, help="Train and measure the IR tokenizer.")
app.add_typer(tokenizer_app, name="tokenizer")


def _chosen_examples(dataset: Path, examples: list, splits: list[str], limit: int | None) -> list:
    """The examples of ``splits``, at most ``limit`` of each; an error if there are none."""
    from passlm.evaluate.suite import spread

    # spread, not the first N: examples are ordered by code base, and every one should be in it
    chosen = [
        e
        for s in splits
        for e in spread(
            [x for x in examples if x.split == s], len(examples) if limit is None else limit
        )
    ]
    if not chosen:
        raise InputError(f"{dataset}: no examples in split(s) {', '.join(splits)}")
    return chosen


def _source_meta(meta: dict) -> dict:
    """What a data set made from another data set keeps of its metadata: the prompt and the
    names its examples have too, which `passlm train` gives the model it trains."""
    return {
        k: meta[k] for k in ("llvm_version", "corpus", "splits", "prompt", "names") if k in meta
    }


def _check_model_reads(dataset: Path, meta: dict, lm) -> None:
    """Refuse a data set made for another prompt than the one ``lm`` reads: the examples made
    from the model's answers would be rendered as it reads and the others as the data set has
    them, and a model trained on the file would be told the wrong one."""
    from passlm.data.dataset import names_of, prompt_of
    from passlm.optimize.prompts import names_kind, prompt_kind

    theirs = (prompt_of(meta), names_of(meta))
    mine = (prompt_kind(lm), names_kind(lm))
    if theirs != mine:
        raise InputError(
            f"{dataset}: made for prompts '{theirs[0]}' with names {theirs[1]}, but the model "
            f"reads prompts '{mine[0]}' with names {mine[1]}; make the data set with the "
            "`dataset make` options the model was trained with (--oz-context, --oz-summary, "
            "--anonymize-names)"
        )


def _own_irs(dataset: Path, meta: dict, examples: list, tuned: Path | None) -> list[str] | None:
    """The functions' own IR where their prompts do not carry it (names anonymized): from the
    tuned data set ``tuned`` or the one the data set was made from; None: the prompts' IR."""
    from passlm.data.dataset import names_of
    from passlm.llvm.names import NAMES_KEPT
    from passlm.search.tuned import read_tuned

    if names_of(meta) == NAMES_KEPT:
        return None
    recorded = meta.get("tuned")
    path = tuned if tuned is not None else Path(recorded) if recorded else None
    if path is None or not path.is_file():
        raise InputError(
            f"{dataset}: its prompts have names anonymized, so the functions' own IR comes "
            "from the tuned data set it was made from, and "
            + (f"{path} is not a file" if path is not None else "it names none")
            + ": give it with --tuned"
        )
    rows, _ = read_tuned(path)
    ir_of = {r.hash: r.ir for r in rows}
    missing = [e.hash for e in examples if e.hash not in ir_of]
    if missing:
        raise InputError(
            f"{path}: {len(missing)} of {dataset}'s functions are not in it (first: "
            f"{missing[0]}): give the tuned data set it was made from with --tuned"
        )
    return [ir_of[e.hash] for e in examples]


TunedSource = Annotated[
    Path | None,
    typer.Option(
        "--tuned",
        help="Tuned data set with the functions' own IR, for a data set made with names "
        "anonymized (default: the one it was made from).",
    ),
]


@dataset_app.command("feedback")
def dataset_feedback_cmd(
    dataset: Annotated[Path, typer.Argument(help="Data set Parquet file (dataset make).")],
    output: Annotated[
        Path,
        typer.Option("-o", "--output", help="Feedback data set (.parquet).", callback=_output_file),
    ],
    model: Annotated[
        Path | None, typer.Option("--model", help="Model whose first answers get feedback.")
    ] = None,
    split: Annotated[
        list[str] | None, typer.Option("--split", help="Splits to use (repeatable).")
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option("--limit", help="N examples of each split, spread evenly over it."),
    ] = None,
    originals: Annotated[
        bool,
        typer.Option("--originals/--no-originals", help="Keep the first-turn examples too."),
    ] = True,
    balanced: Annotated[
        bool,
        typer.Option(
            "--balance", help="As many 'I am sure!' feedback examples as retries, per split."
        ),
    ] = False,
    retry_samples: Annotated[
        int,
        typer.Option(
            "--retry-samples",
            help="Retry with the best of the model's first K samples where one beats its "
            "first list and -Oz (compiled), the best list elsewhere; 0: the best list always.",
        ),
    ] = 0,
    tuned: TunedSource = None,
    workers: Workers = None,
) -> None:
    """The compiler-feedback task: the model's first answer, its feedback, the right reply."""
    from passlm.data.dataset import read_dataset, write_dataset
    from passlm.data.feedback import balance, feedback_examples
    from passlm.llvm.pool import WorkerPool
    from passlm.model import default_model_dir
    from passlm.optimize.strategies import constraint_for

    if retry_samples < 0:
        raise InputError(f"--retry-samples must be 0 or more, got {retry_samples}")
    examples, meta = read_dataset(dataset)
    chosen = _chosen_examples(dataset, examples, split or ["train", "val"], limit)
    model_dir = model if model is not None else default_model_dir()
    lm, tok = _load_model(model_dir)
    _check_model_reads(dataset, meta, lm)
    irs = _own_irs(dataset, meta, chosen, tuned)
    tc = _toolchain()
    with WorkerPool(tc, workers=workers) as pool:
        made, summary = feedback_examples(
            lm, tok, chosen, pool, constraint=constraint_for(tok, None),
            retry_samples=retry_samples, irs=irs,
        )  # fmt: skip
    if balanced:
        made = balance(made)
    rows = [*chosen, *made] if originals else made
    write_dataset(
        output,
        rows,
        {
            **_source_meta(meta),
            "feedback": {
                **dataclasses.asdict(summary),
                "model": str(model_dir),
                "kind": "fast",
                "balanced": balanced,
                "retry_samples": retry_samples,
            },
            "source_dataset": str(dataset),
            "command": " ".join(["passlm", *sys.argv[1:]]),
        },
    )
    console.print(
        f"{summary.functions} functions: {summary.too_long} too long, {summary.invalid} invalid "
        f"first lists; targets: {summary.sure} 'I am sure!', {summary.retry} 'Let me try again.'"
        + (f" ({summary.own} with the model's own list)" if retry_samples else "")
    )
    err_console.print(f"wrote {output} ({len(rows)} examples, {len(made)} with feedback)")


@dataset_app.command("distill")
def dataset_distill_cmd(
    dataset: Annotated[Path, typer.Argument(help="Data set Parquet file (dataset make).")],
    output: Annotated[
        Path,
        typer.Option("-o", "--output", help="Data set to write (.parquet).", callback=_output_file),
    ],
    model: Annotated[
        Path | None, typer.Option("--model", help="Model whose greedy lists are answered.")
    ] = None,
    split: Annotated[
        list[str] | None, typer.Option("--split", help="Splits to use (repeatable).")
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option("--limit", help="N functions of each split, spread evenly over it."),
    ] = None,
    max_tokens: Annotated[
        int | None,
        typer.Option("--max-tokens", help="Drop longer examples (default: the model's context)."),
    ] = None,
    tuned: TunedSource = None,
    workers: Workers = None,
) -> None:
    """Full answers for the model's own greedy lists (-Oz where one loses to it): the real
    counts and optimized IR. Examples of the other splits are kept as they are."""
    from passlm.data.dataset import read_dataset, write_dataset
    from passlm.data.distill import distilled_examples
    from passlm.llvm.denylist import load_denylist
    from passlm.llvm.pool import WorkerPool
    from passlm.model import default_model_dir
    from passlm.model.generate import context_size
    from passlm.model.tokenizer import sequence_tokens

    if max_tokens is not None and max_tokens <= 0:
        raise InputError(f"--max-tokens must be positive, got {max_tokens}")
    splits = split or ["train"]
    examples, meta = read_dataset(dataset)
    seen: set[str] = set()
    firsts = [e for e in examples if not (e.hash in seen or seen.add(e.hash))]  # each once
    chosen = _chosen_examples(dataset, firsts, splits, limit)
    model_dir = model if model is not None else default_model_dir()
    lm, tok = _load_model(model_dir)
    _check_model_reads(dataset, meta, lm)
    irs = _own_irs(dataset, meta, chosen, tuned)
    limit_tokens = max_tokens if max_tokens is not None else context_size(lm)
    with WorkerPool(_toolchain(), workers=workers) as pool:
        made, summary = distilled_examples(
            lm, tok, chosen, pool, denylist=load_denylist(None), irs=irs
        )
    counts = sequence_tokens(tok, [e.prompt for e in made], [e.answer for e in made])
    sized = [dataclasses.replace(e, tokens=n) for e, n in zip(made, counts, strict=True)]
    kept = [e for e in sized if e.tokens <= limit_tokens]
    if not kept:
        raise InputError(f"{dataset}: no function got an answer that fits {limit_tokens} tokens")
    # the other splits as they are: `passlm train` validates on the val split's functions
    others = [e for e in examples if e.split not in splits]
    write_dataset(
        output,
        [*kept, *others],
        {
            **_source_meta(meta),
            "distill": {
                **dataclasses.asdict(summary),
                "model": str(model_dir),
                "max_tokens": limit_tokens,
                "dropped_tokens": len(sized) - len(kept),
            },
            "source_dataset": str(dataset),
            "command": " ".join(["passlm", *sys.argv[1:]]),
        },
    )
    s = summary
    console.print(
        f"{s.functions} functions: {s.too_long} too long for the model, {s.failed} lists that "
        f"did not compile; greedy lists: {s.oz} -Oz, {s.better} better than -Oz, {s.worse} "
        f"worse ({s.saved} instructions saved, {s.lost} lost; those {s.corrected} answered "
        f"with -Oz)"
    )
    err_console.print(
        f"wrote {output} ({len(kept)} examples; {len(sized) - len(kept)} longer than "
        f"{limit_tokens} tokens dropped; {len(others)} of other splits kept as they were)"
    )


@tokenizer_app.command("train")
def tokenizer_train_cmd(
    data: Annotated[Path, typer.Argument(help="Corpus or tuned Parquet file.")],
    output: Annotated[
        Path, typer.Option("-o", "--output", help="tokenizer.json to write.", callback=_output_file)
    ],
    vocab_size: Annotated[int, typer.Option("--vocab-size", help="Total tokens.")] = 8192,
    split: Annotated[str, typer.Option("--split", help="Split to train on.")] = "train",
    pre_tokenizer: Annotated[
        str, typer.Option("--pre-tokenizer", help="lines, operands or gpt2 (plain ByteLevel).")
    ] = "lines",
) -> None:
    """Train the byte-level BPE on one split's IR; print characters/token on the val split."""
    from passlm.data.dataset import ir_by_split
    from passlm.model.tokenizer import chars_per_token, save_tokenizer, train_tokenizer

    texts = ir_by_split(data)
    if not texts.get(split):
        raise InputError(f"{data}: no functions in split {split!r}")
    tok = train_tokenizer(texts[split], vocab_size, pre_tokenizer=pre_tokenizer)
    save_tokenizer(tok, output)
    err_console.print(f"wrote {output}: {tok.get_vocab_size()} tokens")
    if texts.get("val"):
        cpt = chars_per_token(tok, texts["val"])
        console.print(f"val: {cpt:.2f} characters/token over {len(texts['val'])} IR texts")


@app.command("eval")
def eval_cmd(
    test: Annotated[
        list[Path],
        typer.Option(
            "--test",
            help="Test source (repeatable): data set, tuned file, corpus, or C/C++ files/dir.",
        ),
    ],
    model: Annotated[
        Path | None, typer.Option("--model", help="Model directory (default: the shipped one).")
    ] = None,
    split: Annotated[
        list[str] | None,
        typer.Option("--split", help="Splits of data set/tuned/corpus sources (repeatable)."),
    ] = None,
    train: Annotated[
        str | None,
        typer.Option(
            "--train",
            help="Training data to deduplicate against and retrieve from (default: the data "
            "sets the model, and any it was fine-tuned from, were trained on, when found; "
            "'none': neither).",
        ),
    ] = None,
    strategies: Annotated[
        str,
        typer.Option(
            "--strategies", help="Strategies, comma-separated (guided-N: no model, compared too)."
        ),
    ] = "predict,oz-backup,sample-3,sample-10,guided-3,guided-10",
    retrieval_k: Annotated[
        str,
        typer.Option("--retrieval-k", help="Neighbours of the retrieval rows, comma-separated."),
    ] = "1,10",
    trials: Annotated[
        int,
        typer.Option("--trials", help="Autotuner budget for sources without best lists."),
    ] = 200,
    ir_functions: Annotated[
        int,
        typer.Option(
            "--ir-functions",
            help="Functions (spread over the test set) whose optimized IR is generated.",
        ),
    ] = 100,
    limit: Annotated[
        int | None, typer.Option("--limit", help="Only the first N functions of each source.")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Random-search seed.")] = 0,
    margin: Margin = "model",
    output: Annotated[
        Path,
        typer.Option(
            "-o",
            "--output",
            help="Report directory (JSON, Markdown, PNG, HTML).",
            callback=_output_dir,
        ),
    ] = Path("passlm-eval"),
    workers: Workers = None,
    timeout: Timeout = 60.0,
) -> None:
    """Every strategy of a model vs -Oz, random search, retrieval and the autotuner; a report."""
    from passlm.evaluate.baselines import PopularLists, Retrieval
    from passlm.evaluate.report import share_text, write_report
    from passlm.evaluate.suite import run_suite
    from passlm.evaluate.testset import (
        load_test_set,
        merge_training,
        read_training,
        training_data_of,
    )
    from passlm.llvm.denylist import load_denylist
    from passlm.llvm.pool import WorkerPool
    from passlm.model import default_model_dir
    from passlm.optimize.calibrate import parse_margin
    from passlm.optimize.strategies import parse_strategy

    names = [s.strip() for s in strategies.split(",") if s.strip()]
    for name in names:
        parse_strategy(name)  # a bad name fails before any work
    try:
        ks = [int(k) for k in retrieval_k.split(",") if k.strip()]
    except ValueError:
        raise InputError(f"--retrieval-k: expected numbers, got {retrieval_k!r}") from None
    if any(k < 1 for k in ks):
        raise InputError(f"--retrieval-k: neighbours must be at least 1, got {retrieval_k!r}")
    if trials < 1:
        raise InputError(f"--trials must be at least 1, got {trials}")
    model_dir = model if model is not None else default_model_dir()
    predict_margin = parse_margin(margin, model_dir)  # a bad --margin fails before any work
    lm, tok = _load_model(model_dir)
    train_paths: list[Path] = []
    if train is None:
        train_paths = training_data_of(model_dir)
    elif train != "none":
        train_paths = [Path(train)]
    training = merge_training([read_training(p) for p in train_paths]) if train_paths else None
    retrieval = Retrieval(training.irs, training.lists) if training and training.irs else None
    deny = load_denylist()
    popular = PopularLists(training.lists, deny.allows) if training and training.lists else None
    tc = _toolchain()
    with WorkerPool(tc, workers=workers, timeout=timeout) as pool, _status_progress() as progress:
        bar = progress.add_task("loading test functions", total=None, status="")

        def status(what: str, done: int, total: int) -> None:
            progress.update(bar, description=what, completed=done, total=total)

        test_set = load_test_set(
            test, splits=split or ["test"], toolchain=tc, compiler=pool, trials=trials,
            exclude=set(training.hashes) if training else set(),
            training_set=training.path if training else None,
            limit=limit, seed=seed, progress=status,
        )  # fmt: skip
        report, figures = run_suite(
            test_set, lm, tok, pool, strategies=names,
            model_name="the shipped default model" if model is None else str(model_dir),
            retrieval=retrieval, retrieval_k=ks, popular=popular, ir_functions=ir_functions,
            denylist=deny, seed=seed,
            command=" ".join(["passlm", *sys.argv[1:]]), status=status, margin=predict_margin,
        )  # fmt: skip
    table = Table(title=f"{report['test_set']['functions']:,} test functions vs -Oz")
    for col in ("method", "extra compiles", "improved", "regressed", "overall", "of autotuner"):
        table.add_column(col, justify="left" if col == "method" else "right")
    for r in report["rows"]:
        table.add_row(
            escape(r["method"]),
            "-" if r["extra_compiles"] is None else f"{r['extra_compiles']:,}",
            str(r["improved"]),
            str(r["regressed"]),
            f"{100 * r['overall']:+.2f}%",
            share_text(r),
        )
    console.print(table)
    q = report["quality"]
    if q.get("ir_functions"):
        console.print(
            f"generated IR ({q['ir_functions']} functions): parses {q['ir_parses_pct']:.1f}%, "
            f"exact {q['ir_exact_pct'] or 0:.1f}%, BLEU {q['ir_bleu'] or 0:.3f}; "
            f"errors: {', '.join(f'{k} {v}' for k, v in q['taxonomy'].items()) or 'none'}"
        )
    write_report(output, report, figures)
    err_console.print(
        f"wrote {output}/report.html (and report.json, functions.json.gz, report.md, figures)"
    )


@app.command("report")
def report_cmd(
    directory: Annotated[Path, typer.Argument(help="Report directory written by passlm eval.")],
) -> None:
    """Draw a stored evaluation report again from its report.json (Markdown, HTML, figures),
    adding each row's 95% bootstrap interval of its share of the autotuner's gain."""
    from passlm.evaluate.report import REPORT_JSON, read_report, write_report
    from passlm.evaluate.suite import add_intervals, figures_of

    path = directory / REPORT_JSON
    if not path.is_file():
        raise InputError(f"{directory}: no report.json (is it a passlm eval report directory?)")
    try:
        report = read_report(directory)
        keys = ("rows", "functions", "test_set", "plotted_methods", "by_source", "by_size")
        if not isinstance(report, dict) or any(k not in report for k in keys):
            raise ValueError("not a passlm eval report")
        add_intervals(report)
        figures = figures_of(report)
    except (ValueError, KeyError, TypeError) as e:
        raise InputError(f"{path}: {e}") from None
    write_report(directory, report, figures)
    err_console.print(
        f"wrote {directory}/report.html (and report.json, functions.json.gz, report.md, figures)"
    )


def _eval_line(step: int, e: dict) -> str:
    """One line of validation numbers for the console."""

    def pct(v) -> str:
        return "-" if v is None else f"{v:.1f}%"

    return (
        f"step {step}: vs -Oz {100 * e['model']['overall']:+.2f}% "
        f"(autotuner {100 * e['autotuner']['overall']:+.2f}%), "
        f"improved {e['model']['improved']}, regressed {e['model']['regressed']}, "
        f"valid lists {pct(e['valid_pass_lists_pct'])}, "
        f"count MAPE {pct(e['count_mape_before'])}/{pct(e['count_mape_after'])}, "
        f"IR parses {pct(e['ir_parses_pct'])}, exact {pct(e['ir_exact_pct'])}"
    )


# TrainConfig's fields that train_cmd sets, by the option that sets them
_TRAIN_OPTIONS = {
    "steps": "--steps", "batch_size": "--batch-size", "block_size": "--block-size",
    "lr": "--lr", "warmup_steps": "--warmup", "eval_every": "--eval-every",
    "checkpoint_every": "--checkpoint-every", "precision": "--precision",
}  # fmt: skip
_TRAIN_FIELD = re.compile(r"\b(?:" + "|".join(_TRAIN_OPTIONS) + r")\b")


@app.command("train")
def train_cmd(
    datasets: Annotated[
        list[Path],
        typer.Argument(
            help="Data set Parquet files (dataset make): their train splits are trained on "
            "together (name one twice to weigh it double); validation uses the first's.",
            metavar="DATASET...",
        ),
    ],
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Run directory.", callback=_output_dir)
    ],
    preset: Annotated[str, typer.Option("--preset", help="Model preset name or JSON file.")] = (
        "cpu-small"
    ),
    tokenizer: Annotated[
        Path | None,
        typer.Option("--tokenizer", help="tokenizer.json (default: train one on the data set)."),
    ] = None,
    steps: Annotated[int, typer.Option("--steps", help="Optimizer steps.")] = 1000,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Blocks per step.")] = 4,
    block_size: Annotated[int, typer.Option("--block-size", help="Tokens per block.")] = 1024,
    lr: Annotated[float, typer.Option("--lr", help="Peak learning rate.")] = 1e-3,
    warmup: Annotated[int, typer.Option("--warmup", help="Warm-up steps.")] = 100,
    eval_every: Annotated[
        int, typer.Option("--eval-every", help="Validate every N steps (0: at the end).")
    ] = 200,
    eval_functions: Annotated[
        int, typer.Option("--eval-functions", help="Validation functions compiled per eval.")
    ] = 64,
    eval_ir_functions: Annotated[
        int, typer.Option("--eval-ir-functions", help="Of those, how many write their IR.")
    ] = 8,
    checkpoint_every: Annotated[
        int, typer.Option("--checkpoint-every", help="Save a checkpoint every N steps.")
    ] = 50,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:N.")] = "auto",
    precision: Annotated[
        str,
        typer.Option(
            "--precision",
            help="Matmuls: auto (bf16 autocast on CUDA and on CPUs with native bf16), bf16, fp32.",
        ),
    ] = "auto",
    seed: Annotated[int, typer.Option("--seed", help="Initialization and data order.")] = 0,
    resume: Annotated[
        bool, typer.Option("--resume/--no-resume", help="Continue from the run's checkpoint.")
    ] = True,
    stop_after: Annotated[
        int | None, typer.Option("--stop-after", help="End this call after N steps in total.")
    ] = None,
    init: Annotated[
        Path | None,
        typer.Option(
            "--init", help="Fine-tune: start from this model (its shape and tokenizer are used)."
        ),
    ] = None,
    ir_only: Annotated[
        list[Path] | None,
        typer.Option(
            "--ir-only",
            help="A data set trained on too, without loss on its pass lists: it teaches the "
            "counts and the optimized IR for a list, not which list to choose (repeatable).",
            metavar="DATASET",
        ),
    ] = None,
    gain_repeats: Annotated[
        int,
        typer.Option(
            "--gain-repeats",
            help="Train each example once more per instruction the autotuner's best list saved "
            "over -Oz on its function, up to N more times, so the loss weighs functions by what "
            "a choice of list is worth there (0: each once).",
            metavar="N",
        ),
    ] = 0,
) -> None:
    """Train a Llama model on a data set (from scratch, or --init to fine-tune); resumable;
    validates with the compiler (with --eval-functions 0 it needs no LLVM)."""
    from passlm.data.dataset import read_dataset
    from passlm.evaluate.curves import plot_training
    from passlm.evaluate.model_eval import from_examples
    from passlm.evaluate.validation import sample_functions, validation_fn
    from passlm.llvm.pool import WorkerPool
    from passlm.model.config import load_preset
    from passlm.model.tokenizer import load_tokenizer, save_tokenizer, train_tokenizer
    from passlm.model.train import LOG_FILE, TrainConfig, train

    try:
        config = TrainConfig(
            steps=steps,
            batch_size=batch_size,
            block_size=block_size,
            lr=lr,
            warmup_steps=warmup,
            eval_every=eval_every,
            checkpoint_every=checkpoint_every,
            seed=seed,
            device=device,
            precision=precision,
        )
    except ValueError as exc:  # its fields named as the user typed them
        raise InputError(_TRAIN_FIELD.sub(lambda m: _TRAIN_OPTIONS[m[0]], str(exc))) from None
    if gain_repeats < 0:
        raise InputError(f"--gain-repeats {gain_repeats}: must be 0 or more")
    model_preset = load_preset(preset)
    if init is not None:
        import json

        from passlm.model.config import ModelPreset

        try:
            model_preset = ModelPreset(**json.loads((init / "passlm.json").read_text())["preset"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InputError(f"{init}: not a passlm model to fine-tune ({exc})") from None
        tokenizer = tokenizer or init / "tokenizer.json"
    examples, _ = read_dataset(datasets[0])
    ir_only = ir_only or []
    for other in [*datasets[1:], *ir_only]:
        read_dataset(other)  # a bad file fails here, before any tokenizer or checkpoint
    # one validation function per hash: a winners data set has several answers per function
    val = from_examples(list({e.hash: e for e in examples if e.split == "val"}.values()))
    chosen = sample_functions(val, eval_functions, seed)
    # validation compiles; without it (--eval-functions 0) training needs no LLVM, so it runs
    # on a GPU machine that has none. Looked up before anything is written.
    tc = _toolchain() if chosen else None
    if tokenizer is None:
        output.mkdir(parents=True, exist_ok=True)
        tokenizer = output / "tokenizer.json"
        if not tokenizer.is_file():
            from passlm.data.format import parse_prompt

            texts = [parse_prompt(e.prompt) or "" for e in examples if e.split == "train"]
            save_tokenizer(train_tokenizer(texts, 8192), tokenizer)
            err_console.print(f"trained {tokenizer} on {len(texts)} training functions")
    tok = load_tokenizer(tokenizer)
    command = " ".join(["passlm", *sys.argv[1:]])
    meta = {"command": command}
    with contextlib.ExitStack() as stack:
        pool = None
        if tc is not None:
            meta["llvm_version"] = tc.version
            pool = stack.enter_context(WorkerPool(tc, workers=1))
        progress = stack.enter_context(_status_progress())
        bar = progress.add_task("training", total=steps, status="")

        def on_step(record: dict) -> None:
            if "eval" in record:
                progress.console.print(_eval_line(record["step"], record["eval"]))
                return
            status = f"loss {record['loss']:.3f}  {record['tokens_per_s']:.0f} tok/s"
            progress.update(bar, completed=record["step"], status=status)

        result = train(
            datasets,
            tok,
            model_preset,
            config,
            output,
            resume=resume,
            eval_fn=validation_fn(chosen, pool, tok, ir_functions=eval_ir_functions)
            if pool is not None
            else None,
            stop_after=stop_after,
            meta=meta,
            on_step=on_step,
            init=init,
            ir_only=ir_only,
            gain_repeats=gain_repeats,
        )
    plot = plot_training(output / LOG_FILE, output / "training.png")
    err_console.print(f"step {result.step}/{steps}; curve: {plot}")
    if result.model_dir is not None:
        err_console.print(f"model: {result.model_dir}")
    else:
        err_console.print(
            f"stopped early; run the same command again to resume from step {result.step}"
        )


model_app = typer.Typer(no_args_is_help=True, help="Manage model directories.")
app.add_typer(model_app, name="model")


@model_app.command("export")
def model_export_cmd(
    model: Annotated[Path, typer.Argument(help="Model directory (e.g. RUN/model).")],
    output: ModelOutputDir,
    dtype: StoredDtype = "bfloat16",
) -> None:
    """Copy a model with its weights cast (bf16 halves the size of a shipped model)."""
    from passlm.model.checkpoint import export_model

    path = export_model(model, output, dtype=dtype)
    size = sum(f.stat().st_size for f in path.iterdir()) / 2**20
    err_console.print(f"wrote {path} ({size:.1f} MiB, {dtype})")


@model_app.command("average")
def model_average_cmd(
    models: Annotated[
        list[Path],
        typer.Argument(help="Model directories: fine-tunes sharing an ancestor (two or more)."),
    ],
    output: ModelOutputDir,
    weights: Annotated[
        str | None,
        typer.Option("--weights", help="Comma-separated weights, one per model (default equal)."),
    ] = None,
    dtype: StoredDtype = "bfloat16",
) -> None:
    """Average the weights of fine-tunes of one model into one model (a model soup)."""
    from passlm.model.average import average_models

    shares = None
    if weights is not None:
        try:
            shares = [float(w) for w in weights.split(",")]
        except ValueError:
            raise InputError(
                f"--weights: expected comma-separated numbers, got {weights!r}"
            ) from None
    path = average_models(
        models, output, weights=shares, dtype=dtype, command=" ".join(["passlm", *sys.argv[1:]])
    )
    err_console.print(
        f"wrote {path}: the average of {len(models)} models ({dtype}); its predict margin is "
        f"not chosen yet (passlm model calibrate --model {path})"
    )


@model_app.command("calibrate")
def model_calibrate_cmd(
    data: Annotated[
        list[Path],
        typer.Option(
            "--data",
            help="Functions to calibrate on (repeatable): tuned file, data set or corpus, as "
            "eval's --test.",
        ),
    ],
    model: Annotated[
        Path | None,
        typer.Option("--model", help="Model directory to calibrate (default: the shipped one)."),
    ] = None,
    split: Annotated[
        str, typer.Option("--split", help="Split to calibrate on (not one the model trained on).")
    ] = "val",
    limit: Annotated[
        int | None, typer.Option("--limit", help="Only the first N functions of the split.")
    ] = None,
    write: Annotated[
        bool,
        typer.Option("--write/--dry-run", help="Store the chosen margin in the model directory."),
    ] = True,
    workers: Workers = None,
    timeout: Timeout = 60.0,
) -> None:
    """Choose predict's margin: how sure the model must be to leave -Oz (stored in passlm.json)."""
    from passlm.evaluate.testset import load_test_set
    from passlm.llvm.denylist import load_denylist
    from passlm.llvm.pool import WorkerPool
    from passlm.model import default_model_dir
    from passlm.optimize.calibrate import calibrate, save_margin

    model_dir = model if model is not None else default_model_dir()
    if split == "train":
        raise InputError("--split: calibrate on functions the model was not trained on, not train")
    lm, tok = _load_model(model_dir)
    tc = _toolchain()
    with WorkerPool(tc, workers=workers, timeout=timeout) as pool, _status_progress() as progress:
        bar = progress.add_task("loading functions", total=None, status="")

        def status(done: int, total: int) -> None:
            progress.update(bar, description="greedy lists", completed=done, total=total)

        # a source without functions of the split is an error there, named
        test_set = load_test_set(data, splits=[split], toolchain=tc, compiler=pool, limit=limit)
        result = calibrate(
            test_set.functions, lm, tok, pool, denylist=load_denylist(), progress=status
        )
    table = Table(title=f"predict on {result.functions:,} {split} functions vs -Oz")
    for col in ("margin (nats)", "improved", "regressed", "overall"):
        table.add_column(col, justify="right")
    u = result.ungated
    table.add_row(
        "greedy as is", str(u["improved"]), str(u["regressed"]), f"{100 * u['overall']:+.3f}%"
    )
    for r in result.rows:
        mark = " *" if r["margin"] == result.margin else ""
        table.add_row(
            f"{r['margin']:g}{mark}", str(r["improved"]), str(r["regressed"]),
            f"{100 * r['overall']:+.3f}%",
        )  # fmt: skip
    console.print(table)
    chosen = "inf (always -Oz)" if result.margin == float("inf") else f"{result.margin:g}"
    if write:
        save_margin(model_dir, result, result.record(split, [str(d) for d in data]))
        err_console.print(f"predict margin {chosen} nats, stored in {model_dir}/passlm.json")
    else:
        err_console.print(f"predict margin {chosen} nats (not stored: --dry-run)")


class Terminated(BaseException):
    """SIGTERM: unwinds like Ctrl-C (workers stopped, no partial files, work resumable)."""


def _terminate(signum, frame) -> None:
    raise Terminated()


# no partial output is ever left; what commands store as they go (the corpus cache, the trial
# stores, training checkpoints, batch optimize's finished files) is kept and used again
_AGAIN = "run the same command again (resumable work goes on where it stopped)"


def _from_ctrl_c(exc: BaseException) -> bool:
    """Whether ``exc`` was raised while handling a KeyboardInterrupt (its cause or context)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, KeyboardInterrupt):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def report_errors(entry: Callable[[], object]) -> None:
    """Run ``entry`` (the CLI, or a benchmark's ``main``): user errors become one line on
    stderr and exit status 2, Ctrl-C and SIGTERM a line saying the work resumes, file-system
    and result-store failures one line and status 1, never a traceback."""
    import signal
    import sqlite3

    signal.signal(signal.SIGTERM, _terminate)
    try:
        entry()
    except PasslmError as exc:
        err_console.print(
            f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True
        )
        sys.exit(2)
    except Terminated:
        err_console.print(f"terminated; {_AGAIN}", soft_wrap=True)
        sys.exit(143)
    except KeyboardInterrupt:
        err_console.print(f"interrupted; {_AGAIN}", soft_wrap=True)
        sys.exit(130)
    except SystemExit as exc:
        if _from_ctrl_c(exc):  # typer turns Ctrl-C into a silent exit 130: say what it means
            err_console.print(f"interrupted; {_AGAIN}", soft_wrap=True)
        raise
    except (OSError, sqlite3.Error) as exc:
        # a full disk, a file size limit, a vanished directory: one line, not a traceback;
        # outputs are written atomically and stores commit as they go, so nothing is lost
        what = f"{exc.filename}: {exc.strerror}" if getattr(exc, "filename", None) else str(exc)
        kind = "result store" if isinstance(exc, sqlite3.Error) else "file system"
        err_console.print(
            f"[bold red]error:[/] {kind}: {escape(what)}", highlight=False, soft_wrap=True
        )
        sys.exit(1)


def main() -> None:
    """Entry point: user errors become one line on stderr and exit status 2."""
    report_errors(app)


if __name__ == "__main__":
    main()
