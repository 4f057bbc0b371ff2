"""``passlm model average``: fine-tunes of one tiny real model averaged into one."""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from passlm.data import format as fmt
from passlm.data.dataset import Example, write_dataset
from passlm.errors import InputError
from passlm.evaluate.testset import training_data_of
from passlm.llvm.names import NAMES_ANONYMIZED
from passlm.model import checkpoint as ckpt
from passlm.model import config as mc
from passlm.model import tokenizer as tk
from passlm.model.average import average_models, check_weights
from passlm.model.train import TrainConfig, train

from .conftest import run_passlm

pytestmark = pytest.mark.usefixtures("one_thread")

PASS_LISTS = ("-mem2reg -instcombine -Oz", "-sroa -simplifycfg", "-reg2mem -Os", "-O1 -dce")


@pytest.fixture(scope="module")
def family(sample_functions, tmp_path_factory):
    """A base model trained from scratch, two fine-tunes of it on other data (recorded as
    `passlm train` commands naming their data sets), and a second model trained apart."""
    root = tmp_path_factory.mktemp("family")
    irs = sorted(sample_functions.values(), key=len)[:4]
    pairs = [
        (fmt.render_prompt(ir), fmt.render_answer(p, 20 + i, 10 + i))
        for i, (ir, p) in enumerate(zip(irs, PASS_LISTS, strict=True))
    ]
    tokenizer = tk.train_tokenizer([p + a for p, a in pairs] * 3, vocab_size=640)
    preset = mc.load_preset("cpu-tiny")
    config = TrainConfig(
        steps=3, batch_size=2, block_size=64, lr=3e-3, warmup_steps=1, checkpoint_every=3,
        device="cpu",
    )  # fmt: skip

    def data(name: str, chosen, **meta) -> str:
        rows = [
            Example(f"h{i}", "train", "sample.c", f"f{i}", p, a, 30, 20, 10, "-Oz", 0)
            for i, (p, a) in enumerate(chosen)
        ]
        path = root / f"{name}.parquet"
        write_dataset(path, rows, {"llvm_version": "19.1.7", **meta})
        return str(path)

    def run(name: str, dataset: str, seed: int, init=None):
        command = f"passlm train {dataset} -o {root / name} --seed {seed}"
        cfg = dataclasses.replace(config, seed=seed)
        result = train(
            dataset, tokenizer, preset, cfg, root / name, init=init, meta={"command": command}
        )
        return result.model_dir

    base = run("base", data("base", pairs), 1)
    one = run("one", data("one", pairs[:2]), 2, init=base)
    two = run("two", data("two", pairs[2:]), 3, init=base)
    apart = run("apart", data("apart", pairs[1:]), 4)
    anon = run("anon", data("anon", pairs, names=NAMES_ANONYMIZED), 5, init=base)
    return {"base": base, "one": one, "two": two, "apart": apart, "anon": anon, "root": root}


def _weights(path) -> dict[str, torch.Tensor]:
    return {k: v.float() for k, v in load_file(str(path / "model.safetensors")).items()}


def test_the_average_is_the_weighted_mean_and_records_its_members(family, tmp_path):
    one, two = family["one"], family["two"]
    out = average_models([one, two], tmp_path / "soup", dtype="float32", command="the command")
    a, b, soup = _weights(one), _weights(two), _weights(out)
    assert soup.keys() == a.keys()
    for k in soup:
        assert torch.allclose(soup[k], (a[k] + b[k]) / 2, atol=1e-6), k
    assert any(not torch.equal(a[k], b[k]) for k in a)  # the two fine-tunes did differ

    meta = ckpt.read_meta(out)
    assert meta["command"] == "the command" and meta["dtype"] == "float32"
    assert [(m["path"], m["weight"]) for m in meta["averaged_from"]] == [
        (str(one), 0.5),
        (str(two), 0.5),
    ]
    assert [m["data_hash"] for m in meta["averaged_from"]] == [
        ckpt.read_meta(one)["data_hash"],
        ckpt.read_meta(two)["data_hash"],
    ]
    for key in ("init", "steps", "data_hash", "train_config", "predict_margin"):
        assert key not in meta
    # the lineage is the union of the members': the shared base once, and every data set any
    # member learned from is found by eval's dedup against training data
    hashes = [e.get("data_hash") for e in meta["lineage"]]
    assert hashes == [meta["averaged_from"][0]["data_hash"], ckpt.read_meta(family["base"])[
        "data_hash"], meta["averaged_from"][1]["data_hash"]]  # fmt: skip
    root = family["root"]
    assert set(training_data_of(out)) == {root / f"{n}.parquet" for n in ("one", "two", "base")}

    # a loadable model with the members' tokenizer, reading their prompts
    model, tok = ckpt.load(out)
    member, member_tok = ckpt.load(one)
    assert tk.tokenizer_hash(tok) == tk.tokenizer_hash(member_tok)
    assert (model.passlm_prompt, model.passlm_names) == (member.passlm_prompt, member.passlm_names)
    assert ckpt.lineage_of(out)[0] == {"command": "the command"}


