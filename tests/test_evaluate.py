"""Metrics by hand, generation, and a tiny real model evaluated with the real compiler."""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections import Counter
from pathlib import Path

import pytest
import torch

from passlm.data import format as fmt
from passlm.data.dataset import Example, write_dataset
from passlm.evaluate import metrics
from passlm.evaluate.curves import plot_training
from passlm.evaluate.model_eval import evaluate_model, from_examples, summarize
from passlm.evaluate.report import read_report
from passlm.llvm.backend import InProcessCompiler, Task
from passlm.llvm.passes import parse_pass_list
from passlm.model import config as mc
from passlm.model import tokenizer as tk
from passlm.model.generate import ANSWER, HEADER, PASSES, generate
from passlm.model.train import LOG_FILE, TrainConfig, train
from passlm.search.tuned import TunedFunction, write_tuned

from .conftest import FIXTURES, run_passlm

# Small real functions and a pass list each; the first two answers carry the optimized IR.
FUNCTIONS = ("fib_lookup", "clamp", "hash_string", "sum_array")
PASS_LISTS = ("-mem2reg -instcombine", "-Oz", "-sroa -simplifycfg", "-mem2reg")
WITH_IR = 2


pytestmark = pytest.mark.usefixtures("one_thread")


def test_improvement_by_hand():
    imp = metrics.improvement([10, 20, 30, 40], [8, 20, 33, 39])
    assert (imp.functions, imp.improved, imp.regressed) == (4, 2, 1)
    assert (imp.saved, imp.lost) == (3, 3)
    assert (imp.oz_total, imp.total) == (100, 100)
    assert imp.overall == 0.0
    assert metrics.improvement([10, 10], [9, 8]).overall == pytest.approx(0.15)
    assert metrics.fraction_of(0.01, 0.04) == pytest.approx(0.25)
    assert metrics.fraction_of(0.01, 0.0) is None
    with pytest.raises(ValueError):
        metrics.improvement([1], [1, 2])


def test_mape_bleu_percent_by_hand():
    value, n = metrics.mape([11, None, 5, 4], [10, 7, 10, 0])
    assert n == 2 and value == pytest.approx((10 + 50) / 2)
    assert metrics.mape([None], [3]) == (None, 0)
    assert metrics.bleu("%1 = add i32 %0, 1", "%1 = add i32 %0, 1") == pytest.approx(1.0)
    assert metrics.bleu("ret void", "%1 = add i32 %0, 1\nret i32 %1") < 0.5
    assert metrics.percent(1, 4) == 25.0 and metrics.percent(1, 0) is None


@pytest.fixture(scope="module")
def tuned(sample_functions, toolchain):
    """Four real functions with real counts and optimized IR for their pass lists."""
    irs = [sample_functions[name] for name in FUNCTIONS]
    rows = []
    with InProcessCompiler(toolchain) as c:
        for i, (ir, passes) in enumerate(zip(irs, PASS_LISTS, strict=True)):
            o0, oz = c.count(ir), c.run(ir, "-Oz").count
            r = c.run(ir, passes)
            rows.append((f"h{i}", ir, passes, o0, oz, r.count, r.ir))
    return rows


@pytest.fixture(scope="module")
def examples(tuned):
    return [
        Example(
            h,
            "train",
            "sample.c",
            f"f{i}",
            fmt.render_prompt(ir),
            fmt.render_answer(parse_pass_list(p), o0, best, opt if i < WITH_IR else None),
            o0,
            oz,
            best,
            p,
            0,
        )
        for i, (h, ir, p, o0, oz, best, opt) in enumerate(tuned)
    ]


@pytest.fixture(scope="module")
def tokenizer(examples):
    return tk.train_tokenizer([e.prompt + e.answer for e in examples] * 3, vocab_size=640)


@pytest.fixture(scope="module")
def memorized(tmp_path_factory, examples, tokenizer):
    """A tiny model trained until it reproduces the four answers."""
    out = tmp_path_factory.mktemp("run")
    config = TrainConfig(
        steps=200,
        batch_size=4,
        block_size=256,
        lr=3e-3,
        warmup_steps=5,
        checkpoint_every=200,
        device="cpu",
    )
    pairs = [(e.prompt, e.answer) for e in examples]
    result = train(pairs, tokenizer, mc.load_preset("cpu-tiny"), config, out)
    from passlm.model.checkpoint import load

    model, tok = load(result.model_dir)
    return model, tok, result.model_dir


@pytest.mark.slow
def test_generate_batched_equals_single_and_stops(memorized, examples):
    model, tok, _ = memorized
    prompts = [e.prompt for e in examples]
    batched = generate(model, tok, prompts, until=ANSWER, batch_size=4)
    single = [generate(model, tok, [p], until=ANSWER)[0] for p in prompts]
    assert batched == single
    assert [g.text for g in batched[:WITH_IR]] == [e.answer for e in examples[:WITH_IR]]
    assert all(g.finished for g in batched[:WITH_IR])
    # A whole answer is asked for in its full form: where the model learned the pass-list-only
    # ending, its first line is kept with ":" for "." and the model goes on from there.
    for g, e in zip(batched[WITH_IR:], examples[WITH_IR:], strict=True):
        assert e.answer.endswith(".") and g.text.startswith(e.answer[:-1] + ":\n")
        assert fmt.parse_answer(g.text).passes == fmt.parse_answer(e.answer).passes
    heads = generate(model, tok, prompts, until=HEADER)
    assert [h.text for h in heads] == [e.answer.split("\n")[0] for e in examples]
    passes = generate(model, tok, prompts, until=PASSES)
    assert [p.text for p in passes] == [
        e.answer.split("`")[0] + "`" + e.answer.split("`")[1] + "`" for e in examples
    ]
    assert passes[0].tokens < heads[0].tokens < batched[0].tokens
    too_long = fmt.render_prompt("; x\n" * 4000)
    assert generate(model, tok, [too_long, prompts[0]], until=PASSES)[0] is None


@pytest.mark.slow
def test_evaluate_model_on_memorized_answers(memorized, examples, toolchain):
    model, tok, _ = memorized
    functions = from_examples(examples)
    with InProcessCompiler(toolchain) as compiler:
        outcomes = evaluate_model(model, tok, functions, compiler, ir_functions=WITH_IR)
    assert [o.passes for o in outcomes] == [str(parse_pass_list(p)) for p in PASS_LISTS]
    assert [o.count for o in outcomes] == [e.best_count for e in examples]
    assert [o.predicted_after for o in outcomes] == [e.best_count for e in examples]
    assert [o.ir_parses for o in outcomes] == [True, True, None, None]
    assert [o.ir_exact for o in outcomes] == [True, True, None, None]
    summary = summarize(outcomes)
    assert summary["valid_pass_lists_pct"] == 100.0
    assert summary["count_mape_before"] == 0.0 and summary["count_mape_after"] == 0.0
    assert summary["ir_parses_pct"] == 100.0 and summary["ir_exact_pct"] == 100.0
    assert summary["ir_bleu"] == pytest.approx(1.0)
    oz = [e.oz_count for e in examples]
    assert summary["model"] == metrics.improvement(oz, [e.best_count for e in examples]).to_dict()


