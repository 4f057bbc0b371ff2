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
    model: Annotated[
        Path | None,
        typer.Option("--model", help="Model directory (default: the model shipped with passlm)."),
    ] = None,
    no_model: Annotated[bool, typer.Option("--no-model", help="Use -Oz only.")] = False,
    workers: Workers = None,
    timeout: Timeout = 60.0,
) -> None:
    """Optimize a file for code size and report per function against -Oz."""
    from passlm.llvm.ir import load_ir, split_functions
    from passlm.llvm.pool import WorkerPool
    from passlm.optimize.pipeline import optimize_ir

    tc = _toolchain()
    ir = load_ir(source, tc)
    modules = split_functions(ir, tc)
    proposals, strategy = None, "oz"
    if not no_model:
        from passlm.model import default_model_dir, load
        from passlm.optimize.propose import greedy_pass_lists

        model_dir = model if model is not None else default_model_dir()
        lm, tok = load(model_dir)
        proposals = greedy_pass_lists(lm, tok, list(modules.values()))
        strategy = f"model greedy + -Oz backup ({model_dir.name})"
    with WorkerPool(tc, workers=workers, timeout=timeout) as pool:
        report = optimize_ir(ir, tc, pool, proposals, modules=modules, strategy=strategy)
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
    if proposals is not None:
        unused = sum(p is None for p in proposals)
        if unused:
            err_console.print(
                f"{unused} function(s) got no usable proposal (too long or invalid): -Oz used"
            )
    saved = (total_oz - total) / total_oz if total_oz else 0.0
    err_console.print(
        f"functions: {total_oz} instructions at -Oz -> {total} chosen ({100 * saved:+.2f}%)"
    )
    err_console.print(
        f"whole module written with -Oz: {report.o0_count} -> {report.count} instructions"
    )
    if output is not None:
        _emit(report.optimized_ir, output)
        err_console.print(f"wrote {output}")


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
    output: Annotated[Path, typer.Option("-o", "--output", help="Corpus file (.parquet).")],
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
        str | None, typer.Option("--holdout", help="Source kept whole out of training.")
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
        compiler = WorkerPool(tc, workers=workers, timeout=timeout)
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
    output: Annotated[Path, typer.Option("-o", "--output", help="Data set file (.parquet).")],
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
    workers: Workers = None,
) -> None:
    """Render (prompt, answer) examples; drop, never truncate, those over the limits."""
    from passlm.data.dataset import OZ, dataset_meta, make_dataset, write_dataset
    from passlm.llvm.backend import Task
    from passlm.llvm.pool import WorkerPool
    from passlm.search.tuned import read_tuned

    tok = None
    if tokenizer is not None:
        from passlm.model.tokenizer import load_tokenizer

        tok = load_tokenizer(tokenizer)
    rows, tuned_meta = read_tuned(tuned)
    oz_ir = None
    if oz_ties:
        ties = [r for r in rows if 0 <= r.oz_count <= r.best_count]
        with WorkerPool(_toolchain(), workers=workers) as pool:
            results = pool.run_tasks([Task(r.ir, OZ, want_ir=aux) for r in ties])
        oz_ir = {}
        for r, res in zip(ties, results, strict=True):
            if not res.ok or res.count != r.oz_count:
                raise InputError(
                    f"{tuned}: -Oz on {r.function} ({r.hash}) gave {res.count or res.error}, "
                    f"the tuned file says {r.oz_count}; is it from another LLVM build?"
                )
            oz_ir[r.hash] = res.ir or ""
    examples, report = make_dataset(
        rows, aux=aux, max_tokens=max_tokens, tokenizer=tok, max_chars=max_chars, oz_ir=oz_ir
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
    err_console.print(f"wrote {output}: {len(examples)} examples")


tokenizer_app = typer.Typer(no_args_is_help=True, help="Train and measure the IR tokenizer.")
app.add_typer(tokenizer_app, name="tokenizer")


@tokenizer_app.command("train")
def tokenizer_train_cmd(
    data: Annotated[Path, typer.Argument(help="Corpus or tuned Parquet file.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="tokenizer.json to write.")],
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
    test: Annotated[Path, typer.Option("--test", help="Data set Parquet file to evaluate on.")],
    model: Annotated[
        Path | None, typer.Option("--model", help="Model directory (default: the shipped one).")
    ] = None,
    split: Annotated[
        list[str] | None, typer.Option("--split", help="Splits to use (repeatable).")
    ] = None,
    ir_functions: Annotated[
        int, typer.Option("--ir-functions", help="Functions whose optimized IR is generated.")
    ] = 100,
    limit: Annotated[
        int | None, typer.Option("--limit", help="Only the first N functions.")
    ] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Generation batch.")] = 8,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="JSON report (summary and functions).")
    ] = None,
    workers: Workers = None,
) -> None:
    """Greedy pass lists of a model on held-out functions, compiled: gain over -Oz, IR quality."""
    import json

    from passlm.data.dataset import read_dataset
    from passlm.evaluate.model_eval import evaluate_model, from_examples, outcome_rows, summarize
    from passlm.files import atomic_write
    from passlm.llvm.pool import WorkerPool
    from passlm.model import default_model_dir, load

    splits = split or ["test"]
    examples, _ = read_dataset(test)
    chosen = [e for e in examples if e.split in splits][:limit]
    if not chosen:
        raise InputError(f"{test}: no examples in split(s) {', '.join(splits)}")
    model_dir = model if model is not None else default_model_dir()
    lm, tok = load(model_dir)
    functions = from_examples(chosen)
    with WorkerPool(_toolchain(), workers=workers) as pool:
        outcomes = evaluate_model(
            lm, tok, functions, pool, ir_functions=ir_functions, batch_size=batch_size
        )
    summary = summarize(outcomes)
    table = Table("metric", "value", title=f"{model_dir} on {test} ({', '.join(splits)})")
    m, t = summary["model"], summary["autotuner"]
    frac = summary["fraction_of_autotuner"]
    rows = [
        (
            "functions (too long for the model: -Oz)",
            f"{summary['functions']} ({summary['too_long']})",
        ),
        ("valid pass lists", f"{summary['valid_pass_lists_pct']:.1f}%"),
        ("greedy vs -Oz, overall", f"{100 * m['overall']:+.2f}%"),
        ("functions improved / regressed", f"{m['improved']} / {m['regressed']}"),
        ("instructions saved / regressed", f"{m['saved']} / {m['lost']}"),
        ("autotuner vs -Oz, overall", f"{100 * t['overall']:+.2f}% ({t['improved']} improved)"),
        ("fraction of the autotuner's gain", "-" if frac is None else f"{100 * frac:.1f}%"),
        (
            "count MAPE before / after",
            f"{summary['count_mape_before'] or 0:.1f}% / {summary['count_mape_after'] or 0:.1f}%",
        ),
        ("generated IR: functions", str(summary["ir_functions"])),
    ]
    if summary["ir_functions"]:
        rows += [
            (
                "generated IR complete / parses",
                f"{summary['ir_complete_pct']:.1f}% / {summary['ir_parses_pct']:.1f}%",
            ),
            ("exact match with the compiler", f"{summary['ir_exact_pct'] or 0:.1f}%"),
            ("BLEU", f"{summary['ir_bleu'] or 0:.3f}"),
        ]
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)
    if output is not None:
        report = {
            "model": str(model_dir),
            "test": str(test),
            "splits": splits,
            "command": " ".join(["passlm", *sys.argv[1:]]),
            "summary": summary,
            "functions": outcome_rows(outcomes),
        }
        atomic_write(output, json.dumps(report, indent=1) + "\n")
        err_console.print(f"wrote {output}")


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


@app.command("train")
def train_cmd(
    dataset: Annotated[Path, typer.Argument(help="Data set Parquet file (dataset make).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Run directory.")],
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
    seed: Annotated[int, typer.Option("--seed", help="Initialization and data order.")] = 0,
    resume: Annotated[
        bool, typer.Option("--resume/--no-resume", help="Continue from the run's checkpoint.")
    ] = True,
    stop_after: Annotated[
        int | None, typer.Option("--stop-after", help="End this call after N steps in total.")
    ] = None,
) -> None:
    """Train a Llama model from scratch on a data set; resumable; validates with the compiler."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

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
        )
    except ValueError as exc:
        raise InputError(str(exc)) from None
    model_preset = load_preset(preset)
    examples, _ = read_dataset(dataset)
    if tokenizer is None:
        output.mkdir(parents=True, exist_ok=True)
        tokenizer = output / "tokenizer.json"
        if not tokenizer.is_file():
            from passlm.data.format import parse_prompt

            texts = [parse_prompt(e.prompt) or "" for e in examples if e.split == "train"]
            save_tokenizer(train_tokenizer(texts, 8192), tokenizer)
            err_console.print(f"trained {tokenizer} on {len(texts)} training functions")
    tok = load_tokenizer(tokenizer)
    val = from_examples([e for e in examples if e.split == "val"])
    chosen = sample_functions(val, eval_functions, seed)
    command = " ".join(["passlm", *sys.argv[1:]])
    tc = _toolchain()
    with (
        WorkerPool(tc, workers=1) as pool,
        Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            "{task.fields[status]}",
            console=err_console,
        ) as progress,
    ):
        bar = progress.add_task("training", total=steps, status="")

        def on_step(record: dict) -> None:
            if "eval" in record:
                progress.console.print(_eval_line(record["step"], record["eval"]))
                return
            status = f"loss {record['loss']:.3f}  {record['tokens_per_s']:.0f} tok/s"
            progress.update(bar, completed=record["step"], status=status)

        result = train(
            dataset,
            tok,
            model_preset,
            config,
            output,
            resume=resume,
            eval_fn=validation_fn(chosen, pool, tok, ir_functions=eval_ir_functions)
            if chosen
            else None,
            stop_after=stop_after,
            meta={"command": command, "llvm_version": tc.version},
            on_step=on_step,
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
    output: Annotated[Path, typer.Option("-o", "--output", help="Directory to write.")],
    dtype: Annotated[
        str, typer.Option("--dtype", help="float32, bfloat16 or float16.")
    ] = "bfloat16",
) -> None:
    """Copy a model with its weights cast (bf16 halves the size of a shipped model)."""
    from passlm.model.checkpoint import export_model

    path = export_model(model, output, dtype=dtype)
    size = sum(f.stat().st_size for f in path.iterdir()) / 2**20
    err_console.print(f"wrote {path} ({size:.1f} MiB, {dtype})")


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