def test_weights_and_dtype(family, tmp_path):
    one, two = family["one"], family["two"]
    first = average_models([one, two], tmp_path / "first", weights=[2, 0], dtype="float32")
    a = _weights(one)
    assert all(torch.equal(v, a[k]) for k, v in _weights(first).items())
    assert ckpt.read_meta(first)["averaged_from"][1]["weight"] == 0.0
    # a margin calibrated for a member is not the average's
    meta_file = one / ckpt.META_FILE
    saved = meta_file.read_text()
    try:
        meta_file.write_text(json.dumps({**json.loads(saved), "predict_margin": 0.6}))
        half = average_models([one, two], tmp_path / "bf16", weights=[1, 3])
    finally:
        meta_file.write_text(saved)
    assert "predict_margin" not in ckpt.read_meta(half)
    assert next(iter(load_file(str(half / "model.safetensors")).values())).dtype == torch.bfloat16
    assert [m["weight"] for m in ckpt.read_meta(half)["averaged_from"]] == [0.25, 0.75]

    assert check_weights(None, 4) == [0.25] * 4
    for bad, match in (
        ([1.0], "1 weights for 2 models"),
        ([1.0, -1.0], "at least 0"),
        ([1.0, float("nan")], "at least 0"),
        ([0.0, 0.0], "at least one must be above 0"),
    ):
        with pytest.raises(InputError, match=match):
            check_weights(bad, 2)


def test_models_that_do_not_average_are_refused(family, tmp_path):
    one, two, out = family["one"], family["two"], tmp_path / "soup"
    cases = [
        ([one], "at least two"),
        ([one, one], "named twice"),
        ([one, family["apart"]], "shares no ancestor"),
        ([one, family["anon"]], "reads other prompts"),
        ([one, tmp_path / "missing"], "no such model directory"),
    ]
    wide = tmp_path / "wide"  # same weights, another architecture in config.json
    shutil.copytree(two, wide)
    config = json.loads((wide / "config.json").read_text())
    (wide / "config.json").write_text(json.dumps({**config, "rms_norm_eps": 0.5}))
    cases.append(([one, wide], "another architecture .*rms_norm_eps"))
    foreign = tmp_path / "foreign"  # no passlm.json: nothing says where it comes from
    shutil.copytree(two, foreign)
    (foreign / ckpt.META_FILE).unlink()
    cases.append(([one, foreign], "records no training"))
    for models, match in cases:
        with pytest.raises(InputError, match=match):
            average_models(models, out)
        assert not out.exists()
    kept = _weights(two)
    with pytest.raises(InputError, match="one of the models averaged"):
        average_models([one, two], two)
    assert all(torch.equal(v, kept[k]) for k, v in _weights(two).items())
    with pytest.raises(InputError, match="--dtype"):
        average_models([one, two], out, dtype="int8")


def test_cli(family, tmp_path):
    one, two, out = family["one"], family["two"], tmp_path / "soup"
    res = run_passlm("model", "average", str(one), str(two), "-o", str(out), "--weights", "1,x")
    assert res.returncode == 2 and "--weights: expected comma-separated numbers" in res.stderr
    assert "Traceback" not in res.stderr and not out.exists()
    res = run_passlm("model", "average", str(one), str(family["apart"]), "-o", str(out))
    assert res.returncode == 2 and "shares no ancestor" in res.stderr and not out.exists()
    res = run_passlm("model", "average", str(one), str(two), "-o", str(out), "--weights", "1,1")
    assert res.returncode == 0, res.stderr
    assert "passlm model calibrate" in res.stderr
    meta = ckpt.read_meta(out)
    assert meta["command"].startswith("passlm model average") and meta["dtype"] == "bfloat16"
