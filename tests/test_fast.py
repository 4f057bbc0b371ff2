"""The lean CPU forward pass (passlm.model.fast) computes what transformers computes."""

from __future__ import annotations

import pytest
import torch

from passlm.data import format as fmt
from passlm.model import config as mc
from passlm.model import tokenizer as tk
from passlm.model.constrained import PassListConstraint, priority_sample
from passlm.model.fast import FastLlama, fast_model, greedy
from passlm.model.generate import HEADER, PASSES, generate

pytestmark = pytest.mark.usefixtures("one_thread")


def _llama(vocab: int = 300, **changes):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    base = mc.llama_config(mc.load_preset("cpu-tiny"), vocab).to_dict()
    base.update({"max_position_embeddings": 256, **changes})
    return LlamaForCausalLM(LlamaConfig(**base)).eval()


def _hf_logits(model, ids: list[int]) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids])).logits[0]


@pytest.mark.parametrize("kv_heads", [None, 2])  # plain multi-head, and grouped-query
def test_prefill_and_extend_match_transformers(kv_heads):
    model = _llama(**({"num_key_value_heads": kv_heads} if kv_heads else {}))
    ids = torch.randint(3, 300, (40,), generator=torch.Generator().manual_seed(1)).tolist()
    ref = _hf_logits(model, ids)
    fast = FastLlama(model, torch.float32)
    torch.testing.assert_close(fast.prefill(ids[:30]), ref[29], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(fast.extend(ids[30:31]), ref[30], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(fast.extend(ids[31:36]), ref[35], atol=1e-4, rtol=1e-4)
    fast.truncate(31)  # a branch: back to 31 tokens, then a different continuation
    other = [*ids[:31], 7, 8, 9]
    torch.testing.assert_close(
        fast.extend([7, 8, 9]), _hf_logits(model, other)[-1], atol=1e-4, rtol=1e-4
    )
    rows = [5, 17, 200]
    some = fast.extend([11], rows)
    full = _hf_logits(model, [*other, 11])[-1]
    torch.testing.assert_close(some[rows], full[rows], atol=1e-4, rtol=1e-4)
    assert torch.isinf(some).sum() == 300 - len(rows)
    # logits at several positions, from the start and after a cache (a draft's check)
    many = fast.run(ids[:30], [None] * 4, new=True)
    for got, want in zip(many, ref[26:30], strict=True):
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    many = fast.run(ids[30:36], [None, rows, None])
    torch.testing.assert_close(many[0], ref[33], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(many[1][rows], ref[34][rows], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(many[2], ref[35], atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="cannot truncate"):
        fast.truncate(1000)
    with pytest.raises(ValueError, match="do not fit"):
        fast.extend(list(range(3, 250)))


def test_bf16_matmuls_stay_close_to_fp32():
    model = _llama().to(torch.bfloat16).float()  # bf16-rounded weights, as shipped
    ids = list(range(3, 120))
    ref = _hf_logits(model, ids)[-1]
    got = FastLlama(model, torch.bfloat16).prefill(ids)
    assert (got - ref).abs().max() < 0.02 * ref.abs().max() + 0.02
    assert got.argmax() == ref.argmax()


def test_fast_model_is_kept_rebuilt_or_declined():
    model = _llama()
    first = fast_model(model)
    assert isinstance(first, FastLlama) and fast_model(model) is first
    ids = list(range(3, 20))
    before = first.prefill(ids).clone()
    with torch.no_grad():
        model.model.layers[0].mlp.down_proj.weight.mul_(3.0)  # the weights changed: rebuilt
    second = fast_model(model)
    assert second is not first
    torch.testing.assert_close(
        second.prefill(ids), _hf_logits(model, ids)[-1], atol=1e-4, rtol=1e-4
    )
    assert not torch.allclose(second.prefill(ids), before)
    model.passlm_fast = False
    assert fast_model(model) is None
    scaled = _llama(rope_scaling={"rope_type": "linear", "factor": 2.0})
    assert fast_model(scaled) is None  # RoPE scaling is left to transformers


@pytest.fixture(scope="module")
def prompts(sample_functions) -> list[str]:
    irs = sorted(sample_functions.values(), key=len)[:4]
    return [fmt.render_prompt(ir) for ir in irs]


@pytest.fixture(scope="module")
def ir_tokenizer(prompts):
    answers = [fmt.render_answer("-mem2reg -instcombine -Oz", 20, 10)]
    return tk.train_tokenizer((prompts + answers) * 3, vocab_size=640)


def test_decoding_through_the_fast_path_equals_transformers(prompts, ir_tokenizer):
    """Greedy lists, headers and priority samples: the same with and without the fast path."""
    model = _llama(vocab=ir_tokenizer.get_vocab_size(), max_position_embeddings=2048)
    constraint = PassListConstraint(ir_tokenizer)

    def decode():
        return (
            [g.text for g in generate(model, ir_tokenizer, prompts, until=PASSES, constraint=constraint)],
            [g.text for g in generate(model, ir_tokenizer, prompts, until=HEADER, max_new_tokens=24)],
            [
                [(s.text, round(s.logprob, 3)) for s in priority_sample(
                    model, ir_tokenizer, p, 6, constraint=constraint)]
                for p in prompts
            ],
        )  # fmt: skip

    fast = decode()
    assert getattr(model, "_passlm_fast", (None, None))[1] is not None  # it took the fast path
    model.passlm_fast = False
    slow = decode()
    assert fast == slow
    for samples in fast[2]:
        assert len(samples) == 6 and all(fmt.parse_answer(t).passes is not None for t, _ in samples)


def test_a_draft_changes_the_steps_not_the_greedy_answer(prompts, ir_tokenizer):
    """Right, wrong, partly right and too long drafts: the same answer; a right one saves
    forward passes, and the cache ends where it would without one."""
    model = _llama(vocab=ir_tokenizer.get_vocab_size(), max_position_embeddings=2048)
    fast = FastLlama(model, torch.float32)
    constraint = PassListConstraint(ir_tokenizer)
    calls = []
    run = fast.run
    fast.run = lambda ids, rows, **kw: calls.append(len(rows)) or run(ids, rows, **kw)
    for cons in (None, constraint):
        ids = [mc.BOS_ID, *ir_tokenizer.encode(prompts[0], add_special_tokens=False).ids]
        calls.clear()
        plain = greedy(fast, ids, 12, constraint=cons).tokens
        plain_calls, plain_length = len(calls), fast.length
        assert plain_calls > 1
        wrong = [t + 1 for t in plain]
        drafts = [plain, [*plain, 5, 6, 7], plain[:3] + wrong[3:], wrong, plain[:1]]
        for draft in drafts:
            calls.clear()
            assert greedy(fast, ids, 12, constraint=cons, draft=draft).tokens == plain
            assert fast.length == plain_length
        calls.clear()
        greedy(fast, ids, 12, constraint=cons, draft=plain)
        assert len(calls) == 1  # the whole answer confirmed in the prompt's forward pass


def test_a_prompt_in_the_cache_is_not_run_again():
    """prefill reuses the cached prefix: the same logits, only the new tokens run."""
    model = _llama()
    fast = FastLlama(model, torch.float32)
    ids = list(range(3, 60))
    first = fast.prefill(ids).clone()
    ran = []
    forward = fast._forward
    fast._forward = lambda toks, rows: ran.append(len(toks)) or forward(toks, rows)
    torch.testing.assert_close(fast.prefill(ids), first)  # the last token runs for its logits
    shorter = fast.prefill(ids[:-5])  # held too
    torch.testing.assert_close(shorter, _hf_logits(model, ids[:-5])[-1], atol=1e-4, rtol=1e-4)
    longer = fast.prefill([*ids, 70, 71])  # not all held: run whole
    torch.testing.assert_close(longer, _hf_logits(model, [*ids, 70, 71])[-1], atol=1e-4, rtol=1e-4)
    other = fast.prefill([*ids[:10], 99])  # all but the last held: that one runs
    torch.testing.assert_close(other, _hf_logits(model, [*ids[:10], 99])[-1], atol=1e-4, rtol=1e-4)
    apart = fast.prefill([*ids[:5], 98, 97])  # shares five of six: a new prompt, run whole
    torch.testing.assert_close(
        apart, _hf_logits(model, [*ids[:5], 98, 97])[-1], atol=1e-4, rtol=1e-4
    )
    assert ran == [1, 1, len(ids) + 2, 1, 7]


def test_greedy_and_scored_answers_carry_priority_samplings_logprob(prompts, ir_tokenizer):
    """The greedy answer's log-probability is the first priority sample's; answer_logprobs
    gives every sample's back, on the fast path and through transformers, and -inf for an
    answer the constraint forbids."""
    from passlm.model.constrained import answer_logprobs

    model = _llama(vocab=ir_tokenizer.get_vocab_size(), max_position_embeddings=2048)
    constraint = PassListConstraint(ir_tokenizer)
    banned = PassListConstraint(ir_tokenizer, frozenset({"instcombine"}))
    outcomes = []
    for fast_path in (True, False):
        model.passlm_fast = fast_path
        got = []
        for prompt in prompts:
            (g,) = generate(model, ir_tokenizer, [prompt], until=PASSES, constraint=constraint)
            samples = priority_sample(model, ir_tokenizer, prompt, 4, constraint=constraint)
            assert g.text == samples[0].text
            if fast_path:
                assert g.logprob == pytest.approx(samples[0].logprob, abs=1e-4)
            else:
                assert g.logprob is None  # transformers' generate does not keep it
            texts = [s.text for s in samples]
            scored = answer_logprobs(model, ir_tokenizer, prompt, texts, constraint=constraint)
            assert scored == pytest.approx([s.logprob for s in samples], abs=1e-4)
            forbidden = "Run passes `-mem2reg -instcombine`"
            (lp,) = answer_logprobs(model, ir_tokenizer, prompt, [forbidden], constraint=banned)
            assert lp == float("-inf")
            got += scored
        outcomes.append(got)
    assert outcomes[0] == pytest.approx(outcomes[1], abs=1e-3)
    long = "x " * 3000
    assert answer_logprobs(model, ir_tokenizer, long, ["Run passes `-Oz`"]) is None


def test_priority_samples_a_filter_keeps_come_in_the_same_order_for_any_n(prompts, ir_tokenizer):
    """With ``keep``, the first k kept samples of a run for n are a run for k's; a filter that
    keeps nothing stops after max_refused."""
    model = _llama(vocab=ir_tokenizer.get_vocab_size(), max_position_embeddings=2048)
    constraint = PassListConstraint(ir_tokenizer)
    every = priority_sample(model, ir_tokenizer, prompts[0], 24, constraint=constraint)

    def odd(sample) -> bool:
        return sum(sample.tokens) % 3 != 0

    wanted = [s for s in every if odd(s)]
    assert 3 <= len(wanted) < len(every)  # the filter drops some and keeps some

    def key(samples):
        return [(s.tokens, round(s.logprob, 3)) for s in samples]

    for k in (1, 2, 3):
        got = priority_sample(model, ir_tokenizer, prompts[0], k, constraint=constraint, keep=odd)
        assert key(got) == key(wanted[:k])
    drawn = []
    none = priority_sample(
        model, ir_tokenizer, prompts[0], 3, constraint=constraint,
        keep=lambda s: drawn.append(s) and False, max_refused=5,
    )  # fmt: skip
    assert none == [] and key(drawn) == key(every[:5])