@pytest.mark.slow
def test_failed_proposals_count_as_unoptimized(memorized, examples, toolchain):
    """A function whose IR the model never saw gets some answer; a bad one is never flattering."""
    model, tok, _ = memorized
    f = from_examples(examples)[0]
    with InProcessCompiler(toolchain) as compiler:
        outcome = evaluate_model(model, tok, [f], compiler)[0]
        if outcome.passes is None or outcome.compile_error:
            assert outcome.count == f.o0_count
        too_long = dataclasses.replace(f, ir="; x\n" * 4000)
        far = evaluate_model(model, tok, [too_long], compiler)[0]
    assert not far.fits and far.count == f.oz_count


def _one_val(examples: list[Example]) -> list[Example]:
    """The four examples with the third in val, so that training has a function to validate."""
    return [
        dataclasses.replace(e, split=s)
        for e, s in zip(examples, ("train", "train", "val", "train"), strict=True)
    ]


@pytest.mark.slow
def test_train_command_end_to_end(tmp_path, examples):
    rows = _one_val(examples)
    data = tmp_path / "data.parquet"
    write_dataset(data, rows, {"llvm_version": "19"})
    out = tmp_path / "run"
    args = [
        "train",
        str(data),
        "-o",
        str(out),
        "--preset",
        "cpu-tiny",
        "--steps",
        "4",
        "--batch-size",
        "2",
        "--block-size",
        "64",
        "--warmup",
        "1",
        "--eval-every",
        "2",
        "--checkpoint-every",
        "2",
        "--device",
        "cpu",
    ]
    proc = run_passlm(*args)
    assert proc.returncode == 0, proc.stderr
    assert "step 2: vs -Oz" in proc.stderr and "step 4: vs -Oz" in proc.stderr
    assert (out / "model" / "model.safetensors").is_file() and (out / "training.png").is_file()
    evals = [json.loads(x) for x in (out / LOG_FILE).read_text().splitlines() if '"eval"' in x]
    assert [e["step"] for e in evals] == [2, 4]
    assert evals[0]["eval"]["functions"] == 1
    again = run_passlm(*args)  # finished run: resumes at the end and only re-saves
    assert again.returncode == 0, again.stderr
    bad = run_passlm("train", str(data), "-o", str(out), "--preset", "nope")
    assert bad.returncode == 2 and "unknown model preset" in bad.stderr
    missing = tmp_path / "missing.parquet"
    bad = run_passlm("train", str(data), "-o", str(tmp_path / "other"), "--ir-only", str(missing))
    assert bad.returncode == 2 and "missing.parquet" in bad.stderr
    assert not (tmp_path / "other").exists()  # refused before anything is written


@pytest.mark.slow
def test_training_without_validation_needs_no_llvm(tmp_path, examples):
    """A GPU machine may have no LLVM: with --eval-functions 0, train never looks for it."""
    rows = _one_val(examples)
    data = tmp_path / "data.parquet"
    write_dataset(data, rows, {"llvm_version": "19.1.7"})
    no_llvm = {"PASSLM_LLVM_BIN": str(tmp_path / "no-llvm"), "PASSLM_LIBLLVM": ""}
    args = ["train", str(data), "--preset", "cpu-tiny", "--steps", "2", "--batch-size", "2",
            "--block-size", "64", "--warmup", "1", "--device", "cpu"]  # fmt: skip
    validating = run_passlm(*args, "-o", str(tmp_path / "a"), env=no_llvm)
    assert validating.returncode == 2 and "not found" in validating.stderr  # LLVM is hidden
    assert not (tmp_path / "a").exists()  # looked for before anything is written
    run = tmp_path / "b"
    proc = run_passlm(*args, "-o", str(run), "--eval-functions", "0", env=no_llvm)
    assert proc.returncode == 0, proc.stderr
    meta = json.loads((run / "model" / "passlm.json").read_text())
    assert meta["llvm_version"] == "19.1.7"  # the data set's, as with validation


def test_training_curve_plot(tmp_path):
    log = tmp_path / LOG_FILE
    ev = {
        "model": {"overall": 0.01},
        "autotuner": {"overall": 0.03},
        "count_mape_before": 5.0,
        "count_mape_after": None,
        "ir_parses_pct": 50.0,
        "ir_exact_pct": 10.0,
        "ir_bleu": 0.5,
    }
    lines = [{"step": s, "loss": 3.0 / s} for s in range(1, 5)] + [{"step": 4, "eval": ev}]
    log.write_text("".join(json.dumps(x) + "\n" for x in lines))
    png = plot_training(log, tmp_path / "curve.png")
    assert png.read_bytes()[:4] == b"\x89PNG"
    width = int.from_bytes(png.read_bytes()[16:20], "big")  # the IHDR chunk
    # without validation records only the loss is drawn, not three empty panels
    log.write_text("".join(json.dumps(x) + "\n" for x in lines[:-1]))
    alone = plot_training(log, tmp_path / "loss.png")
    assert int.from_bytes(alone.read_bytes()[16:20], "big") < width / 2


@pytest.mark.slow
def test_optimize_uses_the_model_and_never_loses_to_oz(memorized, toolchain, tmp_path):
    model, tok, model_dir = memorized
    from passlm.llvm.ir import compile_source, split_functions
    from passlm.optimize.pipeline import optimize_ir
    from passlm.optimize.strategies import parse_strategy, propose

    ir = compile_source(FIXTURES / "sample.c", toolchain)
    modules = split_functions(ir, toolchain)
    proposals = [
        c[0] for c in propose(model, tok, list(modules.values()), parse_strategy("predict"))
    ]
    assert len(proposals) == len(modules)  # a list for every function (four were taught)
    with InProcessCompiler(toolchain) as compiler:
        report = optimize_ir(ir, toolchain, compiler, proposals, modules=modules)
    assert all(f.count <= f.oz_count for f in report.functions)
    # a proposal is one extra compile, unless it is -Oz itself (already compiled)
    spent = [int(str(p) != "-Oz") for p in proposals]
    assert [f.compiles for f in report.functions] == spent
    res = run_passlm("optimize", str(FIXTURES / "sample.c"), "--model", str(model_dir), "-j", "1")
    assert res.returncode == 0, res.stderr
    assert "sample-10" in res.stderr  # the default strategy
    bad = run_passlm("optimize", str(FIXTURES / "sample.c"), "--model", str(tmp_path))
    assert bad.returncode == 2 and "not a model directory" in bad.stderr


