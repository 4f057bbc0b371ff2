"""The model shipped inside the package: it loads and proposes valid pass lists."""

from __future__ import annotations

import json

import torch

from passlm.data.format import parse_answer
from passlm.model import DEFAULT_MODEL, default_model_dir, load
from passlm.model.checkpoint import read_meta
from passlm.model.generate import PASSES, generate
from passlm.optimize.prompts import model_prompts


def test_shipped_model_is_small_and_documented():
    path = default_model_dir()
    size = sum(f.stat().st_size for f in path.iterdir())
    assert size <= 30 * 2**20
    meta = read_meta(path)
    assert meta["command"].startswith("passlm train") and meta["llvm_version"].startswith("19")
    assert json.loads((path / "config.json").read_text())["model_type"] == "llama"


def test_shipped_model_emits_valid_pass_lists(sample_functions):
    torch.set_num_threads(1)
    model, tok = load(DEFAULT_MODEL)
    irs = sorted(sample_functions.values(), key=len)[:3]
    out = generate(model, tok, model_prompts(model, irs), until=PASSES)  # the prompt it reads
    answers = [parse_answer(g.text) for g in out]
    assert all(a.valid for a in answers), [g.text for g in out]


def test_shipped_model_carries_its_calibrated_predict_margin():
    """passlm model calibrate's record: chosen on val by the rule, from the table it stored."""
    from passlm.optimize.calibrate import choose, model_margin

    meta = read_meta(default_model_dir())
    record = meta["predict_calibration"]
    assert record["split"] == "val" and record["functions"] > 1000
    rows = [{**r, "margin": float(r["margin"])} for r in record["margins"]]
    assert model_margin(default_model_dir()) == choose(rows)
