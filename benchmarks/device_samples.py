"""Priority samples drawn on a machine without LLVM, then compiled here.

A lent GPU machine has many cores and a GPU but no LLVM, so it can train and sample but not
compile. This script splits a ``sample-N`` measurement in three:

* ``prompts`` (here, needs LLVM): each function's prompt as the model reads it (with the
  ``-Oz`` context for a model trained on it: ``passlm.optimize.prompts.model_prompts``, the
  plain prompt where that one is too long), with its ``-Oz`` and autotuner counts.
* ``sample`` (anywhere, no LLVM): every model named draws its samples for every prompt as
  ``propose`` does (``sample_lists``: new lists, not ``-Oz``, allowed by the deny list; priority
  samples, or drawn at ``--temperature``), one worker process per ``--workers`` on one CPU
  thread each (the CPU fast path).
* ``score`` (here, needs LLVM): every sampled list compiled once, and ``sample-k``'s share of
  the autotuner's gain with its 95% bootstrap interval per split, as ``passlm eval`` reports it;
  the lists and counts are written in the format of ``reports/model/oz_context/samples.json.gz``
  (so ``benchmarks/sample_selection.py --second`` reads them).

The lists are those ``passlm eval``'s ``sample-N`` draws for the same model and prompts
(checked: ``sample`` reproduces the committed held-out samples of the ``-Oz``-context model).

    .venv/bin/python benchmarks/device_samples.py prompts --model DIR -o PROMPTS.jsonl.gz
        [--source data/tuned.parquet:val --source data/tuned.parquet:heldout ...]
    python benchmarks/device_samples.py sample PROMPTS.jsonl.gz --model NAME=DIR ...
        [--n 10] [--workers 14] -o SAMPLES_DIR
    .venv/bin/python benchmarks/device_samples.py score PROMPTS.jsonl.gz SAMPLES_DIR/NAME.jsonl.gz
        [-o SUMMARY.json] [--lists SAMPLES.json.gz] [--workers 2]
"""

from __future__ import annotations

import argparse
import gzip
import json
import multiprocessing as mp
import queue as queue_module
import time
from pathlib import Path

from passlm.errors import InputError, PasslmError
from passlm.evaluate.metrics import best_of, share_points
from passlm.files import atomic_write, read_jsonl_gz, write_jsonl_gz

DEFAULT_SOURCES = (
    "data/tuned.parquet:val",
    "data/tuned.parquet:heldout",
    "data/unseen.parquet:heldout",
)
BUDGETS = (1, 3, 10)


def _test_sets(sources: list[str], tc, pool, limit: int | None = None) -> dict[str, list]:
    from passlm.evaluate.testset import load_test_set, parse_source

    out = {}
    for source in sources:
        path, split = parse_source(source)
        out[source] = load_test_set(
            [path], splits=[split], toolchain=tc, compiler=pool, limit=limit
        ).functions
    return out


def prompts_cmd(args: argparse.Namespace) -> None:
    """Every function's prompt for ``--model``, with its counts."""
    from passlm.evaluate.testset import parse_source
    from passlm.llvm.pool import WorkerPool
    from passlm.llvm.toolchain import default_toolchain
    from passlm.model import load
    from passlm.optimize.prompts import model_prompts

    sources = args.source or list(DEFAULT_SOURCES)
    for source in sources:
        parse_source(source)  # a bad one fails before the model loads
    model, tok = load(args.model)
    tc = default_toolchain()
    rows = []
    with WorkerPool(tc, workers=args.workers) as pool:
        for source, functions in _test_sets(sources, tc, pool, args.limit).items():
            prompts = model_prompts(model, [f.ir for f in functions], pool, tok)
            for f, prompt in zip(functions, prompts, strict=True):
                rows.append({
                    "split": source, "hash": f.hash, "source": f.source, "oz": f.oz_count,
                    "best": min(f.best_count, f.oz_count), "prompt": prompt,
                })  # fmt: skip
            print(f"{source}: {len(functions)} prompts", flush=True)
    write_jsonl_gz(args.output, rows)
    print(f"wrote {args.output} ({len(rows)} prompts)")