@pytest.mark.slow
def test_eval_command_report_by_hand(memorized, examples, tmp_path, toolchain):
    """Every row of the report checked against counts compiled here, and the HTML rendered."""
    from passlm.evaluate.baselines import PopularLists, Retrieval

    _, _, model_dir = memorized
    test_file, train_file = tmp_path / "test.parquet", tmp_path / "train.parquet"
    write_dataset(test_file, [dataclasses.replace(e, split="test") for e in examples], {})
    write_dataset(train_file, examples[:2], {})  # the model "saw" the first two
    out = tmp_path / "report"
    res = run_passlm(
        "eval", "--model", str(model_dir), "--test", str(test_file), "--train", str(train_file),
        "--strategies", "predict,oz-backup,sample-2,guided-2", "--retrieval-k", "1",
        "--ir-functions", "2", "-o", str(out),
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "functions" not in json.loads((out / "report.json").read_text())
    report = read_report(out)  # with the per-function records of functions.json.gz
    ts = report["test_set"]
    assert ts["functions"] == 2 and ts["seen_in_training"] == 2
    assert ts["training_set"] == str(train_file)
    rows = {r["method"]: r for r in report["rows"]}
    assert list(rows) == [
        "-Oz", "retrieval (k=1)", "random search (retrieval (k=1) budget)", "predict", "oz-backup",
        "random search (oz-backup budget)", "popular lists (oz-backup budget)", "sample-2",
        "random search (sample-2 budget)", "popular lists (sample-2 budget)",
        "guided-2 (no model)", "random search (guided-2 (no model) budget)",
        "popular lists (guided-2 (no model) budget)", "autotuner",
    ]  # fmt: skip
    kept = examples[2:]
    oz = [e.oz_count for e in kept]
    best = [e.best_count for e in kept]
    assert rows["-Oz"]["total"] == sum(oz) and rows["-Oz"]["extra_compiles"] == 0
    assert rows["-Oz"]["improved"] == rows["-Oz"]["regressed"] == 0
    # the memorized model's greedy list is the taught one: as is, it may lose to -Oz
    assert rows["predict"]["total"] == sum(best) and rows["predict"]["extra_compiles"] == 0
    assert rows["predict"] == {**rows["predict"], **metrics.improvement(oz, best).to_dict()}
    assert rows["oz-backup"]["total"] == sum(min(o, b) for o, b in zip(oz, best, strict=True))
    assert rows["oz-backup"]["extra_compiles"] == sum(e.best_passes != "-Oz" for e in kept)
    assert rows["autotuner"]["total"] == sum(best) and rows["autotuner"]["extra_compiles"] is None
    assert rows["autotuner"]["fraction_of_autotuner"] == (1.0 if sum(best) < sum(oz) else None)
    # retrieval: the nearest training function's best list, compiled here, -Oz kept if better
    retrieval = Retrieval([fmt.parse_prompt(e.prompt) for e in examples[:2]],
                          [e.best_passes for e in examples[:2]])  # fmt: skip
    with InProcessCompiler(toolchain) as c:
        want = []
        for e in kept:
            ir = fmt.parse_prompt(e.prompt)
            (passes,) = retrieval.propose(ir, 1)
            want.append(min(e.oz_count, c.run(ir, passes).count))
    assert rows["retrieval (k=1)"]["total"] == sum(want)
    # popular lists: the training functions' winning lists, -Oz kept if better; as many
    # compiles as sample-2 spent, function by function, where there are that many lists
    popular = PopularLists([e.best_passes for e in examples[:2]])
    assert len(popular) >= 1
    with InProcessCompiler(toolchain) as c:
        for e, fn in zip(kept, report["functions"], strict=True):
            ir = fmt.parse_prompt(e.prompt)
            best_of = [min([e.oz_count] + [c.run(ir, p).count for p in popular.propose(n)])
                       for n in range(len(popular) + 1)]  # fmt: skip
            assert fn["popular lists (sample-2 budget)"]["count"] in best_of
    # guided-2: the shipped outcome table's two picks for each function, compiled here
    from passlm.optimize.strategies import guided_search

    with InProcessCompiler(toolchain) as c:
        irs = [fmt.parse_prompt(e.prompt) for e in kept]
        picks = guided_search().run(irs, 2, c)
        want = [min([e.oz_count] + [c.run(ir, p).count for p in lists])
                for e, ir, lists in zip(kept, irs, picks, strict=True)]  # fmt: skip
    assert all(len(lists) == 2 for lists in picks)
    assert rows["guided-2 (no model)"]["total"] == sum(want)
    assert rows["guided-2 (no model)"]["extra_compiles"] == 2 * len(kept)
    # compiled while guided-2 picked them: not again when the rows are compared
    assert report["costs"]["from_memory"] >= 2 * len(kept)
    assert (
        f"({report['costs']['from_memory']} of them answered from memory)"
        in (out / "report.md").read_text()
    )
    pop = rows["popular lists (sample-2 budget)"]
    assert pop["extra_compiles"] <= rows["sample-2"]["extra_compiles"] and pop["regressed"] == 0
    spent = rows["retrieval (k=1)"]["extra_compiles"]
    assert rows["random search (retrieval (k=1) budget)"]["extra_compiles"] <= spent
    for r in rows.values():  # every best-of method is never worse than -Oz
        if r["method"] not in ("predict", "autotuner"):  # (here the "autotuner" was taught)
            assert r["regressed"] == 0 and r["total"] <= sum(oz), r
    q = report["quality"]
    assert q["ir_functions"] == 2 and q["valid_pass_lists_pct"] == 100.0
    assert sum(q["taxonomy"].values()) == q["failed"]
    assert (
        set(report["by_source"]) == {"sample.c"}
        and report["by_source"]["sample.c"]["functions"] == 2
    )
    assert sum(g["functions"] for g in report["by_size"].values()) == 2
    lengths = Counter(str(len(parse_pass_list(e.best_passes).passes)) for e in kept)
    assert report["passes"]["autotuner"]["lengths"] == dict(lengths)
    assert report["passes"]["autotuner"]["frequency"] == dict(
        Counter(p for e in kept for p in parse_pass_list(e.best_passes).passes)
    )
    for name in ("report.md", "report.html", "overall.png", "by_source.png", "by_size.png",
                 "pass_frequency.png", "list_length.png"):  # fmt: skip
        assert (out / name).stat().st_size > 0, name
    md = (out / "report.md").read_text()
    assert "| predict | 0 (0.0/fn) |" in md and "![" in md

    page = render_in_chromium(out / "report.html", tmp_path)
    assert page["tables"][0] == 1 + len(rows)  # header + one row per method, -Oz included
    assert len(page["images"]) == 5 and all(w > 300 for w in page["images"]), page

    # each share has its bootstrap interval; `passlm report` draws the stored report again
    assert all("fraction_interval" in r for r in rows.values())
    assert rows["autotuner"]["fraction_interval"] in ([1.0, 1.0], None)
    for c in report["comparisons"]:  # each method against its matched baselines
        mine = [f[c["method"]]["count"] for f in report["functions"]]
        theirs = [f[c["baseline"]]["count"] for f in report["functions"]]
        assert c["baseline"].endswith(f"({c['method']} budget)")
        assert c["ahead"] == sum(a < b for a, b in zip(mine, theirs, strict=True))
        assert c["behind"] == sum(a > b for a, b in zip(mine, theirs, strict=True))
    before = (out / "report.json").read_text(), (out / "functions.json.gz").read_bytes()
    (out / "report.md").unlink()
    redrawn = run_passlm("report", str(out))
    assert redrawn.returncode == 0, redrawn.stderr
    assert ((out / "report.json").read_text(), (out / "functions.json.gz").read_bytes()) == before
    assert (out / "report.md").read_text() == md
    nothing = run_passlm("report", str(tmp_path))
    assert nothing.returncode == 2 and "no report.json" in nothing.stderr
    (tmp_path / "report.json").write_text('{"rows": []}')
    broken = run_passlm("report", str(tmp_path))
    assert broken.returncode == 2 and "not a passlm eval report" in broken.stderr
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "report.json").write_text(before[0])
    (damaged / "functions.json.gz").write_bytes(b"not gzip")
    broken = run_passlm("report", str(damaged))
    assert broken.returncode == 2 and "functions.json.gz" in broken.stderr

    bad = run_passlm("eval", "--model", str(model_dir), "--test", str(tmp_path / "nope.parquet"))
    assert bad.returncode == 2 and "nope.parquet: no such file" in bad.stderr
    bad = run_passlm(
        "eval", "--model", str(model_dir), "--test", str(test_file), "--strategies", "x"
    )
    assert bad.returncode == 2 and "unknown strategy 'x'" in bad.stderr
    empty = run_passlm("eval", "--model", str(model_dir), "--test", str(test_file), "--split", "val",
                   "-o", str(tmp_path / "none"))  # fmt: skip
    assert empty.returncode == 2 and "no test functions" in empty.stderr
    assert not (tmp_path / "none").exists()


