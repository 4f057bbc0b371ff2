"""Model presets, packing, and the real training loop on a tiny model (STYLE.md item 9)."""

from __future__ import annotations

import dataclasses
import itertools
import json

import numpy as np
import pytest
import torch

from passlm.data import format as fmt
from passlm.data.dataset import Example, write_dataset
from passlm.errors import InputError
from passlm.llvm.names import NAMES_ANONYMIZED, NAMES_KEPT
from passlm.model import checkpoint as ckpt
from passlm.model import config as mc
from passlm.model import tokenizer as tk
from passlm.model.packing import IGNORE, PackedStream, encode_example
from passlm.model.train import (
    LOG_FILE,
    TrainConfig,
    answer_loss,
    data_hash,
    gain_repeats_of,
    resolve_precision,
    train,
)

PASS_LISTS = ("-mem2reg -instcombine -Oz", "-sroa -simplifycfg", "-reg2mem -Os", "-O1 -dce")


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def examples(sample_functions) -> list[tuple[str, str]]:
    """Four real (prompt, answer) pairs: the shortest functions, each with its own pass list."""
    irs = sorted(sample_functions.values(), key=len)[:4]
    return [
        (fmt.render_prompt(ir), fmt.render_answer(passes, 20 + i, 10 + i))
        for i, (ir, passes) in enumerate(zip(irs, PASS_LISTS, strict=True))
    ]


@pytest.fixture(scope="module")
def tokenizer(examples):
    texts = [p + a for p, a in examples]
    return tk.train_tokenizer(texts * 3, vocab_size=640)


@pytest.fixture(scope="module")
def tiny() -> mc.ModelPreset:
    return mc.load_preset("cpu-tiny")


def _config(**changes) -> TrainConfig:
    base = TrainConfig(
        steps=6, batch_size=2, block_size=64, lr=3e-3, warmup_steps=2, checkpoint_every=3
    )
    return dataclasses.replace(base, device="cpu", **changes)


# -- presets ---------------------------------------------------------------------------------


def test_every_preset_parses():
    names = mc.preset_names()
    assert {"cpu-tiny", "cpu-small", "cpu-base", "gpu-1b", "paper-7b"} <= set(names)
    for name in names:
        preset = mc.load_preset(name)
        assert preset.name == name
        assert preset.description


@pytest.mark.parametrize(
    ("name", "low", "high"),
    [("cpu-tiny", 1.2e6, 2.5e6), ("cpu-small", 6e6, 8e6), ("cpu-base", 15e6, 19e6)],
)
def test_small_preset_sizes_match_built_models(name, low, high):
    from transformers import LlamaForCausalLM

    preset = mc.load_preset(name)
    model = LlamaForCausalLM(mc.llama_config(preset, 8192))
    built = sum(p.numel() for p in model.parameters())
    assert built == mc.parameter_count(preset, 8192)
    assert low < built < high


def test_large_preset_sizes():
    assert 6.6e9 < mc.parameter_count(mc.load_preset("paper-7b"), 32000) < 6.8e9
    assert 0.9e9 < mc.parameter_count(mc.load_preset("gpu-1b"), 8192) < 1.2e9


def test_bad_presets(tmp_path):
    with pytest.raises(InputError, match="unknown model preset"):
        mc.load_preset("nope")
    data = json.loads((mc.PRESET_DIR / "cpu-tiny.json").read_text())
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**data, "num_heads": 5}))
    with pytest.raises(InputError, match="multiple of num_heads"):
        mc.load_preset(bad)
    bad.write_text(json.dumps({**data, "layers": 5}))
    with pytest.raises(InputError, match="unknown fields layers"):
        mc.load_preset(bad)


def test_schedule_warms_up_and_ends_at_a_tenth():
    config = TrainConfig(steps=100, warmup_steps=10)
    factors = [config.lr_factor(s) for s in range(100)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in itertools.pairwise(factors[9:]))
    assert config.lr_factor(100) == pytest.approx(0.1)
    with pytest.raises(ValueError):
        TrainConfig(steps=5, warmup_steps=6)


# -- data ------------------------------------------------------------------------------------


