"""Which lists to compile? The model's own predicted counts, and its samples beside the guided search.

``sample-N`` compiles the model's first N priority samples. Two questions a user would ask
before trusting it with a budget of N compiles:

* **Can the model choose among more of its own samples?** The model writes, after each list,
  the count it expects (its answer forced up to ``from <unoptimized count> to``). Draw 30
  samples (``sample-30``'s lists), and compile the N whose predicted count is lowest (ties in
  priority order), or the first ``--keep`` samples and then the lowest predicted.
* **Do the model's samples add to the guided search?** ``guided-N`` (no model) picks each list
  from the outcome table by IR similarity and by what the compiler answered so far. Spend the
  first m of N compiles on the model's first m samples and the rest on ``guided``'s picks
  (those the model already compiled skipped), for every m from 0 (``guided-N``) to N
  (``sample-N``). The guided picks do not see the model's compiles: the table has outcomes
  only for its own lists.
* **Does a second model add to the first?** With ``--second SAMPLES.json.gz`` (another model's
  priority samples with their counts, by function hash, as
  ``reports/model/oz_context/samples.json.gz`` holds the ``-Oz``-context model's): the shipped
  model's first m samples, then the second model's lists not yet compiled, then, where the
  second model proposed too few (a prompt too long for it), more of the shipped model's; for
  every m from 0 to N, on the sources whose every function the file covers.

Every list is compiled once up front (to score the rules, not by them), so each rule is an
exact replay of what it would have compiled. Shares are of the autotuner's gain, as in
``passlm eval``; the first N samples reproduce its ``sample-N`` rows. Paired 95% bootstrap
intervals compare each rule with ``sample-N`` and ``guided-N`` on the same functions.
Resumable: every function's samples and counts go to ``--cache`` as they are made, one worker
process (model and compiler, one thread each) per ``--workers``.

    .venv/bin/python benchmarks/sample_selection.py
        [--source data/tuned.parquet:test --source data/unseen.parquet:heldout ...]
        [--budgets 3,10] [--pool 30] [--keep 3] [--workers 2] [--limit N]
        [--cache runs/sample_selection] [-o reports/optimize/strategies/sample_selection.json]
        [--second reports/model/oz_context/samples.json.gz]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
from functools import partial
from pathlib import Path

from rich.console import Console
from rich.table import Table

from passlm.errors import InputError, PasslmError
from passlm.evaluate.metrics import best_of, share_points
from passlm.evaluate.testset import parse_source
from passlm.files import atomic_write

console = Console(width=140)
DEFAULT_SOURCES = (
    "data/tuned.parquet:test",
    "data/tuned.parquet:heldout",
    "data/unseen.parquet:heldout",
)


def _cache_file(cache: Path, source: str, shard: int) -> Path:
    name = source.replace("/", "_").replace(":", "-").replace(".parquet", "")
    return cache / f"{name}.{shard}.jsonl"


def collect(source: str, shard: int, shards: int, pool_size: int, guided_n: int,
            limit: int | None, out: Path) -> None:  # fmt: skip
    """One worker: every ``shards``-th function of ``source`` from ``shard``, appended to
    ``out`` (functions already there are skipped)."""
    import torch

    sys.path.insert(0, str(Path(__file__).parent))
    from passlm.evaluate.testset import load_test_set
    from passlm.llvm.backend import Task
    from passlm.llvm.cache import CachedCompiler
    from passlm.llvm.denylist import load_denylist
    from passlm.llvm.pool import WorkerPool
    from passlm.llvm.toolchain import default_toolchain
    from passlm.model import default_model_dir, load
    from passlm.model.constrained import priority_sample
    from passlm.model.generate import prompt_ids
    from passlm.optimize.prompts import model_prompts
    from passlm.optimize.strategies import (
        _Candidates,
        constraint_for,
        parse_strategy,
        propose_guided,
    )
    from zero_compile import predicted_after

    torch.set_num_threads(1)
    done = set()
    if out.is_file():
        done = {json.loads(line)["hash"] for line in out.read_text().splitlines() if line}
    tc = default_toolchain()
    model, tok = load(default_model_dir())
    deny = load_denylist()
    constraint = constraint_for(tok, deny)
    path, split = parse_source(source)
    with WorkerPool(tc, workers=1) as pool, out.open("a") as fh:
        fns = load_test_set([path], splits=[split], toolchain=tc, compiler=pool, limit=limit)
        mine = [f for i, f in enumerate(fns.functions) if i % shards == shard]
        mine = [f for f in mine if f.hash not in done]
        # all functions advance together through the search, one batch per round; its
        # compiles are remembered, so the counts below cost nothing more
        searched = CachedCompiler(pool)
        guided = propose_guided(
            [f.ir for f in mine], parse_strategy(f"guided-{guided_n}"), searched, denylist=deny
        )
        flat = [(i, p) for i, lists in enumerate(guided) for p in lists]
        results = searched.run_tasks([Task(mine[i].ir, p) for i, p in flat])
        guided_counts: list[list[int | None]] = [[] for _ in mine]
        for (i, _), r in zip(flat, results, strict=True):
            guided_counts[i].append(r.count if r.ok else None)
        for f, g, g_counts in zip(mine, guided, guided_counts, strict=True):
            prompt = model_prompts(model, [f.ir], pool, tok)[0]
            kept = _Candidates(deny)
            drawn = (
                priority_sample(model, tok, prompt, pool_size, constraint=constraint, keep=kept)
                if prompt is not None
                else []
            )
            lists = kept.lists
            texts = [str(p) for p in lists]
            real = pool.run_grid([f.ir], lists)[0] if lists else []
            predicted = (
                predicted_after(model, tok, prompt_ids(tok, prompt), [*texts, "-Oz"], f.o0_count)
                if lists
                else [None]
            )
            record = {
                "hash": f.hash,
                "o0": f.o0_count,
                "oz": f.oz_count,
                "autotuner": min(f.best_count, f.oz_count),
                "lists": texts,
                "logprob": [s.logprob for s in drawn],
                "counts": [r.count if r.ok else None for r in real],
                "predicted": predicted[:-1],
                "oz_predicted": predicted[-1],
                "guided": [str(p) for p in g],
                "guided_counts": g_counts,
            }
            fh.write(json.dumps(record) + "\n")
            fh.flush()


def first_n(r: dict, n: int) -> int:
    """``sample-n``: the first n samples."""
    return best_of(r["oz"], r["counts"][:n])


def by_predicted(r: dict, n: int, keep: int = 0) -> int:
    """The first ``keep`` samples, then those with the lowest predicted count."""
    head = list(range(min(keep, n, len(r["lists"]))))
    rest = [i for i in range(len(r["lists"])) if i not in head]
    rest.sort(key=lambda i: (r["predicted"][i] is None, r["predicted"][i] or 0, i))
    chosen = head + rest[: n - len(head)]
    return best_of(r["oz"], [r["counts"][i] for i in chosen])


def _first_distinct(r: dict, n: int, proposed) -> int:
    """The best of the first n distinct lists of ``proposed`` ((list, count) pairs, in order)."""
    counts: list[int | None] = []
    seen: set[str] = set()
    for passes, count in proposed:
        if len(counts) >= n:
            break
        if passes not in seen:
            seen.add(passes)
            counts.append(count)
    return best_of(r["oz"], counts)


def model_then_guided(r: dict, n: int, m: int) -> int:
    """The model's first m samples, then guided picks the model has not compiled, n in all."""
    proposed = [*zip(r["lists"][:m], r["counts"][:m], strict=True),
                *zip(r["guided"], r["guided_counts"], strict=True)]  # fmt: skip
    return _first_distinct(r, n, proposed)