@pytest.mark.slow
def test_eval_on_a_directory_of_c_files(memorized, tmp_path):
    """C sources are compiled, split and autotuned on the fly for the reference."""
    import shutil

    _, _, model_dir = memorized
    src = tmp_path / "code"
    src.mkdir()
    shutil.copy(FIXTURES / "sample.c", src / "sample.c")
    (src / "broken.c").write_text("int f( {\n")
    out = tmp_path / "report"
    res = run_passlm(
        "eval", "--model", str(model_dir), "--test", str(src), "--train", "none",
        "--strategies", "predict", "--trials", "8", "--ir-functions", "0", "-o", str(out),
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "skipping" in res.stderr and "broken.c" in res.stderr
    report = read_report(out)
    assert report["test_set"]["functions"] == 8
    assert report["test_set"]["sources"][0]["reference"] == "autotuned now, 8 trials per function"
    assert any("retrieval baseline left out" in n for n in report["notes"])
    rows = {r["method"]: r for r in report["rows"]}
    assert set(rows) == {"-Oz", "predict", "autotuner"}
    assert rows["autotuner"]["regressed"] == 0  # -Oz is always among the autotuner's trials
    for f in report["functions"]:
        assert f["autotuner"]["count"] <= f["oz_count"] <= f["o0_count"]
        assert set(f) >= {"hash", "function", "source", "predict", "autotuner"}


def render_in_chromium(page: Path, tmp_path: Path) -> dict:
    """Open an HTML page in headless Chromium; the sizes of its images and tables as drawn."""
    import re
    import shutil
    import subprocess

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "chromium is not installed (scripts/setup.sh installs it)"
    probe = tmp_path / "probe.html"
    probe.write_text(
        page.read_text()
        + """<script>
window.addEventListener("load", () => {
  const images = [...document.images].map(i => i.complete ? i.naturalWidth : 0);
  const tables = [...document.querySelectorAll("table")].map(t => t.rows.length);
  const out = document.createElement("pre");
  out.id = "probe";
  out.textContent = JSON.stringify({images, tables});
  document.body.appendChild(out);
});
</script>"""
    )
    res = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000",
         "--dump-dom", probe.as_uri()],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    m = re.search(r'<pre id="probe">([^<]*)</pre>', res.stdout)
    assert m, f"chromium did not render the page: {res.stderr[-2000:]}"
    return json.loads(m.group(1))


@pytest.mark.slow
def test_export_to_bf16_halves_the_size_and_keeps_the_answers(memorized, examples, tmp_path):
    model, tok, model_dir = memorized
    out = tmp_path / "bf16"
    res = run_passlm("model", "export", str(model_dir), "-o", str(out))
    assert res.returncode == 0, res.stderr
    size = (out / "model.safetensors").stat().st_size
    assert size < 0.6 * (model_dir / "model.safetensors").stat().st_size
    from passlm.model.checkpoint import load, read_meta

    small, small_tok = load(out)
    assert small.dtype == torch.float32 and read_meta(out)["dtype"] == "bfloat16"
    prompts = [e.prompt for e in examples]
    before = generate(model, tok, prompts, until=HEADER)
    after = generate(small, small_tok, prompts, until=HEADER)
    assert [g.text for g in after] == [g.text for g in before]
    bad = run_passlm(
        "model", "export", str(model_dir), "-o", str(tmp_path / "x"), "--dtype", "int3"
    )
    assert bad.returncode == 2 and "dtype must be" in bad.stderr


# --------------------------------------------------------------------------- strategies


