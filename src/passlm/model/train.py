"""The training loop: a fresh ``LlamaForCausalLM``, AdamW, warm-up + cosine, checkpoints.

One loop for CPU and CUDA, under bf16 autocast where the hardware multiplies bf16 natively (CUDA,
CPUs with AVX512-BF16 or AMX; fp32 elsewhere), with the output layer applied only at the answer
tokens that carry loss. The data of step ``s`` is a function of ``s``
and the seed (:mod:`passlm.model.packing`), and checkpoints hold the weights, AdamW moments,
schedule and RNG, so a run stopped at any checkpoint and resumed produces the same losses as
one that never stopped. ``train_log.jsonl`` gets one line per step (loss, learning rate,
tokens/s) and per evaluation.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from passlm.corpus.splits import TRAIN
from passlm.data.dataset import Example, names_of, prompt_of, read_dataset
from passlm.data.format import PLAIN_PROMPTS, PROMPT_PLAIN
from passlm.errors import InputError
from passlm.files import atomic_write
from passlm.llvm.names import NAMES_KEPT
from passlm.model.checkpoint import (
    lineage_of,
    load_checkpoint,
    read_meta,
    save_checkpoint,
    save_model,
)
from passlm.model.config import ModelPreset, llama_config
from passlm.model.packing import IGNORE, PackedStream, encode_example
from passlm.model.tokenizer import tokenizer_hash

CHECKPOINT_DIR = "checkpoint"
MODEL_DIR = "model"
LOG_FILE = "train_log.jsonl"
# Settings a resumed run may change: where and in what precision it runs, how often it saves
# and evaluates.
_MAY_CHANGE = frozenset({"device", "precision", "checkpoint_every", "eval_every"})
PRECISIONS = ("auto", "bf16", "fp32")


@dataclass(frozen=True)
class TrainConfig:
    """How to train; the model's shape is the preset's."""

    steps: int = 1000  # optimizer steps; the schedule ends here
    batch_size: int = 4  # blocks per step
    block_size: int = 1024  # tokens per block (packed examples)
    lr: float = 1e-3  # peak learning rate, reached after warm-up
    warmup_steps: int = 100  # linear warm-up from 0
    min_lr_ratio: float = 0.1  # cosine decays to lr * this (Llama: 1/10 of peak)
    weight_decay: float = 0.1  # on matrices only, not norms or embeddings
    beta1: float = 0.9  # AdamW first moment
    beta2: float = 0.95  # AdamW second moment (Llama; steadier than 0.999 at small batches)
    grad_clip: float = 1.0  # global gradient-norm clip; 0 turns it off
    eval_every: int = 0  # call eval_fn every this many steps (0: only at the end)
    checkpoint_every: int = 100  # save a resumable checkpoint every this many steps
    seed: int = 0  # initialization, data order
    device: str = "auto"  # "auto" (cuda if available), "cpu", "cuda", "cuda:1", ...
    precision: str = "auto"  # matmuls: "auto" (bf16 where native), "bf16" (autocast), "fp32"

    def __post_init__(self) -> None:
        # each message names the fields as they are spelled here and gives their values; the
        # CLI renames the fields to its options (cli.train_cmd)
        checks = (
            (self.steps >= 1, f"steps {self.steps}: must be at least 1"),
            (self.batch_size >= 1, f"batch_size {self.batch_size}: must be at least 1"),
            (self.block_size >= 2, f"block_size {self.block_size}: must be at least 2"),
            (
                0 <= self.warmup_steps <= self.steps,
                f"warmup_steps {self.warmup_steps}: must be between 0 and steps ({self.steps})",
            ),
            (self.lr > 0, f"lr {self.lr:g}: must be positive"),
            (0 <= self.min_lr_ratio <= 1, f"min_lr_ratio {self.min_lr_ratio:g}: must be in [0, 1]"),
            (self.weight_decay >= 0, f"weight_decay {self.weight_decay:g}: must be >= 0"),
            (0 <= self.beta1 < 1, f"beta1 {self.beta1:g}: must be in [0, 1)"),
            (0 <= self.beta2 < 1, f"beta2 {self.beta2:g}: must be in [0, 1)"),
            (self.grad_clip >= 0, f"grad_clip {self.grad_clip:g}: must be >= 0"),
            (self.eval_every >= 0, f"eval_every {self.eval_every}: must be >= 0"),
            (
                self.checkpoint_every >= 1,
                f"checkpoint_every {self.checkpoint_every}: must be at least 1",
            ),
            (
                self.precision in PRECISIONS,
                f"precision {self.precision}: must be one of {', '.join(PRECISIONS)}",
            ),
        )
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    def lr_factor(self, step: int) -> float:
        """Multiplier of ``lr`` at optimizer step ``step`` (0-based)."""
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        span = max(1, self.steps - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / span)
        cosine = 0.5 * (1 + math.cos(math.pi * progress))
        return self.min_lr_ratio + (1 - self.min_lr_ratio) * cosine


@dataclass(frozen=True)
class TrainResult:
    """What a call to :func:`train` did."""

    step: int  # optimizer steps done in total (resumed ones included)
    losses: tuple[float, ...]  # training loss of each step this call ran
    model_dir: Path | None  # the final model, once ``steps`` are done


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


# Below this width a CPU's bf16 matmuls are too small to pay for their casts: cpu-tiny (128)
# trains at 9,688 tokens/s in bf16 and 11,798 in fp32, cpu-small (256) at 4,383 and 2,290
# (benchmarks/train_throughput.py).
MIN_BF16_CPU_HIDDEN = 256


def resolve_precision(
    precision: str, device: torch.device, hidden_size: int | None = None
) -> torch.dtype:
    """The autocast dtype of the matmuls: ``auto`` is bf16 on CUDA and on CPUs that multiply
    bf16 natively (there cpu-small and cpu-base train 2.2-2.7x faster than in fp32; elsewhere
    bf16 would be emulated) unless the model is narrower than ``MIN_BF16_CPU_HIDDEN``, else
    fp32. Weights, optimizer state and the loss stay fp32."""
    if precision == "fp32":
        return torch.float32
    if precision == "bf16" or device.type == "cuda":
        return torch.bfloat16
    if hidden_size is not None and hidden_size < MIN_BF16_CPU_HIDDEN:
        return torch.float32
    from passlm.model.fast import bf16_matmuls

    return torch.bfloat16 if device.type == "cpu" and bf16_matmuls() else torch.float32


def answer_loss(model, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Summed cross-entropy of the next-token targets ``y`` ([batch, block], ``IGNORE`` where
    there is no loss) given inputs ``x``, and the number of targets. The output layer runs on
    the target positions only: answers are 4% of the tokens of pass-list-only data and about
    half with the optimized IR, and full [batch, block, vocab] logits are costly at any share."""
    hidden = model.model(input_ids=x).last_hidden_state  # [batch, block, hidden]
    keep = y != IGNORE
    logits = model.lm_head(hidden[keep])  # [targets, vocab]
    total = F.cross_entropy(logits.float(), y[keep], reduction="sum")
    return total, int(keep.sum())