def _sample_shard(
    model_dir: str,
    prompts: list[tuple[int, str | None]],
    n: int,
    out: mp.Queue,
    temperature: float | None = None,
    seed: int = 0,
) -> None:
    """One worker: each prompt's lists, as (index, lists), then None: ``sample-n``'s
    (``sample_lists``), priority samples or, with ``temperature``, lists drawn at it."""
    import torch

    from passlm.llvm.denylist import load_denylist
    from passlm.model import load
    from passlm.optimize.strategies import constraint_for, parse_strategy, sample_lists

    torch.set_num_threads(1)
    model, tok = load(model_dir)
    deny = load_denylist()
    constraint = constraint_for(tok, deny)
    strategy = (
        parse_strategy(f"sample-{n}")
        if temperature is None
        else parse_strategy(
            f"sample-{n}", sampling="temperature", temperature=temperature, seed=seed
        )
    )
    for i, prompt in prompts:
        lists = (
            []
            if prompt is None
            else sample_lists(model, tok, prompt, strategy, constraint=constraint, denylist=deny)
        )
        out.put((i, [str(p) for p in lists]))
    out.put(None)


def sample_cmd(args: argparse.Namespace) -> None:
    """Every model's ``n`` samples (priority, or drawn at ``--temperature``) for every prompt."""
    rows = read_jsonl_gz(args.prompts)
    args.output.mkdir(parents=True, exist_ok=True)
    ctx = mp.get_context("spawn")
    for spec in args.model:
        name, _, model_dir = spec.partition("=")
        if not model_dir or not Path(model_dir, "passlm.json").is_file():
            raise InputError(f"--model {spec}: expected NAME=DIR of a passlm model")
        # longest prompts first, dealt round-robin, so the workers finish together
        order = sorted(range(len(rows)), key=lambda i: -len(rows[i]["prompt"] or ""))
        queue: mp.Queue = ctx.Queue()
        shards = [[(i, rows[i]["prompt"]) for i in order[w :: args.workers]]
                  for w in range(args.workers)]  # fmt: skip
        workers = [
            ctx.Process(
                target=_sample_shard,
                args=(model_dir, shard, args.n, queue, args.temperature, args.seed),
            )
            for shard in shards
        ]
        start = time.perf_counter()
        for w in workers:
            w.start()
        lists: dict[int, list[str]] = {}
        running = len(workers)
        while running:
            try:
                got = queue.get(timeout=5)
            except queue_module.Empty:  # a worker that died sends no end mark
                if any(w.exitcode for w in workers):
                    break
                continue
            if got is None:
                running -= 1
                continue
            lists[got[0]] = got[1]
            if len(lists) % 500 == 0:
                print(f"{name}: {len(lists)}/{len(rows)}", flush=True)
        for w in workers:
            w.join(timeout=60)
        if any(w.exitcode for w in workers) or len(lists) != len(rows):
            raise PasslmError(f"{name}: a sampling worker failed")
        seconds = time.perf_counter() - start
        out = args.output / f"{name}.jsonl.gz"
        write_jsonl_gz(out, [{"hash": r["hash"], "split": r["split"], "lists": lists[i]}
                           for i, r in enumerate(rows)])  # fmt: skip
        print(
            f"{name}: {len(rows)} functions in {seconds:.0f} s with {args.workers} workers: {out}"
        )


def _sample_k(scored: list[dict], k: int) -> dict:
    """``sample-k`` (the best of ``-Oz`` and the first k lists that compiled): its share of the
    autotuner's gain in points, as ``benchmarks/sample_selection.py`` stores its rules'."""
    best = [best_of(r["oz"], r["counts"][:k]) for r in scored]
    return share_points([r["oz"] for r in scored], best, [r["autotuner"] for r in scored])


