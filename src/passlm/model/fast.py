"""A lean forward pass for Llama models on the CPU, for pass-list decoding.

``predict`` reads one pass list: a prompt of a few hundred tokens, then a handful of decoding
steps; Priority Sampling branches from the prompt again and again. Through ``transformers``
much of that time goes to work the task does not need: logits for every prompt position, three
separate Q/K/V and two gate/up matmuls per layer, oneDNN repacking every weight on every call
(for one new token that costs more than the product), a deep copy of the key-value cache per
branch, the generation loop's bookkeeping, and fp32 matmuls where the CPU has bf16 ones.

:class:`FastLlama` holds the same weights rearranged for that: fused QKV and gate-up
projections packed once, in the dtype the model is stored in where the CPU multiplies it
natively (:func:`compute_dtype`); a preallocated key-value cache that a branch truncates; RoPE
tables computed once; the last layer's attention output and MLP at the positions that give
logits only (its keys and values still cover every token); and logits of the last position
only, of only the tokens a constraint allows when it says. In fp32 it computes what
``transformers`` does (tests compare logits and decoded answers); :func:`fast_model` says
None for what it does not cover (scaled RoPE, biases, other architectures, a GPU), and callers
keep the ``transformers`` path then.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F

from passlm.model.config import EOS_ID


def bf16_matmuls() -> bool:
    """Whether this CPU multiplies bf16 matrices natively (else bf16 would be emulated, slower)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


