"""Does a function's IR say which of the popular lists beat -Oz on it? A learned ranker vs the
popular order, with the real counts of every list on every function.

The training split's K most popular best lists (-Oz and deny-listed ones left out, as for the
popular-lists baseline) are compiled on every function of the tuned data set, with -Oz; the
table of counts is cached (``--table``, computed with a worker pool when missing: about 12
minutes on one core for the 20,746 functions at K=30). A small MLP reads the IR features the
retrieval baseline uses (opcode, block, call, argument counts; log-scaled, standardized) and
predicts, for each list, whether it beats -Oz on the function (multi-label, binary
cross-entropy; trained on the training split, early-stopped on a seeded tenth of it; one per
seed, since a few functions hold much of the gain and the result moves with the seed). For each
evaluation split, every function's best count among -Oz and its first k lists, with the lists
in the popular order and in the ranker's order, as a fraction of the autotuner's gain over -Oz
(1.0 = as good as the autotuner). The popular order ignores the function; where the ranker beats
it on code bases it has not seen, the IR carries signal that a model can learn.

    .venv/bin/python benchmarks/list_ranking.py [--tuned data/tuned.parquet] [--k 30]
        [--table runs/popular30.parquet] [-o reports/list_ranking.json]
"""

from __future__ import annotations

import argparse
import io
import json
import time
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import torch
from rich.console import Console
from rich.table import Table

from passlm.data.format import PASSES_CLOSE, PASSES_OPEN
from passlm.evaluate.baselines import PopularLists
from passlm.files import atomic_write
from passlm.llvm.denylist import load_denylist
from passlm.llvm.ir import ir_features
from passlm.llvm.passes import parse_pass_list
from passlm.llvm.pool import WorkerPool
from passlm.llvm.toolchain import default_toolchain
from passlm.search.features import log_counts

console = Console(width=110)
KS = (1, 2, 3, 5, 10, 30)


def count_table(rows: list[dict], lists: list[str], path: Path, workers: int) -> list[list]:
    """Counts of every function under -Oz and each list (None: the compile failed), cached."""
    if path.exists():
        table = pq.read_table(path)
        cached = json.loads(table.schema.metadata[b"lists"])
        by_hash = {r["hash"]: r["counts"] for r in table.to_pylist()}
        if cached == lists and all(r["hash"] in by_hash for r in rows):
            return [by_hash[r["hash"]] for r in rows]
        console.print(f"{path}: made for other lists or functions; computing it again")
    start = time.perf_counter()
    parsed = [parse_pass_list(p) for p in lists]
    counts: list[list] = []
    with WorkerPool(default_toolchain(), workers=workers, timeout=20) as pool:
        for i in range(0, len(rows), 500):
            grid = pool.run_grid([r["ir"] for r in rows[i : i + 500]], parsed)
            counts += [[x.count for x in results] for results in grid]
            console.print(
                f"  {len(counts)}/{len(rows)} functions, {time.perf_counter() - start:.0f} s"
            )
    table = pa.Table.from_pylist(
        [{"hash": r["hash"], "counts": c} for r, c in zip(rows, counts, strict=True)]
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    pq.write_table(table.replace_schema_metadata({"lists": json.dumps(lists)}), buffer)
    atomic_write(path, buffer.getvalue())
    return counts


def features(feats: list[Counter[str]], keys: list[str]) -> torch.Tensor:
    """Log-scaled feature matrix of ``ir_features`` counters, columns ``keys``."""
    return torch.from_numpy(log_counts(feats, keys))


def train_ranker(x: torch.Tensor, y: torch.Tensor, seed: int) -> torch.nn.Module:
    """MLP: features -> one logit per list (beats -Oz); early-stopped on a tenth of the rows."""
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(x), generator=gen)
    cut = len(x) // 10
    held, fit = perm[:cut], perm[cut:]
    torch.manual_seed(seed)
    net = torch.nn.Sequential(
        torch.nn.Linear(x.shape[1], 128), torch.nn.ReLU(), torch.nn.Linear(128, y.shape[1])
    )
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-2)
    loss_fn = torch.nn.functional.binary_cross_entropy_with_logits
    best, best_state, bad = float("inf"), None, 0
    for _epoch in range(300):
        order = fit[torch.randperm(len(fit), generator=gen)]
        for b in range(0, len(order), 512):
            idx = order[b : b + 512]
            loss = loss_fn(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            held_loss = loss_fn(net(x[held]), y[held]).item()
        if held_loss < best - 1e-5:
            best, bad = held_loss, 0
            best_state = {k: v.clone() for k, v in net.state_dict().items()}
        else:
            bad += 1
            if bad >= 10:
                break
    net.load_state_dict(best_state)
    return net.eval()


def model_orders(model, tok, constraint, rows: list[dict], lists: list[str]) -> list[list[int]]:
    """Per function, the indices of ``lists`` (-Oz, index 0, left out) by decreasing
    log-probability under the model; a prompt too long for the model keeps the popular order."""
    from passlm.model.constrained import answer_logprobs
    from passlm.optimize.prompts import model_prompts

    answers = [f"{PASSES_OPEN}{p}{PASSES_CLOSE}" for p in lists[1:]]
    natural = list(range(1, len(lists)))
    orders, start = [], time.perf_counter()
    for n, r in enumerate(rows, 1):
        (prompt,) = model_prompts(model, [r["ir"]], tokenizer=tok)  # the one it was trained on
        lp = answer_logprobs(model, tok, prompt, answers, constraint=constraint) if prompt else None
        # sorted() is stable: equal log-probabilities keep the popular order
        orders.append(natural if lp is None else sorted(natural, key=lambda j: -lp[j - 1]))
        if n % 500 == 0 or n == len(rows):
            console.print(
                f"  model: {n}/{len(rows)} functions, {time.perf_counter() - start:.0f} s"
            )
    return orders


def fraction_of_gain(rows, counts, orders, ks=KS) -> dict[int, float]:
    """Per k: the autotuner's gain over -Oz recovered by the best of -Oz and the first k lists."""
    oz = sum(c[0] for c in counts)
    best = sum(min(r["best_count"], c[0]) for r, c in zip(rows, counts, strict=True))
    out = {}
    for k in ks:
        got = sum(
            min([c[0], *(c[j] for j in order[:k] if c[j] is not None)])
            for c, order in zip(counts, orders, strict=True)
        )
        out[k] = (oz - got) / (oz - best) if oz > best else 0.0
    return out


TAUS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98)