def score_cmd(args: argparse.Namespace) -> None:
    """Compile every sampled list once; sample-k's share of the autotuner's gain per split."""
    from passlm.llvm.backend import Task
    from passlm.llvm.passes import parse_pass_list
    from passlm.llvm.pool import WorkerPool
    from passlm.llvm.toolchain import default_toolchain

    rows = read_jsonl_gz(args.prompts)
    samples = {(s["split"], s["hash"]): s["lists"] for s in read_jsonl_gz(args.samples)}
    missing = [r for r in rows if (r["split"], r["hash"]) not in samples]
    if missing:
        raise InputError(f"{args.samples}: no samples for {len(missing)} of {len(rows)} prompts")
    tc = default_toolchain()
    splits = list(dict.fromkeys(r["split"] for r in rows))
    summary: dict = {"samples": str(args.samples), "prompts": str(args.prompts), "splits": {}}
    stored: dict[str, list[dict]] = {}
    with WorkerPool(tc, workers=args.workers) as pool:
        functions = _test_sets(splits, tc, pool)
        for split in splits:
            ir = {f.hash: f.ir for f in functions[split]}
            mine = [r for r in rows if r["split"] == split]
            unknown = [r["hash"] for r in mine if r["hash"] not in ir]
            if unknown:
                raise InputError(f"{args.prompts}: {len(unknown)} functions not in {split}")
            tasks = [(r, parse_pass_list(p)) for r in mine for p in samples[(split, r["hash"])]]
            results = pool.run_tasks([Task(ir[r["hash"]], p) for r, p in tasks])
            counts: dict[str, list[int | None]] = {r["hash"]: [] for r in mine}
            for (r, _), res in zip(tasks, results, strict=True):
                counts[r["hash"]].append(res.count if res.ok else None)
            scored = [{"oz": r["oz"], "autotuner": r["best"], "counts": counts[r["hash"]]}
                      for r in mine]  # fmt: skip
            per_k = {f"sample-{k}": _sample_k(scored, k) for k in BUDGETS}
            summary["splits"][split] = {"functions": len(mine), **per_k}
            print(split, json.dumps(per_k), flush=True)
            stored[split] = [
                {"hash": r["hash"], "source": r["source"], "oz": r["oz"], "best": r["best"],
                 "lists": samples[(split, r["hash"])], "counts": counts[r["hash"]]}
                for r in mine
            ]  # fmt: skip
    if args.lists is not None:
        atomic_write(args.lists, gzip.compress(json.dumps(stored).encode(), mtime=0))
    if args.output is not None:
        atomic_write(args.output, json.dumps(summary, indent=1) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prompts")
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--source", action="append")
    p.add_argument("--limit", type=int, help="only the first N functions of each source")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("-o", "--output", type=Path, required=True)
    p.set_defaults(run=prompts_cmd)
    s = sub.add_parser("sample")
    s.add_argument("prompts", type=Path)
    s.add_argument("--model", action="append", required=True, help="NAME=DIR")
    s.add_argument("--n", type=int, default=10)
    s.add_argument("--workers", type=int, default=2)
    s.add_argument("--temperature", type=float, help="draw at this temperature, not priority")
    s.add_argument("--seed", type=int, default=0, help="with --temperature")
    s.add_argument("-o", "--output", type=Path, required=True)
    s.set_defaults(run=sample_cmd)
    c = sub.add_parser("score")
    c.add_argument("prompts", type=Path)
    c.add_argument("samples", type=Path)
    c.add_argument("--workers", type=int, default=2)
    c.add_argument("-o", "--output", type=Path)
    c.add_argument("--lists", type=Path, help="write the lists and counts here")
    c.set_defaults(run=score_cmd)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    from passlm.cli import report_errors

    report_errors(main)
