"""Can a model's own confidence make a zero-compile list beat -Oz? Rules over its proposals.

``predict`` uses the greedy list as it is. Where a model leaves -Oz mostly for the worse, a
demanding user would ask whether it *knows* when it is right: does it beat -Oz if it only leaves
-Oz where it is sure? Per function, the model's first ``--k`` priority samples (unique lists,
with their log-probabilities) are each compiled once (to score the rules, not by them), and
for each list the model also writes the instruction count it expects after it (the answer's
counts, teacher-forced up to ``from <unoptimized count> to``). Rules, all zero-compile:

* ``greedy``: the first sample (what ``predict`` uses);
* ``most probable``: the sample of highest log-probability (greedy decoding need not find it);
* ``margin``: the most probable list other than -Oz where its log-probability beats -Oz's by
  more than a threshold, else -Oz;
* ``predicted count``: the list the model expects to leave the fewest instructions, where it
  expects more than a threshold fewer than after -Oz, else -Oz.

Thresholds are chosen on ``val`` (the first split) and then applied to every split; the list is
used as it is (a failed compile counts as the unoptimized function), as for ``predict``.

    .venv/bin/python benchmarks/zero_compile.py --model DIR [--splits val,test,heldout]
        [--k 8] [--limit N] [--cache runs/zero_compile.json] [-o reports/zero_compile.json]
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from passlm.data.format import (
    COUNTS_FROM,
    COUNTS_TO,
    PASSES_CLOSE,
    PASSES_OPEN,
    parse_answer,
)
from passlm.evaluate.testset import load_test_set
from passlm.files import atomic_write
from passlm.llvm.denylist import load_denylist
from passlm.llvm.pool import WorkerPool
from passlm.llvm.toolchain import default_toolchain
from passlm.model import default_model_dir, load
from passlm.model.constrained import decoding_session, priority_sample
from passlm.model.generate import prompt_ids
from passlm.optimize.prompts import model_prompts
from passlm.optimize.strategies import constraint_for

console = Console(width=120)
MARGINS = (-1e9, 0.0, 0.5, 1.0, 2.0, 3.0, 4.0, 1e9)  # 1e9: never leave -Oz
COUNT_MARGINS = (0, 1, 2, 3, 5, 1_000_000)


@torch.no_grad()
def predicted_after(model, tok, prompt: list[int], lists: list[str], o0: int) -> list[int | None]:
    """The count the model writes after each list, its answer forced up to ``from O0 to``."""
    session = decoding_session(model)  # the prompt goes through the model once, each list branches
    session.start(prompt, None)
    out: list[int | None] = []
    for passes in lists:
        prefix = f"{PASSES_OPEN}{passes}{PASSES_CLOSE}{COUNTS_FROM}{o0}{COUNTS_TO}"
        logits = session.branch(tok.encode(prefix, add_special_tokens=False).ids, None)
        written: list[int] = []
        for _ in range(4):  # a count is a token or two
            written.append(int(logits.argmax()))
            if not tok.decode(written).strip().isdigit():
                break
            logits = session.step(written[-1], None)
        m = re.match(r"\s*(\d+)", tok.decode(written))
        out.append(int(m.group(1)) if m else None)
    return out


def collect(model, tok, functions, k: int, pool) -> list[dict]:
    """Per function: its -Oz and unoptimized counts and every sample's list, log-probability,
    real count and predicted count."""
    constraint = constraint_for(tok, load_denylist())
    rows = []
    for f in functions:
        prompt = model_prompts(model, [f.ir], pool, tok)[0]  # the one it was trained on
        drawn = priority_sample(model, tok, prompt, k, constraint=constraint) if prompt else []
        samples = [(parse_answer(s.text).passes, s.logprob) for s in drawn]
        samples = [(p, lp) for p, lp in samples if p is not None]
        real = pool.run_grid([f.ir], [p for p, _ in samples])[0] if samples else []
        texts = [str(p) for p, _ in samples]
        ids = prompt_ids(tok, prompt)
        predicted = predicted_after(model, tok, ids, texts, f.o0_count) if samples else []
        rows.append(
            {
                "o0": f.o0_count,
                "oz": f.oz_count,
                "best": min(f.best_count, f.oz_count),
                "samples": [
                    {"passes": t, "logprob": lp, "count": r.count if r.ok else None, "predicted": q}
                    for t, (_, lp), r, q in zip(texts, samples, real, predicted, strict=True)
                ],
            }
        )
    return rows


def _oz(samples: list[dict]) -> dict | None:
    return next((s for s in samples if s["passes"] == "-Oz"), None)


def choose(rule: str, samples: list[dict], threshold: float) -> dict | None:
    """The sample a rule picks (None: -Oz)."""
    if not samples:
        return None
    if rule == "greedy":
        return samples[0]
    if rule == "most probable":
        return max(samples, key=lambda s: s["logprob"])
    others = [s for s in samples if s["passes"] != "-Oz"]
    oz = _oz(samples)
    if not others:
        return None
    if rule == "margin":
        best = max(others, key=lambda s: s["logprob"])
        # -Oz outside the first k samples: less probable than the last of them
        oz_lp = oz["logprob"] if oz else min(s["logprob"] for s in samples)
        return best if best["logprob"] - oz_lp > threshold else None
    scored = [s for s in others if s["predicted"] is not None]
    if oz is None or oz["predicted"] is None or not scored:
        return None
    best = min(scored, key=lambda s: (s["predicted"], -s["logprob"]))
    return best if oz["predicted"] - best["predicted"] > threshold else None


def score(rows: list[dict], rule: str, threshold: float) -> dict[str, float]:
    """Improvement over -Oz of a rule's lists used as they are; improved and regressed."""
    oz = got = improved = regressed = 0
    for r in rows:
        pick = choose(rule, r["samples"], threshold)
        count = r["oz"] if pick is None or pick["passes"] == "-Oz" else pick["count"]
        count = r["o0"] if count is None else count
        oz, got = oz + r["oz"], got + count
        improved += count < r["oz"]
        regressed += count > r["oz"]
    gain = sum(r["oz"] - r["best"] for r in rows)
    return {
        "improvement": (oz - got) / oz,
        "of_autotuner": (oz - got) / gain if gain else 0.0,
        "improved": improved,
        "regressed": regressed,
    }