def zero_compile(rows, counts, probs: torch.Tensor, tau: float) -> dict[str, float]:
    """The ranker as a zero-compile predictor: its top list where it gives that list a
    probability of beating -Oz above ``tau``, else -Oz; the list is used as it is (a failed
    compile counts as the unoptimized function). Improvement over -Oz, improved, regressed."""
    oz = got = improved = regressed = 0
    for r, c, p in zip(rows, counts, probs, strict=True):
        j = int(p.argmax())
        chosen = c[0]
        if p[j] > tau:
            chosen = c[j + 1] if c[j + 1] is not None else r["o0_count"]
        oz, got = oz + c[0], got + chosen
        improved += chosen < c[0]
        regressed += chosen > c[0]
    return {"improvement": (oz - got) / oz, "improved": improved, "regressed": regressed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tuned", type=Path, default=Path("data/tuned.parquet"))
    parser.add_argument("--k", type=int, default=30, help="popular lists in the table")
    parser.add_argument("--table", type=Path, default=Path("runs/popular30.parquet"))
    parser.add_argument("--splits", default="val,test,heldout")
    parser.add_argument("--seeds", default="0,1,2,3,4", help="one ranker per seed")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--model", type=Path, default=None, help="also rank by this model")
    parser.add_argument("-o", "--output", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = pq.read_table(args.tuned).to_pylist()
    deny = load_denylist()
    popular = PopularLists([r["best_passes"] for r in rows if r["split"] == "train"], deny.allows)
    lists = ["-Oz", *(str(p) for p in popular.propose(args.k))]
    counts = count_table(rows, lists, args.table, args.workers)
    usable = [i for i, c in enumerate(counts) if c[0] is not None]
    by_split: dict[str, list[int]] = {}
    for i in usable:
        by_split.setdefault(rows[i]["split"], []).append(i)
    train = by_split["train"]
    train_feats = [ir_features(rows[i]["ir"]) for i in train]
    keys = sorted({k for f in train_feats for k in f})
    x_train = features(train_feats, keys)
    mean, std = x_train.mean(0), x_train.std(0) + 1e-3
    y_train = torch.tensor(
        [[float(c is not None and c < counts[i][0]) for c in counts[i][1:]] for i in train]
    )
    seeds = [int(x) for x in args.seeds.split(",")]
    nets = [train_ranker((x_train - mean) / std, y_train, seed) for seed in seeds]
    console.print(
        f"{len(lists) - 1} popular lists compiled on {len(usable)} functions; a ranker per seed "
        f"({', '.join(map(str, seeds))}) trained on {len(train)} training functions "
        f"({len(keys)} features; a list beats -Oz on {100 * y_train.mean():.1f}% of (function, "
        "list) pairs)"
    )
    table = Table(title="fraction of the autotuner's gain over -Oz: -Oz and the first k lists")
    table.add_column("split (functions, autotuner vs -Oz)")
    table.add_column("order")
    for k in KS:
        table.add_column(f"k={k}", justify="right")
    report: dict = {"lists": lists, "seeds": seeds, "splits": {}}
    scorer = None  # the model, its tokenizer and sample-N's constraint: loaded once
    if args.model is not None:
        from passlm.model.checkpoint import load
        from passlm.optimize.strategies import constraint_for

        model, tok = load(args.model)
        scorer = (model, tok, constraint_for(tok, deny))
        report["model"] = str(args.model)
    probs_of: dict[str, list[torch.Tensor]] = {}  # per split, one per seed
    for split in args.splits.split(","):
        idx = by_split.get(split, [])
        if not idx:
            continue
        sub_rows, sub_counts = [rows[i] for i in idx], [counts[i] for i in idx]
        x = (features([ir_features(r["ir"]) for r in sub_rows], keys) - mean) / std
        natural = [list(range(1, len(lists)))] * len(idx)
        popular_frac = fraction_of_gain(sub_rows, sub_counts, natural)
        ranker_fracs = []
        probs_of[split] = []
        for net in nets:
            with torch.no_grad():
                logits = net(x)
            probs_of[split].append(torch.sigmoid(logits))
            ranked = [[int(j) + 1 for j in torch.argsort(row, descending=True)] for row in logits]
            ranker_fracs.append(fraction_of_gain(sub_rows, sub_counts, ranked))
        oz = sum(c[0] for c in sub_counts)
        best = sum(min(r["best_count"], c[0]) for r, c in zip(sub_rows, sub_counts, strict=True))
        table.add_row(
            f"{split} ({len(idx)}, {100 * (oz - best) / oz:+.2f}%)", "popular",
            *(f"{100 * popular_frac[k]:.1f}%" for k in KS),
        )  # fmt: skip
        table.add_row(
            "", f"ranker, mean of {len(nets)}",
            *(f"{100 * sum(f[k] for f in ranker_fracs) / len(nets):.1f}%" for k in KS),
        )  # fmt: skip
        table.add_row(
            "", "ranker, range",
            *(
                f"{100 * min(f[k] for f in ranker_fracs):.0f}–"
                f"{100 * max(f[k] for f in ranker_fracs):.0f}%"
                for k in KS
            ),
        )  # fmt: skip
        if scorer is not None:
            model_frac = fraction_of_gain(
                sub_rows, sub_counts, model_orders(*scorer, sub_rows, lists)
            )
            table.add_row(
                "", "model log-probability", *(f"{100 * model_frac[k]:.1f}%" for k in KS)
            )  # fmt: skip
        report["splits"][split] = {
            "functions": len(idx),
            "autotuner": (oz - best) / oz,
            "popular": popular_frac,
            "ranker": ranker_fracs,
        }
        if scorer is not None:
            report["splits"][split]["model"] = model_frac
    console.print(table)
    if "val" in probs_of:
        report["zero_compile"] = zero_compile_rows(rows, counts, by_split, probs_of, len(nets))
    if args.output:
        atomic_write(args.output, json.dumps(report, indent=2) + "\n")


def zero_compile_rows(rows, counts, by_split, probs_of, seeds: int) -> dict:
    """Per seed, the threshold that does best on val, then every split at that threshold."""
    table = Table(title="the ranker with zero compiles: its top list where confident, else -Oz")
    table.add_column("split")
    table.add_column("vs -Oz, mean of seeds", justify="right")
    table.add_column("range", justify="right")
    table.add_column("improved / regressed (mean)", justify="right")
    out: dict = {"taus": [], "splits": {}}
    results: dict[str, list[dict]] = {s: [] for s in probs_of}
    for seed in range(seeds):

        def at(split: str, tau: float, seed: int = seed) -> dict[str, float]:
            idx = by_split[split]
            return zero_compile(
                [rows[i] for i in idx], [counts[i] for i in idx], probs_of[split][seed], tau
            )

        tau = max(TAUS, key=lambda t: at("val", t)["improvement"])
        out["taus"].append(tau)
        for split in probs_of:
            results[split].append(at(split, tau))
    for split, rs in results.items():
        imp = [r["improvement"] for r in rs]
        table.add_row(
            split, f"{100 * sum(imp) / len(imp):+.3f}%",
            f"{100 * min(imp):+.2f} to {100 * max(imp):+.2f}%",
            f"{sum(r['improved'] for r in rs) / len(rs):.1f} / "
            f"{sum(r['regressed'] for r in rs) / len(rs):.1f}",
        )  # fmt: skip
        out["splits"][split] = rs
    console.print(table)
    console.print(f"thresholds chosen on val, per seed: {out['taus']}")
    return out


if __name__ == "__main__":
    from passlm.cli import report_errors

    report_errors(main)