def data_hash(examples: Sequence[Example] | Sequence[tuple]) -> str:
    """SHA-256 (16 hex digits) of the prompts and answers, in order (and of which answers'
    pass lists carry no loss, where any do not)."""
    h = hashlib.sha256()
    for e in examples:
        prompt, answer = (e.prompt, e.answer) if isinstance(e, Example) else e[:2]
        for part in (prompt, answer):
            h.update(len(part).to_bytes(8, "little"))
            h.update(part.encode("utf-8"))
        if not isinstance(e, Example) and len(e) > 2 and not e[2]:
            h.update(b"\x00no-list-loss")
    return h.hexdigest()[:16]


def gain_repeats_of(oz_count: int, count: int, cap: int) -> int:
    """How many times per epoch ``--gain-repeats cap`` trains an example of a function that
    has ``oz_count`` instructions after -Oz and ``count`` after the autotuner's best list (the
    data set's ``best_count``: what a choice of list can win there, whichever list the answer
    names): once, and once more per instruction saved, up to ``cap`` more (``cap`` 0: once)."""
    return 1 + min(cap, max(0, oz_count - count))


def _train_split(
    path: str | Path, list_loss: bool, gain_repeats: int = 0
) -> tuple[list[tuple[str, str, bool]], dict]:
    """The (prompt, answer, list_loss) triples of a data set file's train split, and its
    metadata; with ``gain_repeats``, each example as often as :func:`gain_repeats_of` says,
    its copies side by side (the stream shuffles them apart)."""
    examples, meta = read_dataset(path)
    return [
        (e.prompt, e.answer, list_loss)
        for e in examples
        if e.split == TRAIN
        for _ in range(gain_repeats_of(e.oz_count, e.best_count, gain_repeats))
    ], meta