@pytest.mark.slow
def test_strategies_on_the_memorized_model(memorized, examples, toolchain, sample_functions):
    from passlm.optimize.pipeline import optimize_ir
    from passlm.optimize.strategies import parse_strategy, propose

    model, tok, _ = memorized
    irs = [sample_functions[name] for name in FUNCTIONS]
    taught = [parse_pass_list(p) for p in PASS_LISTS]
    predict = propose(model, tok, irs, parse_strategy("predict"))
    assert predict == [[p] for p in taught]
    with InProcessCompiler(toolchain) as c:
        oz = [c.run(m, "-Oz").count for m in irs]
        taught_counts = [c.run(m, p).count for m, p in zip(irs, taught, strict=True)]
    assert any(t > o for t, o in zip(taught_counts, oz, strict=True))  # predict may lose to -Oz

    first = propose(model, tok, irs, parse_strategy("sample-3"))
    again = propose(model, tok, irs, parse_strategy("sample-3"))
    assert first == again  # priority sampling: deterministic without a seed
    for lists, greedy in zip(first, taught, strict=True):
        assert 1 <= len(lists) <= 3 and len(set(map(str, lists))) == len(lists)
        assert "-Oz" not in map(str, lists)  # compiled anyway: it takes none of the 3 places
        if str(greedy) != "-Oz":
            assert lists[0] == greedy  # the first sample is the greedy answer
    wide = propose(model, tok, irs, parse_strategy("sample-8"))
    for k in (1, 2, 3):  # what eval reads off one wide run is what optimize draws for k
        assert [lists[:k] for lists in wide] == propose(
            model, tok, irs, parse_strategy(f"sample-{k}")
        )
    hot = parse_strategy("sample-4", sampling="temperature", temperature=1.5, seed=3)
    drawn = propose(model, tok, irs, hot)
    assert drawn == propose(model, tok, irs, hot)  # same seed, same lists
    assert drawn != propose(model, tok, irs, parse_strategy("sample-4", sampling="temperature",
                                                            temperature=1.5, seed=4))  # fmt: skip
    for lists in drawn:
        assert 1 <= len(lists) <= 4 and len(set(map(str, lists))) == len(lists)
        assert "-Oz" not in map(str, lists)
    for k in (1, 2):  # drawn in an order that does not depend on N, like priority samples
        again = parse_strategy(f"sample-{k}", sampling="temperature", temperature=1.5, seed=3)
        assert [lists[:k] for lists in drawn] == propose(model, tok, irs, again)

    for name, strategy in (("predict", "predict"), ("backup", "oz-backup"), ("s3", "sample-3")):
        spec = parse_strategy(strategy)
        lists = propose(model, tok, irs, spec)
        for fn, ir_fn, cand, o, t in zip(FUNCTIONS, irs, lists, oz, taught_counts, strict=True):
            with InProcessCompiler(toolchain) as c:
                report = optimize_ir(
                    ir_fn, toolchain, c, [cand], modules={fn: ir_fn}, predict=spec.predict_only
                )
            (f,) = report.functions
            if strategy == "predict":
                assert f.compiles == 0 and f.passes == str(cand[0]) and f.count == t, name
            else:
                assert f.count <= o and f.count <= t, name
                assert f.compiles == len([p for p in cand if str(p) != "-Oz"]), name


def test_constrained_decoding_never_yields_an_invalid_list(tokenizer, examples):
    from passlm.model.constrained import PassListConstraint, priority_sample, temperature_sample

    torch.manual_seed(0)
    from transformers import LlamaForCausalLM

    preset = mc.load_preset("cpu-tiny")
    untrained = LlamaForCausalLM(mc.llama_config(preset, tokenizer.get_vocab_size())).eval()
    constraint = PassListConstraint(tokenizer)
    prompt = examples[0].prompt
    free = generate(untrained, tokenizer, [prompt], until=PASSES, max_new_tokens=24)[0]
    assert fmt.parse_answer(free.text).passes is None  # an untrained model writes junk
    unique = priority_sample(untrained, tokenizer, prompt, 12, constraint=constraint)
    drawn = generate(
        untrained, tokenizer, [prompt] * 12, until=PASSES, sample=True, seed=1,
        constraint=constraint, temperature=2.0,
    )  # fmt: skip
    hot = temperature_sample(
        untrained, tokenizer, prompt, 12, temperature=2.0, seed=1, constraint=constraint
    )
    texts = [s.text for s in unique] + [g.text for g in drawn] + [s.text for s in hot]
    assert len(unique) == 12 and len({s.tokens for s in unique}) == 12
    assert len(hot) == 12 and len({s.tokens for s in hot}) == 12
    for text in texts:
        parsed = fmt.parse_answer(text)
        assert parsed.passes is not None, (text, parsed.pass_error)
    banned = PassListConstraint(tokenizer, frozenset({"instcombine", "-O2"}))
    for s in priority_sample(untrained, tokenizer, prompt, 12, constraint=banned):
        passes = fmt.parse_answer(s.text).passes
        assert "instcombine" not in passes.passes and "-O2" not in passes.passes


@pytest.mark.slow
def test_feedback_loop_stops_when_the_model_never_learned_it(memorized, examples, toolchain):
    """feedback-K with a first-turn-only model: the greedy list, one round of feedback, done."""
    from passlm.optimize.feedback import feedback_loop
    from passlm.optimize.strategies import parse_strategy, propose

    model, tok, _ = memorized
    irs = [fmt.parse_prompt(e.prompt) for e in examples]
    with InProcessCompiler(toolchain) as c:
        talks = feedback_loop(model, tok, irs, 2, c)
        lists = propose(model, tok, irs, parse_strategy("feedback-2"), compiler=c)
    assert lists == [[parse_pass_list(p)] for p in PASS_LISTS]
    for talk, e in zip(talks, examples, strict=True):
        assert talk.rounds == 1 and talk.done and talk.sure is False
        assert fmt.FEEDBACK_HEADER in talk.text and "Passes valid: True" in talk.text
        # the memorized model predicts the counts right, and the feedback says so
        assert f"Source instruction count: {e.o0_count} [True], correct {e.o0_count}" in talk.text
        assert f"Target instruction count: {e.best_count} [True], correct {e.best_count}" in (
            talk.text
        )
    with pytest.raises(Exception, match="give it a compiler"):
        propose(model, tok, irs, parse_strategy("feedback-1"))


def test_feedback_retries_with_the_models_own_list_where_one_beats_its_first_and_oz(
    memorized, examples, toolchain
):
    """``retry_samples``: a retry answered with one of the model's own samples names that
    list's real count, which beats the first list and -Oz; elsewhere the best list."""
    from passlm.data.feedback import feedback_examples
    from passlm.optimize.strategies import parse_strategy, propose

    model, tok, _ = memorized
    # an unreachable best everywhere: every first list is retried
    rows = [dataclasses.replace(e, best_passes="-O1", best_count=0) for e in examples]
    irs = [fmt.parse_prompt(e.prompt) for e in rows]
    with InProcessCompiler(toolchain) as c:
        plain, _ = feedback_examples(model, tok, rows, c)
        made, summary = feedback_examples(model, tok, rows, c, retry_samples=3)
        samples = propose(model, tok, irs, parse_strategy("sample-3"), compiler=c)
        counts = {
            (i, p.passes): c.run(ir, p).count
            for i, (ir, ls) in enumerate(zip(irs, samples, strict=True))
            for p in ls
        }
        firsts = [
            c.run(ir, parse_pass_list(p)).count for ir, p in zip(irs, PASS_LISTS, strict=True)
        ]
    assert summary.retry == 4 and all(fmt.RETRY in e.answer for e in made)
    assert [e.answer for e in plain] == [
        fmt.render_second_answer(fmt.render_answer("-O1", e.o0_count, 0)) for e in rows
    ]
    own = 0
    for i, (e, fb) in enumerate(zip(rows, made, strict=True)):
        bar = min(e.oz_count, firsts[i])
        better = [(n, j) for j, p in enumerate(samples[i]) if (n := counts[(i, p.passes)]) < bar]
        if not better:
            assert fb.answer == plain[i].answer
            continue
        own += 1
        n, j = min(better)
        want = fmt.render_answer(samples[i][j], e.o0_count, n)
        assert fb.answer == fmt.render_second_answer(want)
    assert summary.own == own >= 1