def then_other(r: dict, other: dict, n: int, m: int) -> int:
    """The first m lists of ``r``, then ``other``'s lists (the same function's) not yet
    compiled, then ``r``'s again, n in all (-Oz always among them)."""
    proposed = [*zip(r["lists"][:m], r["counts"][:m], strict=True),
                *zip(other["lists"], other["counts"], strict=True),
                *zip(r["lists"][m:], r["counts"][m:], strict=True)]  # fmt: skip
    return _first_distinct(r, n, proposed)


def model_then_second(r: dict, n: int, m: int, second: dict[str, dict]) -> int:
    """The model's first m samples, the second model's lists, then the model's again, n in all."""
    return then_other(r, second[r["hash"]], n, m)


def read_samples(path: Path, name: str | None = None) -> dict[str, dict[str, dict]]:
    """A samples file's records (``device_samples.py score --lists``) by split, then by function
    hash; ``name``: what an error calls the file (its path by default)."""
    try:
        data = json.loads(gzip.decompress(path.read_bytes()))
        return {split: {r["hash"]: r for r in rows} for split, rows in data.items()}
    except (OSError, EOFError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InputError(f"{name or path}: not a samples file ({exc})") from None


def read_second(path: Path) -> dict[str, dict]:
    """A second model's samples by function hash, from every split the file holds."""
    by_split = read_samples(path, f"--second {path}")
    return {h: r for rows in by_split.values() for h, r in rows.items()}


def score(rows: list[dict], rule, baselines: dict[str, list[int]]) -> dict:
    """A rule's share of the autotuner's gain, its interval, and paired differences (points)."""
    return share_points(
        [r["oz"] for r in rows], [rule(r) for r in rows], [r["autotuner"] for r in rows], baselines
    )


def rules_for(n: int, keep: int, second: dict[str, dict] | None = None) -> dict:
    """Every rule at a budget of n compiles (with ``second``: those mixing in its samples)."""
    rules = {
        f"sample-{n}": partial(first_n, n=n),
        f"lowest predicted {n} of the pool": partial(by_predicted, n=n),
        f"first {keep}, then lowest predicted": partial(by_predicted, n=n, keep=keep),
        f"guided-{n}": partial(model_then_guided, n=n, m=0),
    }
    for m in range(1, n):
        rules[f"model {m} + guided {n - m}"] = partial(model_then_guided, n=n, m=m)
    if second is not None:
        for m in range(n):
            rule = partial(model_then_second, n=n, m=m, second=second)
            rules[f"model {m} + second model {n - m}"] = rule
    return rules


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", action="append", default=None, help="PATH:SPLIT, repeatable")
    parser.add_argument("--budgets", default="3,10")
    parser.add_argument("--pool", type=int, default=30, help="samples drawn per function")
    parser.add_argument("--keep", type=int, default=3)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--cache", type=Path, default=Path("runs/sample_selection"))
    parser.add_argument("-o", "--output", type=Path, default=None)
    parser.add_argument("--second", type=Path, default=None, help="another model's samples")
    parser.add_argument("--shard", default=None, help=argparse.SUPPRESS)  # SOURCE@I/N, internal
    args = parser.parse_args()
    budgets = [int(b) for b in args.budgets.split(",")]
    if args.shard:
        source, _, part = args.shard.rpartition("@")
        i, n = (int(x) for x in part.split("/"))
        collect(
            source, i, n, args.pool, max(budgets), args.limit, _cache_file(args.cache, source, i)
        )
        return
    sources = args.source or list(DEFAULT_SOURCES)
    for s in sources:
        parse_source(s)
    second = read_second(args.second) if args.second is not None else None
    args.cache.mkdir(parents=True, exist_ok=True)
    extra = ["--pool", str(args.pool), "--budgets", args.budgets, "--cache", str(args.cache)]
    extra += ["--limit", str(args.limit)] if args.limit else []
    for source in sources:
        workers = [
            subprocess.Popen(
                [sys.executable, __file__, "--shard", f"{source}@{i}/{args.workers}", *extra]
            )
            for i in range(args.workers)
        ]
        if any(w.wait() for w in workers):
            raise PasslmError(f"a worker failed on {source}; run again to resume from {args.cache}")
    report: dict = {"pool": args.pool, "keep": args.keep, "sources": {}}
    if args.second is not None:
        report["second"] = str(args.second)
    for source in sources:
        rows = []
        for i in range(args.workers):
            path = _cache_file(args.cache, source, i)
            rows += [json.loads(line) for line in path.read_text().splitlines() if line]
        rows.sort(key=lambda r: r["hash"])
        per_budget = {}
        covered = second is not None and all(r["hash"] in second for r in rows)
        for n in budgets:
            base = {
                f"sample-{n}": [first_n(r, n) for r in rows],
                f"guided-{n}": [model_then_guided(r, n, 0) for r in rows],
            }
            per_budget[str(n)] = {
                name: score(rows, rule, base)
                for name, rule in rules_for(n, args.keep, second if covered else None).items()
            }
        pool = score(rows, partial(first_n, n=args.pool), {})
        report["sources"][source] = {
            "functions": len(rows),
            f"sample-{args.pool}": pool,
            "budgets": per_budget,
        }
        _table(source, len(rows), per_budget)
        if pool["share"] is not None:
            console.print(f"all {args.pool} samples ({args.pool} compiles): {pool['share']:.1f}%")
    if args.output:
        atomic_write(args.output, json.dumps(report, indent=2) + "\n")


def _table(source: str, functions: int, per_budget: dict) -> None:
    def pts(v) -> str:
        return "-" if v is None else f"[{v[0]:+.1f}, {v[1]:+.1f}]"

    def span(v) -> str:
        return "" if v is None else f" [{v[0]:.1f}, {v[1]:.1f}]"

    for n, rules in per_budget.items():
        table = Table(title=f"{source}: {functions} functions, {n} compiles besides -Oz")
        for col in ("rule", "share of the autotuner's gain", f"vs sample-{n}", f"vs guided-{n}"):
            table.add_column(col, justify="left" if col == "rule" else "right")
        for name, s in rules.items():
            table.add_row(
                name, "-" if s["share"] is None else f"{s['share']:.1f}%{span(s['interval'])}",
                pts(s[f"vs sample-{n}"]), pts(s[f"vs guided-{n}"]),
            )  # fmt: skip
        console.print(table)


if __name__ == "__main__":
    from passlm.cli import report_errors

    report_errors(main)