def _load_examples(
    data, ir_only: Sequence[str | Path] = (), gain_repeats: int = 0
) -> tuple[list[tuple[str, str, bool]], dict[str, Any]]:
    """(prompt, answer, list_loss) triples of the train split, and the data set's metadata.
    ``data`` is a data set file, a list of them (their train splits in that order, the first
    one's metadata: a file named twice counts twice), or examples; the train splits of the
    ``ir_only`` files follow, with no loss on their pass lists. ``gain_repeats``: the data set
    files' examples repeated by what the autotuner saved on them (:func:`gain_repeats_of`); the
    ``ir_only`` ones, which teach no choice of list, once."""
    if isinstance(data, str | Path):
        data = [data]
    triples: list[tuple[str, str, bool]]
    meta: dict[str, Any] = {}
    if data and all(isinstance(d, str | Path) for d in data):
        parts = [_train_split(path, True, gain_repeats) for path in data]
        triples = [t for part, _ in parts for t in part]
        meta = parts[0][1]
        metas = {str(path): m for path, (_, m) in zip(data, parts, strict=True)}
    else:
        if gain_repeats:  # (prompt, answer) pairs carry no counts to repeat them by
            raise InputError("gain_repeats needs data set files, whose examples carry counts")
        triples = [
            (e.prompt, e.answer, True) if isinstance(e, Example) else (*e[:2], True) for e in data
        ]
        metas = {}
    for path in ir_only:
        part, part_meta = _train_split(path, False)
        triples += part
        metas[str(path)] = part_meta
    # every file, --ir-only ones too, must have been made for the prompt the model will read,
    # except that plain prompts may join one context kind: the model then reads both
    prompts = {path: prompt_of(m) for path, m in metas.items()}
    names = {path: names_of(m) for path, m in metas.items()}
    contexts = set(prompts.values()) - {PROMPT_PLAIN}
    for what, kinds, distinct in (
        ("different prompts", prompts, contexts),
        ("names anonymized and kept", names, set(names.values())),
    ):
        if len(distinct) > 1:
            raise InputError(
                f"the data sets were made with {what}: "
                + ", ".join(f"{path} ({kind})" for path, kind in kinds.items())
            )
    if contexts and PROMPT_PLAIN in prompts.values():
        meta = {**meta, "prompt": next(iter(contexts)), PLAIN_PROMPTS: True}
    return triples, meta


def _load_initial_weights(model: torch.nn.Module, init: Path) -> None:
    """Copy a saved model's weights into ``model`` (same shape), in ``model``'s dtype."""
    from passlm.model.checkpoint import load as load_model

    source, _ = load_model(init)
    theirs = source.state_dict()
    mine = model.state_dict()
    wrong = [k for k, v in mine.items() if k not in theirs or theirs[k].shape != v.shape]
    if wrong:
        raise InputError(
            f"{init}: its weights do not fit this preset and tokenizer "
            f"({len(wrong)} tensors differ, e.g. {wrong[0]})"
        )
    with torch.no_grad():
        for k, v in mine.items():
            v.copy_(theirs[k].to(v.dtype))