def test_feedback_and_distill_compile_the_functions_own_ir_not_the_renamed_prompt(
    memorized, tmp_path, toolchain
):
    """In a data set made before the renamer renamed comdats, an anonymized C++ function's
    comdat keeps its old name, so the renamed IR in its prompt does not compile: the data sets
    made from a model's answers compile the function's own IR (``irs``), and distill answers
    with its optimized IR renamed as the prompt is."""
    from passlm.data.distill import distilled_examples
    from passlm.data.feedback import feedback_examples
    from passlm.llvm import ir as irmod
    from passlm.llvm.names import Renaming, anonymize
    from passlm.model.checkpoint import load

    _, _, model_dir = memorized
    reader = tmp_path / "anonymizing-model"
    shutil.copytree(model_dir, reader)
    info = json.loads((reader / "passlm.json").read_text())
    (reader / "passlm.json").write_text(json.dumps({**info, "names": "anonymized"}))
    model, tok = load(reader)
    functions = irmod.split_functions(irmod.compile_source(FIXTURES / "sample.cpp", toolchain),
                                      toolchain)  # fmt: skip
    irs = [ir for name, ir in sorted(functions.items()) if "comdat" in ir][:2]

    def made_before(ir: str) -> str:  # renamed, with the comdat's old name put back
        text = anonymize(ir)
        for name, new_name in Renaming.of(ir).globals.items():
            text = text.replace(f"${new_name} = comdat", f"${name} = comdat")
        return text

    rows = []
    with InProcessCompiler(toolchain) as c:
        for i, ir in enumerate(irs):
            oz_list = parse_pass_list("-Oz")
            assert c.run_tasks([Task(anonymize(ir), oz_list)])[0].ok  # renamed now, it compiles
            assert not c.run_tasks([Task(made_before(ir), oz_list)])[0].ok
            o0, oz = c.count(ir), c.run(ir, "-Oz").count
            rows.append(Example(f"c{i}", "train", "sample.cpp", f"c{i}",
                                fmt.render_prompt(made_before(ir)), "", o0, oz, oz, "-Oz", 0))  # fmt: skip
        _, broken = feedback_examples(model, tok, rows, c)
        made, summary = feedback_examples(model, tok, rows, c, irs=irs)
        distilled, d = distilled_examples(model, tok, rows, c, irs=irs)
        for e, ir in zip(distilled, irs, strict=True):
            answer = fmt.parse_answer(e.answer)
            want = Renaming.of(ir).apply(c.run(ir, answer.passes, want_ir=True).ir)
            assert answer.ir is not None and answer.ir.strip() == want.strip()
    assert broken.invalid == 2 and summary.invalid == 0 and len(made) == 2
    assert d.failed == 0 and len(distilled) == 2