def test_labels_mask_the_prompt(tokenizer, examples):
    prompt, answer = examples[0]
    enc = encode_example(tokenizer, prompt, answer)
    n_prompt = len(tokenizer.encode(prompt, add_special_tokens=False).ids)
    assert enc.ids[0] == mc.BOS_ID and enc.ids[-1] == mc.EOS_ID
    assert (enc.labels[: 1 + n_prompt] == IGNORE).all()
    trained = enc.labels[1 + n_prompt :]
    assert (trained == enc.ids[1 + n_prompt :]).all()
    assert tokenizer.decode(trained[:-1].tolist()) == answer


def test_labels_can_leave_the_pass_list_out(tokenizer, examples):
    prompt, answer = examples[1]
    full = encode_example(tokenizer, prompt, answer)
    enc = encode_example(tokenizer, prompt, answer, list_loss=False)
    assert (enc.ids == full.ids).all()
    n_prompt = len(tokenizer.encode(prompt, add_special_tokens=False).ids)
    answer_labels = enc.labels[1 + n_prompt :]
    masked = int((answer_labels == IGNORE).sum())
    assert masked > 2  # the opening marker, the passes and the backtick
    assert (answer_labels[masked:] != IGNORE).all()  # one masked span, at the start
    head = tokenizer.decode(enc.ids[1 + n_prompt : 1 + n_prompt + masked].tolist())
    assert head == answer[: answer.index(fmt.PASSES_CLOSE, len(fmt.PASSES_OPEN)) + 1]
    assert head.startswith(fmt.PASSES_OPEN) and head.endswith(fmt.PASSES_CLOSE)
    rest = tokenizer.decode(answer_labels[masked:-1].tolist())
    assert head + rest == answer and rest.startswith(fmt.COUNTS_FROM)