def _optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    # Decay matrices only: norms are scales, and weight decay on them fights the normalization.
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    rest = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": rest, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=config.lr, betas=(config.beta1, config.beta2))


def _read_log(path: Path, upto: int) -> list[str]:
    """Log lines of steps up to ``upto`` (later ones belong to a run that was cut off)."""
    if not path.is_file():
        return []
    return [
        line
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip() and json.loads(line).get("step", 0) <= upto
    ]


def _check_same_run(path: Path, info: dict[str, Any]) -> None:
    """A checkpoint only continues the run that made it: same preset, config, data, tokenizer."""
    saved = read_meta(path)
    for key in ("preset", "data_hash", "tokenizer"):
        if key in saved and saved[key] != info[key]:
            raise InputError(
                f"{path}: checkpoint has another {key.replace('_', ' ')}; "
                "train into a new directory or without resuming"
            )
    before = saved.get("train_config", {})
    changed = sorted(
        k
        for k, v in info["train_config"].items()
        if k in before and before[k] != v and k not in _MAY_CHANGE
    )
    if changed:
        raise InputError(f"{path}: checkpoint was trained with other {', '.join(changed)}")


def train(
    data: str | Path | Sequence[str | Path] | Sequence[Example] | Sequence[tuple[str, str]],
    tokenizer,
    preset: ModelPreset,
    config: TrainConfig,
    out_dir: str | Path,
    *,
    resume: bool = True,
    eval_fn: Callable[[torch.nn.Module, int], dict[str, Any] | None] | None = None,
    stop_after: int | None = None,
    meta: dict[str, Any] | None = None,
    on_step: Callable[[dict[str, Any]], None] | None = None,
    init: str | Path | None = None,
    ir_only: Sequence[str | Path] = (),
    gain_repeats: int = 0,
) -> TrainResult:
    """Train ``preset`` on ``data`` (the train split of a data set file or of several, or
    examples) into ``out_dir``.

    ``out_dir/checkpoint`` is saved every ``checkpoint_every`` steps and continued from when
    ``resume``; ``out_dir/model`` is written once ``config.steps`` are done. ``stop_after``:
    end this call after that many steps in total (the schedule still runs to ``config.steps``),
    for runs split into time slices. ``eval_fn(model, step)`` runs every ``eval_every`` steps
    and at the end, in eval mode; a dict it returns is logged. ``meta`` is added to the model's
    ``passlm.json`` (the command, LLVM version...). ``on_step(record)`` sees each step's log
    record and each evaluation's (progress display). ``init``: start from this model's weights
    (fine-tuning; its shape must be ``preset``'s and its vocabulary the tokenizer's).
    ``ir_only``: data set files whose train splits are trained on too, without loss on their
    pass lists (they teach the counts and the optimized IR, not the choice of list).
    ``gain_repeats``: train each example of ``data``'s files once more per instruction the
    autotuner's best list saved over -Oz on its function, up to that many more
    (:func:`gain_repeats_of`), so the loss weighs functions as the benchmarks do, by the
    instructions a choice of list can save there.
    """
    if gain_repeats < 0:
        raise InputError(f"gain_repeats must be 0 or more, not {gain_repeats}")
    pairs, data_meta = _load_examples(data, ir_only, gain_repeats)  # refused before any file
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)

    model_config = llama_config(preset, tokenizer.get_vocab_size())
    from transformers import LlamaForCausalLM

    model = LlamaForCausalLM(model_config).to(device)
    prompt = prompt_of(data_meta)
    model.passlm_prompt = prompt  # validation renders the prompts the model trains on
    plain_too = bool(data_meta.get(PLAIN_PROMPTS))
    model.passlm_plain_prompts = plain_too
    names = names_of(data_meta)
    model.passlm_names = names
    if init is not None:
        _load_initial_weights(model, Path(init))
    model.train()
    optimizer = _optimizer(model, config)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, config.lr_factor)
    stream = PackedStream(
        [encode_example(tokenizer, p, a, list_loss=keep) for p, a, keep in pairs],
        config.block_size,
        config.seed,
    )
    matmul_dtype = resolve_precision(config.precision, device, preset.hidden_size)
    info = {
        "preset": asdict(preset),
        "train_config": asdict(config),
        "data_hash": data_hash(pairs),
        "examples": len(pairs),
        **({"gain_repeats": gain_repeats} if gain_repeats else {}),
        "tokenizer": tokenizer_hash(tokenizer),
        "parameters": sum(p.numel() for p in model.parameters()),
        "matmul_dtype": str(matmul_dtype).removeprefix("torch."),
        **{k: data_meta[k] for k in ("llvm_version", "passlm_version") if k in data_meta},
        **({"prompt": prompt} if prompt != PROMPT_PLAIN else {}),
        **({PLAIN_PROMPTS: True} if plain_too else {}),
        **({"names": names} if names != NAMES_KEPT else {}),
        **(meta or {}),
        **({"init": str(init), "lineage": lineage_of(init)} if init is not None else {}),
    }

    step = 0
    if resume:
        _check_same_run(out / CHECKPOINT_DIR, info)
        step = load_checkpoint(out / CHECKPOINT_DIR, model, optimizer, scheduler) or 0
    log_path = out / LOG_FILE
    atomic_write(log_path, "".join(f"{line}\n" for line in _read_log(log_path, step)))
    end = config.steps if stop_after is None else min(config.steps, stop_after)
    autocast = torch.autocast(
        device.type, dtype=torch.bfloat16, enabled=matmul_dtype == torch.bfloat16
    )

    def evaluate(at: int, log) -> None:
        if eval_fn is None:
            return
        model.eval()
        with torch.no_grad():
            result = eval_fn(model, at)
        model.train()
        if result:
            record = {"step": at, "eval": result}
            log.write(json.dumps(record) + "\n")
            log.flush()
            if on_step is not None:
                on_step(record)

    losses: list[float] = []
    with log_path.open("a", encoding="utf-8") as log:
        while step < end:
            start = time.perf_counter()
            ids, labels = stream.batch(step, config.batch_size)  # [batch, block + 1]
            x = torch.from_numpy(ids[:, :-1]).to(device)  # inputs [batch, block]
            y = torch.from_numpy(labels[:, 1:]).to(device)  # next-token targets [batch, block]
            with autocast:
                total, targets = answer_loss(model, x, y)
            # Mean over answer tokens in the batch; a batch of prompts only has zero loss.
            loss = total / max(1, targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            lr = optimizer.param_groups[0]["lr"]
            optimizer.step()
            scheduler.step()
            step += 1
            value = loss.item()
            losses.append(value)
            seconds = time.perf_counter() - start
            record = {
                "step": step,
                "loss": value,
                "lr": lr,
                "tokens": int(x.numel()),
                "answer_tokens": targets,
                "tokens_per_s": x.numel() / seconds,
            }
            log.write(json.dumps(record) + "\n")
            log.flush()
            if on_step is not None:
                on_step(record)
            if not math.isfinite(value):
                raise FloatingPointError(f"training loss is {value} at step {step}")
            if step % config.checkpoint_every == 0 or step == end:
                save_checkpoint(
                    out / CHECKPOINT_DIR,
                    model,
                    tokenizer,
                    optimizer,
                    scheduler,
                    step,
                    {**info, "steps": step},
                )
            if (config.eval_every and step % config.eval_every == 0) or step == config.steps:
                evaluate(step, log)

    model_dir = None
    if step >= config.steps:
        model_dir = out / MODEL_DIR
        save_model(model, tokenizer, model_dir, {**info, "steps": step})
    model.eval()
    return TrainResult(step, tuple(losses), model_dir)