@pytest.mark.slow
def test_feedback_data_set_and_a_fine_tuned_model_that_retries(
    memorized, examples, tuned, tmp_path, toolchain
):
    """The feedback task end to end: data set from the model's own answers, fine-tuning with
    --init, and feedback-1 proposing the better list after the compiler's feedback."""
    from passlm.data.dataset import read_dataset
    from passlm.model.checkpoint import lineage_of, load, read_meta
    from passlm.optimize.strategies import parse_strategy, propose

    _, _, model_dir = memorized
    # the taught list that loses to -Oz gets -Oz as its "best": the model must learn to retry
    loser = next(i for i, e in enumerate(examples) if e.best_count > e.oz_count)
    rows = [
        dataclasses.replace(e, best_passes="-Oz", best_count=e.oz_count) if i == loser else e
        for i, e in enumerate(examples)
    ]
    data, fb = tmp_path / "data.parquet", tmp_path / "feedback.parquet"
    write_dataset(data, rows, {"llvm_version": "19"})
    res = run_passlm("dataset", "feedback", str(data), "--model", str(model_dir), "-o", str(fb))
    assert res.returncode == 0, res.stderr
    assert "3 'I am sure!', 1 'Let me try again.'" in res.stdout
    made, meta = read_dataset(fb)
    assert len(made) == 8 and meta["feedback"]["retry"] == 1
    turns = made[4:]
    assert [t.answer for t in turns] == [
        fmt.RETRY + "\n" + fmt.render_answer("-Oz", e.o0_count, e.oz_count) if i == loser
        else fmt.SURE
        for i, e in enumerate(rows)
    ]  # fmt: skip
    assert all(t.prompt.startswith(e.prompt) and fmt.FEEDBACK_HEADER in t.prompt
               for t, e in zip(turns, rows, strict=True))  # fmt: skip

    # a data set made for other prompts than the model reads is refused, no file written
    anon, refused = tmp_path / "anon.parquet", tmp_path / "refused.parquet"
    write_dataset(anon, rows, {"llvm_version": "19", "names": "anonymized"})
    for command in ("feedback", "distill"):
        bad = run_passlm("dataset", command, str(anon), "--model", str(model_dir), "-o",
                         str(refused))  # fmt: skip
        assert bad.returncode == 2 and "reads prompts 'ir' with names kept" in bad.stderr
        assert "Traceback" not in bad.stderr and not refused.exists()
    # ...and one made for it keeps its kind, which training hands on to the fine-tuned model;
    # the functions' own IR comes from the tuned data set (the prompt's is renamed, and in data
    # sets made before comdats were renamed it did not compile)
    reader = tmp_path / "anonymizing-model"
    shutil.copytree(model_dir, reader)
    info = json.loads((reader / "passlm.json").read_text())
    (reader / "passlm.json").write_text(json.dumps({**info, "names": "anonymized"}))
    res = run_passlm("dataset", "feedback", str(anon), "--model", str(reader), "-o",
                     str(refused))  # fmt: skip
    assert res.returncode == 2 and "give it with --tuned" in res.stderr and not refused.exists()
    own = tmp_path / "tuned.parquet"
    write_tuned(own, [TunedFunction(h, f"f{i}", "sample.c", "sample.c", "train", ir, o0, oz, p,
                                    best, opt, 1, 0, "") for i, (h, ir, p, o0, oz, best, opt)
                      in enumerate(tuned)], {"llvm_version": "19"})  # fmt: skip
    res = run_passlm("dataset", "feedback", str(anon), "--model", str(reader), "-o",
                     str(refused), "--tuned", str(own))  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert read_dataset(refused)[1]["names"] == "anonymized"

    run = tmp_path / "run"
    res = run_passlm(
        "train", str(fb), "-o", str(run), "--init", str(model_dir), "--steps", "300",
        "--batch-size", "4", "--block-size", "512", "--lr", "2e-3", "--warmup", "5",
        "--eval-every", "0", "--checkpoint-every", "300", "--device", "cpu",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    meta = read_meta(run / "model")
    assert meta["init"] == str(model_dir) and meta["lineage"] == lineage_of(model_dir)
    assert meta["lineage"][0]["data_hash"] == read_meta(model_dir)["data_hash"]
    old = tmp_path / "old-fine-tune"  # trained before lineages were recorded
    shutil.copytree(run / "model", old)
    (old / "passlm.json").write_text(json.dumps({k: v for k, v in meta.items() if k != "lineage"}))
    res = run_passlm("model", "export", str(old), "-o", str(tmp_path / "shipped"))
    assert res.returncode == 0, res.stderr
    assert read_meta(tmp_path / "shipped")["lineage"] == meta["lineage"]  # found by export
    tuned, tok = load(run / "model")
    irs = [fmt.parse_prompt(e.prompt) for e in rows]
    with InProcessCompiler(toolchain) as c:
        lists = propose(tuned, tok, irs, parse_strategy("feedback-1"), compiler=c)
    want = [[parse_pass_list(p)] for p in PASS_LISTS]
    want[loser].append(parse_pass_list("-Oz"))  # retried after seeing its count lose
    assert lists == want
    bad = run_passlm("train", str(fb), "-o", str(tmp_path / "x"), "--init", str(tmp_path))
    assert bad.returncode == 2 and "not a passlm model to fine-tune" in bad.stderr


@pytest.mark.slow
def test_distilled_data_set_answers_the_models_own_lists_with_the_compilers_ir(
    memorized, examples, tuned, tmp_path, toolchain
):
    """``dataset distill``: each function once, answered with the model's greedy list and the
    real count and optimized IR for it, or -Oz's where the list loses to -Oz; a limit nothing
    fits writes no file."""
    from passlm.data.dataset import read_dataset

    _, _, model_dir = memorized
    held = dataclasses.replace(examples[0], hash="v0", split="val")
    data, out = tmp_path / "data.parquet", tmp_path / "distilled.parquet"
    write_dataset(data, [*examples, examples[2], held], {"llvm_version": "19"})
    res = run_passlm("dataset", "distill", str(data), "--model", str(model_dir), "-o", str(out))
    assert res.returncode == 0, res.stderr
    made, meta = read_dataset(out)
    assert [e.hash for e in made] == [*(e.hash for e in examples), "v0"]  # the copy once
    assert made[-1] == held  # other splits as they were: training validates on them
    made = made[:-1]
    losers = 0
    with InProcessCompiler(toolchain) as c:
        for e, (_, ir, p, o0, oz, best, opt) in zip(made, tuned, strict=True):
            if best > oz:  # the model's list loses here: -Oz is taught instead
                losers += 1
                p, best, opt = "-Oz", oz, c.run(ir, "-Oz", want_ir=True).ir
            assert e.answer == fmt.render_answer(parse_pass_list(p), o0, best, opt)  # IR for all
            assert e.prompt == fmt.render_prompt(ir) and e.tokens > 0
    better = sum(e.best_count < e.oz_count for e in examples)
    worse = sum(e.best_count > e.oz_count for e in examples)
    assert losers == worse >= 1
    d = meta["distill"]
    assert (d["functions"], d["oz"], d["better"], d["worse"], d["corrected"]) == (
        4, 1, better, worse, worse
    )  # fmt: skip
    assert d["saved"] == sum(max(0, e.oz_count - e.best_count) for e in examples)
    assert d["lost"] == sum(max(0, e.best_count - e.oz_count) for e in examples)
    bad = tmp_path / "none.parquet"
    res = run_passlm(
        "dataset", "distill", str(data), "--model", str(model_dir), "-o", str(bad),
        "--max-tokens", "8",
    )  # fmt: skip
    assert res.returncode == 2 and "no function got an answer that fits 8 tokens" in res.stderr
    assert not bad.exists()


# --------------------------------------------------------------------------- predict's margin


def test_the_margin_rule_by_hand():
    from passlm.optimize.calibrate import choose

    rows = [
        {"margin": 0.0, "improved": 5, "regressed": 4, "overall": 0.030},  # net 1, most saved
        {"margin": 0.5, "improved": 4, "regressed": 1, "overall": 0.010},  # net 3
        {"margin": 1.0, "improved": 3, "regressed": 0, "overall": 0.010},  # net 3: larger
        {"margin": 2.0, "improved": 3, "regressed": 0, "overall": 0.008},
        {"margin": float("inf"), "improved": 0, "regressed": 0, "overall": 0.0},
    ]
    assert choose(rows) == 1.0  # net functions first, then instructions, then the margin
    losing = [
        {"margin": 0.0, "improved": 1, "regressed": 2, "overall": 0.05},
        {"margin": float("inf"), "improved": 0, "regressed": 0, "overall": 0.0},
    ]
    assert choose(losing) == float("inf")  # nothing pays: never leave -Oz


@pytest.mark.slow
def test_predict_with_a_margin_and_its_calibration(memorized, examples, tmp_path, toolchain):
    """The margin is the greedy list's log-probability over the answer -Oz's; predict leaves
    -Oz only past it; calibrate scores each margin as eval scores predict, stores its choice,
    and optimize and eval use it."""
    from passlm.model.constrained import answer_logprobs
    from passlm.model.generate import generate
    from passlm.optimize.calibrate import MARGINS, model_margin
    from passlm.optimize.strategies import constraint_for, greedy_margin, parse_strategy, propose

    model, tok, model_dir = memorized
    irs = [fmt.parse_prompt(e.prompt) for e in examples]
    taught = [parse_pass_list(e.best_passes) for e in examples]
    cons = constraint_for(tok, None)  # as predict decodes (the deny list bans none of these)
    margins = []
    for ir, passes in zip(irs, taught, strict=True):
        lists, margin = greedy_margin(model, tok, ir, constraint=cons)
        assert lists == [passes]
        if str(passes) == "-Oz":
            assert margin is None
            continue
        prompt = fmt.render_prompt(ir)
        (g,) = generate(model, tok, [prompt], until=PASSES, constraint=cons)
        both = answer_logprobs(model, tok, prompt, [g.text, "Run passes `-Oz`"], constraint=cons)
        assert margin == pytest.approx(both[0] - both[1], abs=1e-3) and margin > 0
        margins.append(margin)
    plain = propose(model, tok, irs, parse_strategy("predict"))
    assert propose(model, tok, irs, parse_strategy("predict", margin=0.0)) == plain
    never = propose(model, tok, irs, parse_strategy("predict", margin=float("inf")))
    assert [[str(p) for p in lists] for lists in never] == [["-Oz"]] * len(irs)
    cut = sorted(margins)[0] + 1e-3  # just past the least sure list: that one becomes -Oz
    some = propose(model, tok, irs, parse_strategy("predict", margin=cut))
    assert sum(lists != p for lists, p in zip(some, plain, strict=True)) == 1

    from passlm.evaluate.compare import model_methods
    from passlm.evaluate.testset import TestFunction

    fns = [TestFunction(e.hash, e.function, "sample.c", ir, e.o0_count, e.oz_count,
                        e.best_count, e.best_passes, None)
           for e, ir in zip(examples, irs, strict=True)]  # fmt: skip
    rows = model_methods(model, tok, fns, ["predict", "oz-backup"], margin=cut)
    assert [m.name for m in rows] == ["predict", f"predict (margin {cut:g})", "oz-backup"]
    assert rows[1].as_is and list(rows[1].candidates) == some

    data = tmp_path / "val.parquet"
    write_dataset(data, [dataclasses.replace(e, split="val") for e in examples], {})
    copy = tmp_path / "model"
    shutil.copytree(model_dir, copy)
    dry = run_passlm("model", "calibrate", "--data", str(data), "--model", str(copy), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert model_margin(copy) is None and "not stored" in dry.stderr
    res = run_passlm("model", "calibrate", "--data", str(data), "--model", str(copy), "-j", "1")
    assert res.returncode == 0, res.stderr
    from passlm.model.checkpoint import read_meta

    record = read_meta(copy)["predict_calibration"]
    oz = [e.oz_count for e in examples]
    best = [e.best_count for e in examples]  # the taught lists' counts: what predict gets
    assert record["functions"] == 4 and record["split"] == "val"
    assert record["ungated"] == {
        k: v for k, v in metrics.improvement(oz, best).to_dict().items() if k in record["ungated"]
    }
    rows = record["margins"]
    assert [r["margin"] for r in rows] == [*MARGINS[:-1], "inf"]
    for r in rows:  # every margin scored by hand from the greedy lists' margins
        sure = [
            b if str(p) != "-Oz" and m >= float(r["margin"]) else o
            for p, b, o, m in zip(taught, best, oz, _with_none(taught, margins), strict=True)
        ]
        imp = metrics.improvement(oz, sure)
        assert (r["improved"], r["regressed"]) == (imp.improved, imp.regressed), r
        assert r["overall"] == pytest.approx(imp.overall)
    chosen = model_margin(copy)
    from passlm.optimize.calibrate import choose

    assert chosen == choose([{**r, "margin": float(r["margin"])} for r in rows])
    label = "predict" if chosen is None else f"predict (margin {chosen:g})"
    out = run_passlm(
        "optimize", str(FIXTURES / "sample.c"), "--model", str(copy), "-s", "predict", "-j", "1"
    )
    assert out.returncode == 0 and label in " ".join(out.stderr.split()), out.stderr
    off = run_passlm("optimize", str(FIXTURES / "sample.c"), "--model", str(copy), "-s",
                     "predict", "--margin", "off", "-j", "1")  # fmt: skip
    assert off.returncode == 0 and "predict (margin" not in off.stderr, off.stderr
    bad = run_passlm("optimize", str(FIXTURES / "sample.c"), "--margin", "sure")
    assert bad.returncode == 2 and "--margin: expected a number" in bad.stderr
    empty = run_passlm("model", "calibrate", "--data", str(data), "--model", str(copy),
                       "--split", "test")  # fmt: skip
    assert empty.returncode == 2 and "val.parquet: no test functions" in empty.stderr


def _with_none(taught, margins):
    """The greedy lists' margins in function order, None for the -Oz one."""
    it = iter(margins)
    return [None if str(p) == "-Oz" else next(it) for p in taught]


@pytest.mark.slow
def test_a_model_trained_with_the_oz_context_reads_it_at_every_use(
    tmp_path, examples, tuned, tokenizer, toolchain
):
    """A tiny model memorizes four answers to prompts that carry the -Oz context; the
    strategies then render exactly those prompts (the context compiled for them) and get the
    taught lists back, and a function -Oz cannot compile gets no prompt (so -Oz stands)."""
    from passlm.model.checkpoint import load
    from passlm.model.config import ANSWER_ROOM
    from passlm.model.generate import prompt_ids
    from passlm.optimize.prompts import model_prompts, oz_contexts
    from passlm.optimize.strategies import greedy_margins, parse_strategy, propose

    irs = [ir for _, ir, *_ in tuned]
    with InProcessCompiler(toolchain) as c:
        contexts = oz_contexts(irs, c)
    assert [x.count for x in contexts] == [oz for *_, oz, _, _ in tuned]
    rows = [
        dataclasses.replace(e, prompt=fmt.render_prompt(ir, ctx))
        for e, ir, ctx in zip(examples, irs, contexts, strict=True)
    ]
    data = tmp_path / "oz.parquet"
    write_dataset(data, rows, {"prompt": fmt.PROMPT_OZ})
    config = TrainConfig(
        steps=200, batch_size=4, block_size=256, lr=3e-3, warmup_steps=5,
        checkpoint_every=200, device="cpu",
    )  # fmt: skip
    run = train(data, tokenizer, mc.load_preset("cpu-tiny"), config, tmp_path / "run")
    model, tok = load(run.model_dir)
    assert model.passlm_prompt == fmt.PROMPT_OZ
    assert model_prompts(model, irs) == [r.prompt for r in rows]  # its own compiler
    assert model_prompts(model, ["not IR"]) == [None]
    taught = [[parse_pass_list(p)] for p in PASS_LISTS]
    with InProcessCompiler(toolchain) as c:
        assert model_prompts(model, irs, c) == [r.prompt for r in rows]
        assert propose(model, tok, irs, parse_strategy("predict"), compiler=c) == taught
        assert [g for g, _ in greedy_margins(model, tok, irs, compiler=c)] == taught
        sampled = propose(model, tok, [*irs, "not IR"], parse_strategy("sample-2"), compiler=c)
    assert sampled[-1] == []  # no prompt: the function is left to -Oz
    for lists, greedy in zip(sampled[:-1], taught, strict=True):
        if str(greedy[0]) != "-Oz":
            assert lists[0] == greedy[0]  # the first sample is the greedy answer
    # had it been trained on plain prompts too, predict (compiling nothing first) reads those
    model.passlm_plain_prompts = True
    with InProcessCompiler(toolchain) as c:
        assert model_prompts(model, irs, c, compiles=False) == [fmt.render_prompt(i) for i in irs]
        assert model_prompts(model, irs, c) == [r.prompt for r in rows]
    # a context just too small for the prompt with -Oz's IR, large enough for the plain one:
    # that function gets the plain prompt where the tokenizer is given, as the strategies give it
    plain = fmt.render_prompt(irs[0])
    assert len(prompt_ids(tok, plain)) < len(prompt_ids(tok, rows[0].prompt))
    room = model.config.max_position_embeddings
    model.config.max_position_embeddings = len(prompt_ids(tok, plain)) + ANSWER_ROOM
    try:
        with InProcessCompiler(toolchain) as c:
            assert model_prompts(model, irs[:1], c, tok) == [plain]
            assert model_prompts(model, irs[:1], c) == [rows[0].prompt]  # no tokenizer, no check
            model.config.max_position_embeddings -= 1  # nor the plain one: decoders return nothing
            assert model_prompts(model, irs[:1], c, tok) == [plain]
    finally:
        model.config.max_position_embeddings = room