class FastLlama:
    """Inference-only Llama on one sequence at a time: ``prefill`` a prompt, then ``extend``.

    The matmul weights are held in ``dtype``; norms, RoPE, attention and the residual stream
    stay in fp32, as under ``torch.autocast`` (attention and norms on a single row are also
    faster in fp32 on the CPU).
    """

    def __init__(self, model, dtype: torch.dtype) -> None:
        cfg = model.config
        self.dtype = dtype
        self.heads = int(cfg.num_attention_heads)
        self.kv_heads = int(getattr(cfg, "num_key_value_heads", None) or self.heads)
        self.head_dim = int(getattr(cfg, "head_dim", None) or cfg.hidden_size // self.heads)
        self.eps = float(cfg.rms_norm_eps)
        self.context = int(cfg.max_position_embeddings)
        self.vocab = int(cfg.vocab_size)
        base = model.model

        self.packed = _packs(dtype)

        def mat(*ts: torch.Tensor) -> torch.Tensor:
            return self._pack(torch.cat([t.detach() for t in ts]).to(dtype).contiguous())

        def vec(t: torch.Tensor) -> torch.Tensor:
            return t.detach().float().contiguous()

        self.embed = base.embed_tokens.weight.detach().float()
        self.layers = [
            (
                vec(layer.input_layernorm.weight),
                mat(
                    layer.self_attn.q_proj.weight,
                    layer.self_attn.k_proj.weight,
                    layer.self_attn.v_proj.weight,
                ),
                mat(layer.self_attn.o_proj.weight),
                vec(layer.post_attention_layernorm.weight),
                mat(layer.mlp.gate_proj.weight, layer.mlp.up_proj.weight),
                mat(layer.mlp.down_proj.weight),
            )
            for layer in base.layers
        ]
        self.norm = vec(base.norm.weight)
        self.head_weight = model.lm_head.weight.detach().to(dtype).contiguous()
        self.head = self._pack(self.head_weight)
        self._head_rows: dict[tuple[int, ...], tuple[torch.Tensor, torch.Tensor]] = {}
        theta = _rope_theta(cfg)
        inv = 1.0 / theta ** (
            torch.arange(0, self.head_dim, 2, dtype=torch.float32) / self.head_dim
        )
        freqs = torch.outer(torch.arange(self.context, dtype=torch.float32), inv)
        emb = torch.cat([freqs, freqs], dim=-1)
        self.cos, self.sin = emb.cos(), emb.sin()  # [context, head_dim]
        self.keys = self.values = None
        self.length = 0
        self.ids: list[int] = []  # the tokens in the cache (the first `length` are valid)
        self.last_answer: list[int] = []  # the draft for the next greedy answer (generate)

    def _pack(self, weight: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._reorder_linear_weight(weight) if self.packed else weight

    def _linear(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """``x @ weight.T`` in ``dtype``, the result in ``dtype`` too (the caller widens it
        where fp32 is needed; adding it to the fp32 residual stream widens it in the add)."""
        if self.packed:
            return torch.ops.mkldnn._linear_pointwise(
                x.to(self.dtype), weight, None, "none", [], ""
            )
        return F.linear(x.to(self.dtype), weight)

    def _norm(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x, (x.shape[-1],), weight, self.eps)

    @staticmethod
    def _rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        half = x.shape[-1] // 2
        return x * cos + torch.cat([-x[..., half:], x[..., :half]], dim=-1) * sin

    def _forward(self, ids: list[int], rows: Sequence[list[int] | None]) -> list[torch.Tensor]:
        """Run ``ids`` after the cached tokens; the logits after each of the last ``len(rows)``
        of them (of that position's ``rows`` only, the others -inf, where not None)."""
        start, n = self.length, len(ids)
        if not ids or not 1 <= len(rows) <= len(ids):
            raise ValueError(f"cannot run {len(ids)} tokens for logits at {len(rows)} positions")
        if start + n > self.context:
            raise ValueError(f"{start + n} tokens do not fit the model's context of {self.context}")
        h, hd, kvh = self.heads, self.head_dim, self.kv_heads
        r = len(rows)
        x = self.embed[torch.tensor(ids)]  # [n, hidden]
        cos, sin = self.cos[start : start + n], self.sin[start : start + n]  # [n, hd]
        positions = torch.arange(start + n)

        def attention_mask(first: int) -> tuple[torch.Tensor | None, bool]:
            # queries at positions first.. over every key: a prompt attends causally; each new
            # token after a cache to everything before it and to itself (a mask offset by the
            # cache); one row at the end needs no mask
            if start + n - first == 1:
                return None, False
            if first == 0:
                return None, True
            return positions[None, :] <= torch.arange(first, start + n)[:, None], False

        mask, causal = attention_mask(start)
        last_layer = len(self.layers) - 1
        for i, (n1, qkv_w, o_w, n2, gu_w, down_w) in enumerate(self.layers):
            qkv = self._linear(self._norm(x, n1), qkv_w).float()
            qkv = qkv.view(n, h + 2 * kvh, hd).transpose(0, 1)
            qk = self._rope(qkv[: h + kvh], cos, sin)  # [heads, n, hd]: RoPE on q and k at once
            self.keys[i, :, start : start + n] = qk[h:]
            self.values[i, :, start : start + n] = qkv[h + kvh :]
            keys, values = self.keys[i, :, : start + n], self.values[i, :, : start + n]
            if kvh != h:
                keys = keys.repeat_interleave(h // kvh, dim=0)
                values = values.repeat_interleave(h // kvh, dim=0)
            queries = qk[:h]
            if i == last_layer and r < n:
                # the last layer's keys and values cover every token, but only the rows that
                # give logits need its attention output and MLP: the rest is never read
                queries, x = queries[:, n - r :], x[n - r :]
                mask, causal = attention_mask(start + n - r)
            att = F.scaled_dot_product_attention(
                queries.unsqueeze(0), keys.unsqueeze(0), values.unsqueeze(0),
                attn_mask=mask, is_causal=causal,
            )[0]  # fmt: skip
            x = x + self._linear(att.transpose(0, 1).reshape(x.shape[0], h * hd), o_w)
            # the MLP's activation in the matmul dtype, as under autocast: no round trip
            gate, up = self._linear(self._norm(x, n2), gu_w).chunk(2, dim=-1)
            x = x + self._linear(F.silu(gate) * up, down_w)
        self.length = start + n
        del self.ids[start:]
        self.ids.extend(ids)
        last = self._norm(x[x.shape[0] - r :], self.norm)
        out = []
        for i, want in enumerate(rows):
            if want is None:
                out.append(self._linear(last[i : i + 1], self.head)[0].float())
                continue
            index, head = self._rows(want)
            logits = torch.full((self.vocab,), float("-inf"))
            logits[index] = self._linear(last[i : i + 1], head)[0].float()
            out.append(logits)
        return out

    def _rows(self, rows: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        key = tuple(rows)
        if key not in self._head_rows:
            if len(self._head_rows) > 64:  # a constraint asks for a handful of row sets
                self._head_rows.clear()
            index = torch.tensor(key)
            self._head_rows[key] = (index, self._pack(self.head_weight[index].contiguous()))
        return self._head_rows[key]

    @torch.inference_mode()
    def prefill(self, ids: list[int], rows: list[int] | None = None) -> torch.Tensor:
        """Start a new sequence with ``ids``; the logits after its last token (of ``rows``
        only, the rest -inf, when given: a constrained step needs no others)."""
        return self.run(ids, [rows], new=True)[0]

    @torch.inference_mode()
    def extend(self, ids: list[int], rows: list[int] | None = None) -> torch.Tensor:
        """Append tokens to the sequence; the logits after the last one (as for ``prefill``)."""
        return self.run(ids, [rows])[0]

    @torch.inference_mode()
    def run(
        self, ids: list[int], rows: Sequence[list[int] | None], *, new: bool = False
    ) -> list[torch.Tensor]:
        """Append ``ids`` (start a new sequence with them if ``new``); the logits after each of
        the last ``len(rows)`` tokens, each of its own ``rows`` (all where None)."""
        if new:
            if self.keys is None:
                shape = (len(self.layers), self.kv_heads, self.context, self.head_dim)
                self.keys = torch.zeros(shape)
                self.values = torch.zeros(shape)
            # a sequence the cache already holds (scoring an answer right after decoding it)
            # is not run again, only the tokens that give logits; a partial match (another
            # function's prompt, sharing its first lines) is, so that a prompt's numbers do not
            # depend on the other prompts decoded before it
            keep = len(ids) - len(rows)
            self.length = keep if keep > 0 and _shared(self.ids[: self.length], ids) >= keep else 0
            ids = ids[self.length :]
        return self._forward(ids, rows)

    def truncate(self, length: int) -> None:
        """Forget every token after the first ``length`` (a branch restarts from there)."""
        if not 0 <= length <= self.length:
            raise ValueError(f"cannot truncate {self.length} tokens to {length}")
        self.length = length


def _shared(a: Sequence[int], b: Sequence[int]) -> int:
    """The length of the common prefix of ``a`` and ``b``."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _packs(dtype: torch.dtype) -> bool:
    """Whether oneDNN takes weights packed once into its blocked layout (what
    ``torch.compile`` does for CPU inference): without it, every matmul repacks its weight,
    which for one row costs more than the product. Checked against ``F.linear`` on this build,
    and declined (plain matmuls) if anything differs or is missing."""
    try:
        weight = torch.randn(24, 16, generator=torch.Generator().manual_seed(0)).to(dtype)
        x = torch.randn(3, 16, generator=torch.Generator().manual_seed(1)).to(dtype)
        packed = torch.ops.mkldnn._reorder_linear_weight(weight)
        got = torch.ops.mkldnn._linear_pointwise(x, packed, None, "none", [], "")
        return bool(torch.allclose(got.float(), F.linear(x, weight).float(), atol=1e-2, rtol=1e-2))
    except (AttributeError, RuntimeError, NotImplementedError):
        return False


def _rope_theta(cfg) -> float:
    params = getattr(cfg, "rope_parameters", None) or {}
    theta = params.get("rope_theta", getattr(cfg, "rope_theta", None))
    return float(theta if theta is not None else 10000.0)


def fast_model(model) -> FastLlama | None:
    """A :class:`FastLlama` for ``model`` on the CPU, or None where it does not apply.

    Kept on the model object and rebuilt only when its weights change (a model validated
    while it trains), so the copy of the weights is made once per version. Setting
    ``model.passlm_fast = False`` keeps that model on ``transformers``.
    """
    if not getattr(model, "passlm_fast", True):
        return None
    params = getattr(model, "_passlm_params", None)
    if params is None:  # walking the module tree costs more than a short decode: once
        params = model._passlm_params = list(model.parameters())
    # an in-place update bumps _version; a move or cast (.to) gives new storage
    version = tuple((p._version, p.data_ptr()) for p in params)
    cached = getattr(model, "_passlm_fast", None)
    if cached is not None and cached[0] == version:
        return cached[1]
    fast = None
    cfg = model.config
    # transformers 5 keeps RoPE settings in rope_parameters (rope_scaling is an alias); 4.x
    # has rope_theta and an optional rope_scaling
    rope = getattr(cfg, "rope_parameters", None) or getattr(cfg, "rope_scaling", None) or {}
    rope_type = (
        rope.get("rope_type", rope.get("type", "default")) if isinstance(rope, dict) else "?"
    )
    if (
        getattr(cfg, "model_type", None) == "llama"
        and next(model.parameters()).device.type == "cpu"
        and rope_type == "default"
        and not getattr(cfg, "attention_bias", False)
        and not getattr(cfg, "mlp_bias", False)
        and getattr(cfg, "hidden_act", "silu") == "silu"
    ):
        fast = FastLlama(model, compute_dtype(model))
    model._passlm_fast = (version, fast)
    return fast


def compute_dtype(model) -> torch.dtype:
    """bf16 for a model stored in bf16 (the shipped one) on a CPU with bf16 matmuls, else fp32.

    ``load`` widens bf16 weights to fp32 for ``transformers`` and notes the stored dtype on the
    model. Computing in bf16 uses exactly the stored weights and rounds activations,
    which moves logits by a few hundredths (a test bounds it) for twice the matmul speed.
    """
    stored = getattr(model, "passlm_stored_dtype", None)
    return torch.bfloat16 if stored == torch.bfloat16 and bf16_matmuls() else torch.float32


class Decoded(NamedTuple):
    """A greedy answer's tokens and their log-probability."""

    tokens: list[int]
    logprob: float


def greedy(
    fast: FastLlama,
    ids: list[int],
    budget: int,
    *,
    constraint=None,
    stopped: Callable[[list[int]], bool] | None = None,
    draft: Sequence[int] = (),
) -> Decoded:
    """The greedy answer after ``ids``: at most ``budget`` tokens, ending at ``</s>`` or where
    ``stopped(answer)`` says; with its log-probability, counted as Priority Sampling counts it
    (renormalized over the tokens the constraint allows; a forced token costs nothing).

    A token the constraint forces (the list's opener, the closing backtick after the longest
    list) is taken without asking the model, and goes through it with the next one: the prompt
    and the opener are one forward pass.

    ``draft`` is a guess of the answer (say the previous function's): where the answer so far
    agrees with it, its next tokens go through the model in the same forward pass, with the
    logits after each, and every one the greedy choice confirms saves a decoding step; at the
    first it does not, the cache is cut back to the confirmed ones. The answer is the same with
    any draft (speculative decoding with a fixed guess).
    """
    answer: list[int] = []
    logprob = 0.0
    pending = list(ids)  # tokens chosen but not yet run through the model
    known: list[torch.Tensor] = []  # logits after the answer so far, then after each of `ahead`
    ahead: list[int] = []  # draft tokens run after the answer so far, not yet confirmed
    started = False

    def rows(prefix: list[int]) -> list[int] | None:
        return constraint.allowed(prefix) if constraint is not None else None

    while len(answer) < budget:
        allowed = rows(answer)
        if allowed is not None and len(allowed) == 1:
            token = allowed[0]
        else:
            if not known:
                guess: list[int] = []
                if list(draft[: len(answer)]) == answer:
                    cached = fast.length if started else 0
                    room = min(budget - len(answer) - 1, fast.context - cached - len(pending))
                    guess = list(draft[len(answer) : len(answer) + max(0, room)])
                wants = [allowed] + [rows(answer + guess[: j + 1]) for j in range(len(guess))]
                known = fast.run(pending + guess, wants, new=not started)
                pending, ahead, started = [], guess, True
            token = int(known[0].argmax())
            logprob += float(torch.log_softmax(known[0].float(), dim=-1)[token])
        answer.append(token)
        if ahead and token == ahead[0]:  # the draft was right: the next logits are known
            ahead.pop(0)
            known.pop(0)
        else:
            if ahead:
                fast.truncate(fast.length - len(ahead))
                ahead = []
            known = []
            pending.append(token)
        if token == EOS_ID or (stopped is not None and stopped(answer)):
            break
    if ahead:  # the cache holds the prompt and the answer, as without a draft
        fast.truncate(fast.length - len(ahead))
    return Decoded(answer, logprob)