RULES = {
    "greedy": (0.0,),
    "most probable": (0.0,),
    "margin": MARGINS,
    "predicted count": COUNT_MARGINS,
}


def _label(threshold: float) -> str:
    """A threshold as the table shows it; the sentinels are "never" and "always"."""
    if threshold >= 1e5:
        return "never (-Oz)"
    return "always" if threshold <= -1e5 else f"{threshold:g}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tuned", type=Path, default=Path("data/tuned.parquet"))
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--splits", default="val,test,heldout", help="the first picks thresholds")
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--cache", type=Path, default=None, help="samples and counts, reused")
    parser.add_argument("-o", "--output", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    tc = default_toolchain()
    model_dir = args.model or default_model_dir()
    model, tok = load(model_dir)
    splits = args.splits.split(",")
    key = {"model": str(model_dir), "k": args.k, "limit": args.limit, "tuned": str(args.tuned)}
    cached = json.loads(args.cache.read_text()) if args.cache and args.cache.is_file() else {}
    data: dict[str, list[dict]] = cached.get("data", {}) if cached.get("key") == key else {}
    with WorkerPool(tc, workers=1) as pool:
        for split in (s for s in splits if s not in data):
            fns = load_test_set(
                [args.tuned], splits=[split], toolchain=tc, compiler=pool, limit=args.limit
            ).functions
            start = time.perf_counter()
            data[split] = collect(model, tok, fns, args.k, pool)
            console.print(
                f"{split}: {len(fns)} functions, {args.k} samples each, "
                f"{time.perf_counter() - start:.0f} s"
            )
    if args.cache:
        atomic_write(args.cache, json.dumps({"key": key, "data": data}))
    table = Table(title=f"zero-compile rules on {model_dir} (thresholds chosen on {splits[0]})")
    table.add_column("rule")
    table.add_column("threshold", justify="right")
    for split in splits:
        table.add_column(f"{split}: vs -Oz (improved / regressed)", justify="right")
    report: dict = {"model": str(model_dir), "k": args.k, "rules": {}}
    for rule, thresholds in RULES.items():
        on_first = {t: score(data[splits[0]], rule, t) for t in thresholds}
        # ties go to the most cautious threshold
        chosen = max(reversed(thresholds), key=lambda t: on_first[t]["improvement"])
        results = {split: score(data[split], rule, chosen) for split in splits}
        curve = {_label(t): r for t, r in on_first.items()}
        report["rules"][rule] = {
            "threshold": _label(chosen),
            "splits": results,
            f"{splits[0]}_curve": curve,
        }
        table.add_row(
            rule, "-" if len(thresholds) == 1 else _label(chosen),
            *(
                f"{100 * r['improvement']:+.2f}% ({r['improved']} / {r['regressed']})"
                for r in results.values()
            ),
        )  # fmt: skip
    console.print(table)
    if args.output:
        atomic_write(args.output, json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    from passlm.cli import report_errors

    report_errors(main)