def test_packing_is_seeded_and_gapless(tokenizer, examples):
    encoded = [encode_example(tokenizer, p, a) for p, a in examples]
    stream = PackedStream(encoded, block_size=50, seed=1)
    blocks = [stream.block(i) for i in range(3 * stream.epoch_tokens // 50)]
    # Consecutive blocks overlap by one token and cover the stream without a gap.
    for (a, _), (b, _) in itertools.pairwise(blocks):
        assert a[-1] == b[0] and len(a) == 51
    ids = np.concatenate([blocks[0][0]] + [b[0][1:] for b in blocks[1:]])
    epoch = ids[: stream.epoch_tokens]
    assert sorted(epoch.tolist()) == sorted(np.concatenate([e.ids for e in encoded]).tolist())
    again = PackedStream(encoded, block_size=50, seed=1)
    assert all((again.block(i)[1] == blocks[i][1]).all() for i in (5, 0, 3))
    other = PackedStream(encoded, block_size=50, seed=2)
    assert any((other.block(i)[0] != blocks[i][0]).any() for i in range(len(blocks)))


# -- training --------------------------------------------------------------------------------


def _generate(model, tokenizer, prompt: str, n: int) -> str:
    ids = [mc.BOS_ID, *tokenizer.encode(prompt, add_special_tokens=False).ids]
    with torch.no_grad():
        out = model.generate(
            torch.tensor([ids]),
            max_new_tokens=n,
            do_sample=False,
            eos_token_id=mc.EOS_ID,
            pad_token_id=mc.PAD_ID,
        )
    return tokenizer.decode(out[0, len(ids) :].tolist())


def test_tiny_model_overfits_and_round_trips(tmp_path, tokenizer, examples, tiny):
    config = _config(steps=80, batch_size=4, block_size=128, warmup_steps=4, checkpoint_every=80)
    calls = []

    def eval_fn(model, step):
        calls.append((step, model.training))
        return {"ok": 1}

    result = train(
        examples,
        tokenizer,
        tiny,
        dataclasses.replace(config, eval_every=40),
        tmp_path,
        eval_fn=eval_fn,
        meta={"command": "test"},
    )
    assert result.step == 80 and len(result.losses) == 80
    # From ln(640) = 6.5 to a few hundredths: the answers are memorized. (Single steps spike
    # where a block starts inside a prompt, so the example's start is out of sight.)
    assert np.median(result.losses[-10:]) < max(result.losses[:3]) / 20
    assert calls == [(40, False), (80, False)]
    log = [json.loads(line) for line in (tmp_path / LOG_FILE).read_text().splitlines()]
    assert [r["step"] for r in log if "loss" in r] == list(range(1, 81))
    assert sum("eval" in r for r in log) == 2

    model, tok = ckpt.load(result.model_dir)
    prompt, answer = examples[1]
    assert _generate(model, tok, prompt, 12).startswith(answer.split("\n")[0][:40])

    # The saved directory is a plain Hugging Face one and gives the same logits.
    from transformers import AutoModelForCausalLM

    meta = ckpt.read_meta(result.model_dir)
    assert meta["steps"] == 80 and meta["command"] == "test" and meta["data_hash"]
    hf = AutoModelForCausalLM.from_pretrained(result.model_dir, local_files_only=True)
    x = torch.from_numpy(encode_example(tokenizer, *examples[0]).ids)[None]  # [1, n]
    with torch.no_grad():
        assert torch.equal(model(x).logits, hf(x).logits)


def test_answer_loss_is_the_full_cross_entropy(tokenizer, examples, tiny):
    from transformers import LlamaForCausalLM

    torch.manual_seed(0)
    model = LlamaForCausalLM(mc.llama_config(tiny, tokenizer.get_vocab_size()))
    stream = PackedStream([encode_example(tokenizer, p, a) for p, a in examples], 512, seed=0)
    ids, labels = stream.batch(0, 3)
    x, y = torch.from_numpy(ids[:, :-1]), torch.from_numpy(labels[:, 1:])
    y[0] = IGNORE  # a block of prompt only adds nothing
    total, targets = answer_loss(model, x, y)
    assert targets == int((y != IGNORE).sum()) > 0
    grads = torch.autograd.grad(total, list(model.parameters()))
    logits = model(input_ids=x).logits  # [batch, block, vocab]: what the loop computed before
    full = torch.nn.functional.cross_entropy(
        logits.flatten(0, 1), y.flatten(), ignore_index=IGNORE, reduction="sum"
    )
    assert total.item() == pytest.approx(full.item(), rel=1e-5)
    for got, want in zip(grads, torch.autograd.grad(full, list(model.parameters())), strict=True):
        assert torch.allclose(got, want, atol=1e-5)


def test_precision_resolves_per_device():
    from passlm.model.fast import bf16_matmuls

    cpu = torch.device("cpu")
    assert resolve_precision("fp32", cpu) == torch.float32
    assert resolve_precision("bf16", cpu) == torch.bfloat16
    assert resolve_precision("auto", torch.device("cuda")) == torch.bfloat16
    assert resolve_precision("auto", cpu) == (torch.bfloat16 if bf16_matmuls() else torch.float32)
    assert resolve_precision("auto", cpu, 256) == resolve_precision("auto", cpu)
    assert resolve_precision("auto", cpu, 128) == torch.float32  # cpu-tiny: fp32 is faster
    assert resolve_precision("bf16", cpu, 128) == torch.bfloat16
    with pytest.raises(ValueError, match="precision"):
        TrainConfig(precision="fp16")


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_resume_gives_the_same_losses(tmp_path, tokenizer, examples, tiny, precision):
    config = _config(precision=precision)
    straight = train(examples, tokenizer, tiny, config, tmp_path / "a")
    first = train(examples, tokenizer, tiny, config, tmp_path / "b", stop_after=3)
    assert first.step == 3 and first.model_dir is None
    second = train(examples, tokenizer, tiny, config, tmp_path / "b")
    assert second.step == 6 and len(second.losses) == 3
    resumed = first.losses + second.losses
    assert resumed == pytest.approx(straight.losses, abs=1e-6)
    a, _ = ckpt.load(straight.model_dir)
    b, _ = ckpt.load(second.model_dir)
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.allclose(p, q, atol=1e-6), name


def test_trains_from_a_data_set_file_and_refuses_a_foreign_checkpoint(
    tmp_path, tokenizer, examples, tiny
):
    rows = [
        Example(f"h{i}", split, "sample.c", f"f{i}", p, a, 30, 20, 10, "-Oz", 0)
        for i, ((p, a), split) in enumerate(
            zip(examples, ("train", "train", "test", "train"), strict=True)
        )
    ]
    path = tmp_path / "data.parquet"
    write_dataset(path, rows, {"llvm_version": "19.1.7"})
    result = train(path, tokenizer, tiny, _config(steps=2), tmp_path / "run")
    meta = ckpt.read_meta(result.model_dir)
    assert meta["examples"] == 3 and meta["llvm_version"] == "19.1.7"
    with pytest.raises(InputError, match="other lr"):
        train(path, tokenizer, tiny, _config(steps=2, lr=1e-3), tmp_path / "run")
    with pytest.raises(InputError, match="other data hash"):
        train(examples, tokenizer, tiny, _config(steps=2), tmp_path / "run")
    other = tmp_path / "other.parquet"
    write_dataset(other, rows[:1], {"llvm_version": "18.1.8"})
    mixed = train([path, other, path], tokenizer, tiny, _config(steps=2), tmp_path / "mixed")
    meta = ckpt.read_meta(mixed.model_dir)  # train splits in order, the first's metadata
    train_pairs = [(r.prompt, r.answer) for r in rows if r.split == "train"]
    assert meta["examples"] == 7 and meta["llvm_version"] == "19.1.7"
    assert meta["data_hash"] == data_hash(train_pairs + train_pairs[:1] + train_pairs)
    # an --ir-only data set follows the others, its pass lists without loss
    ir_only = train(
        [path], tokenizer, tiny, _config(steps=2), tmp_path / "ir-only", ir_only=[other]
    )
    meta = ckpt.read_meta(ir_only.model_dir)
    assert meta["examples"] == 4
    assert meta["data_hash"] == data_hash(
        [(*t, True) for t in train_pairs] + [(*train_pairs[0], False)]
    )
    assert meta["data_hash"] != data_hash(train_pairs + train_pairs[:1])


def test_gain_repeats_train_each_example_by_what_its_best_list_saves(
    tmp_path, tokenizer, examples, tiny
):
    assert [gain_repeats_of(20, c, 2) for c in (20, 19, 17, 0, 25)] == [1, 2, 3, 3, 1]
    assert gain_repeats_of(20, 0, 0) == 1
    # functions whose best lists save 0, 1, 3 and 15 instructions over -Oz
    rows = [
        Example(f"h{i}", "train", "sample.c", f"f{i}", p, a, 30, 20, best, "-Oz", 0)
        for i, ((p, a), best) in enumerate(zip(examples, (20, 19, 17, 5), strict=True))
    ]
    path = tmp_path / "data.parquet"
    write_dataset(path, rows, {"llvm_version": "19.1.7"})
    ir_only = tmp_path / "ir.parquet"
    write_dataset(ir_only, rows[3:], {"llvm_version": "19.1.7"})
    result = train(
        path, tokenizer, tiny, _config(steps=2), tmp_path / "run",
        gain_repeats=2, ir_only=[ir_only],
    )  # fmt: skip
    meta = ckpt.read_meta(result.model_dir)
    pairs = [(p, a, True) for p, a in examples]
    repeated = [pairs[0], *[pairs[1]] * 2, *[pairs[2]] * 3, *[pairs[3]] * 3]
    # the --ir-only file's examples, which teach no choice of list, come once
    assert meta["examples"] == 10 and meta["gain_repeats"] == 2
    assert meta["data_hash"] == data_hash([*repeated, (*examples[3], False)])
    plain = train(path, tokenizer, tiny, _config(steps=2), tmp_path / "plain")
    meta = ckpt.read_meta(plain.model_dir)
    assert meta["examples"] == 4 and "gain_repeats" not in meta
    with pytest.raises(InputError, match="gain_repeats must be 0 or more"):
        train(path, tokenizer, tiny, _config(steps=2), tmp_path / "bad", gain_repeats=-1)
    with pytest.raises(InputError, match="needs data set files"):
        train(examples, tokenizer, tiny, _config(steps=2), tmp_path / "bad", gain_repeats=2)
    assert not (tmp_path / "bad").exists()


def _train_rows(examples) -> list[Example]:
    """One training example per (prompt, answer) pair."""
    return [
        Example(f"h{i}", "train", "sample.c", f"f{i}", p, a, 30, 20, 10, "-Oz", 0)
        for i, (p, a) in enumerate(examples)
    ]


def test_a_model_records_the_prompt_it_was_trained_on(tmp_path, tokenizer, examples, tiny):
    rows = _train_rows(examples)
    plain, oz = tmp_path / "plain.parquet", tmp_path / "oz.parquet"
    summary = tmp_path / "summary.parquet"
    write_dataset(plain, rows, {"llvm_version": "19.1.7"})
    write_dataset(oz, rows, {"llvm_version": "19.1.7", "prompt": fmt.PROMPT_OZ})
    write_dataset(summary, rows, {"llvm_version": "19.1.7", "prompt": fmt.PROMPT_OZ_SUMMARY})
    with pytest.raises(InputError, match="different prompts"):
        train([oz, plain, summary], tokenizer, tiny, _config(steps=2), tmp_path / "mixed")
    with pytest.raises(InputError, match="different prompts"):  # --ir-only too
        train(oz, tokenizer, tiny, _config(steps=2), tmp_path / "mixed", ir_only=[summary])
    run = train(oz, tokenizer, tiny, _config(steps=2), tmp_path / "oz-run")
    assert ckpt.read_meta(run.model_dir)["prompt"] == fmt.PROMPT_OZ
    assert fmt.PLAIN_PROMPTS not in ckpt.read_meta(run.model_dir)
    assert ckpt.load(run.model_dir)[0].passlm_prompt == fmt.PROMPT_OZ
    assert not ckpt.load(run.model_dir)[0].passlm_plain_prompts
    # plain prompts beside one context kind, in either order: the model reads both
    for data in ([plain, summary], [summary, plain]):
        run = train(data, tokenizer, tiny, _config(steps=2), tmp_path / f"both-{data[0].stem}")
        meta = ckpt.read_meta(run.model_dir)
        assert (meta["prompt"], meta[fmt.PLAIN_PROMPTS]) == (fmt.PROMPT_OZ_SUMMARY, True)
        both = ckpt.load(run.model_dir)[0]
        assert (both.passlm_prompt, both.passlm_plain_prompts) == (fmt.PROMPT_OZ_SUMMARY, True)
    run = train(plain, tokenizer, tiny, _config(steps=2), tmp_path / "plain-run")
    assert "prompt" not in ckpt.read_meta(run.model_dir)  # plain models' records are unchanged
    assert ckpt.load(run.model_dir)[0].passlm_prompt == fmt.PROMPT_PLAIN
    assert ckpt.load(run.model_dir)[0].passlm_names == NAMES_KEPT
    meta_file = run.model_dir / ckpt.META_FILE
    meta_file.write_text(json.dumps({**ckpt.read_meta(run.model_dir), "prompt": "asm"}))
    with pytest.raises(InputError, match="unknown prompt 'asm'"):
        ckpt.load(run.model_dir)


def test_a_model_records_whether_it_reads_names_anonymized(tmp_path, tokenizer, examples, tiny):
    rows = _train_rows(examples)
    kept, anon = tmp_path / "kept.parquet", tmp_path / "anon.parquet"
    write_dataset(kept, rows, {"llvm_version": "19.1.7"})
    write_dataset(anon, rows, {"llvm_version": "19.1.7", "names": NAMES_ANONYMIZED})
    with pytest.raises(InputError, match="names anonymized and kept"):
        train([anon, kept], tokenizer, tiny, _config(steps=2), tmp_path / "mixed")
    with pytest.raises(InputError, match="names anonymized and kept"):  # --ir-only too
        train(anon, tokenizer, tiny, _config(steps=2), tmp_path / "mixed", ir_only=[kept])
    run = train(anon, tokenizer, tiny, _config(steps=2), tmp_path / "anon-run")
    assert ckpt.read_meta(run.model_dir)["names"] == NAMES_ANONYMIZED
    assert ckpt.load(run.model_dir)[0].passlm_names == NAMES_ANONYMIZED
    meta_file = run.model_dir / ckpt.META_FILE
    meta_file.write_text(json.dumps({**ckpt.read_meta(run.model_dir), "names": "hashed"}))
    with pytest.raises(InputError, match="unknown names 'hashed'"):
        ckpt.load(run.model_dir)


def test_load_errors(tmp_path):
    with pytest.raises(InputError, match="no such model directory"):
        ckpt.load(tmp_path / "missing")
    (tmp_path / "weights.safetensors").write_bytes(b"")
    with pytest.raises(InputError, match=r"weights\.safetensors: a file, not a model directory"):
        ckpt.load(tmp_path / "weights.safetensors")
    (tmp_path / "weights.safetensors").unlink()
    with pytest.raises(InputError, match=r"no config\.json"):
        ckpt.load(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(InputError, match="cannot load model"):
        ckpt.load(tmp_path)
