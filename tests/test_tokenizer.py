"""The IR tokenizer: exact round trips, whole pass names, save/load, a fast tiny training."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from passlm.data import format as fmt
from passlm.errors import InputError
from passlm.llvm import ir as irmod
from passlm.llvm.passes import ALL_ACTIONS, O_LEVELS
from passlm.model import tokenizer as tk


@pytest.fixture(scope="module")
def ir_texts(sample_ir, sample_functions) -> list[str]:
    """Real normalized IR: the sample module and its functions."""
    return [irmod.normalize(sample_ir), *sample_functions.values()]


@pytest.fixture(scope="module")
def tokenizer(ir_texts):
    start = time.perf_counter()
    tok = tk.train_tokenizer(ir_texts * 5, vocab_size=2048)
    assert time.perf_counter() - start < 10
    return tok


def _round_trips(tok, text: str) -> bool:
    return tok.decode(tok.encode(text, add_special_tokens=False).ids) == text


def test_round_trip_on_real_ir(tokenizer, ir_texts):
    for text in ir_texts:
        assert _round_trips(tokenizer, text)
        prompt = fmt.render_prompt(text)
        answer = fmt.render_answer("-mem2reg -instcombine -Oz", 10, 5, text)
        assert _round_trips(tokenizer, prompt + answer)
    assert tk.chars_per_token(tokenizer, ir_texts) > 4  # far above the 2.02 of Llama 2


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_round_trip_on_any_text(tokenizer, text):
    assert _round_trips(tokenizer, text)


@pytest.mark.parametrize(
    "text",
    [
        '@.str = private constant [12 x i8] c"h\\C3\\A9llo \\E2\\9C\\93\\00"\n',
        '@"f\\22\\5C" = global i8 0 ; comment with ünïcödé ✓ and 漢字\n',
        "\t\r\n  \x00\x7f\ufeff<s></s><pad><code></code> -Oz-O0",
    ],
)
def test_round_trip_on_unicode_and_specials(tokenizer, text):
    assert _round_trips(tokenizer, text)


def test_literal_special_tokens_are_text(tokenizer):
    ids = tokenizer.encode("<s>x</s>", add_special_tokens=False).ids
    assert tokenizer.token_to_id(tk.BOS) not in ids
    assert tokenizer.token_to_id(tk.EOS) not in ids
    assert [tokenizer.token_to_id(t) for t in tk.SPECIAL_TOKENS] == [0, 1, 2]


@pytest.mark.parametrize("name", ALL_ACTIONS)
def test_every_pass_is_one_token_in_context(tokenizer, name):
    spelled = name if name in O_LEVELS else f"-{name}"
    for answer in (
        fmt.render_answer(f"-mem2reg {spelled} -licm", 39, 14),
        fmt.render_answer(f"{spelled} -mem2reg", 39, 14),
        fmt.render_answer(spelled, 39, 14),
    ):
        tokens = tokenizer.encode(answer, add_special_tokens=False).tokens
        assert spelled in tokens or f" {spelled}" in tokens, tokens


def test_format_markers_are_single_tokens(tokenizer):
    for marker in fmt.MARKERS:
        assert tokenizer.encode(marker, add_special_tokens=False).tokens == [marker]
    answer = fmt.render_answer("-mem2reg -instcombine -Oz", 39, 14)
    tokens = tokenizer.encode(answer, add_special_tokens=False).tokens
    assert tokens[:5] == [fmt.PASSES_OPEN, "-mem2reg", " -instcombine", " -Oz", "`"]


def test_vocab_size_is_the_total(ir_texts):
    tok = tk.train_tokenizer(ir_texts, vocab_size=1024)
    assert tok.get_vocab_size() <= 1024
    with pytest.raises(ValueError, match="too small"):
        tk.train_tokenizer(ir_texts, vocab_size=300)


@pytest.mark.parametrize("pre", tk.PRE_TOKENIZERS)
def test_every_pre_tokenizer_round_trips(ir_texts, pre):
    tok = tk.train_tokenizer(ir_texts, vocab_size=1024, pre_tokenizer=pre)
    assert all(_round_trips(tok, t) for t in ir_texts)


def test_save_load(tmp_path, tokenizer, ir_texts):
    path = tmp_path / "tokenizer.json"
    tk.save_tokenizer(tokenizer, path)
    back = tk.load_tokenizer(path)
    assert tk.tokenizer_hash(back) == tk.tokenizer_hash(tokenizer)
    assert back.encode(ir_texts[0]).ids == tokenizer.encode(ir_texts[0]).ids
    assert back.encode("<s>", add_special_tokens=False).tokens != ["<s>"]
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(InputError, match=r"not a tokenizer\.json"):
        tk.load_tokenizer(tmp_path / "bad.json")
    with pytest.raises(InputError, match="no such"):
        tk.load_tokenizer(tmp_path / "missing.json")
