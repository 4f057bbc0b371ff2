"""Pass lists from a model served over HTTP (an OpenAI-compatible ``/v1/completions``, e.g. vLLM).

The server gets the prompt the served model was trained on, as a local copy of it would
(``reads``: its directory's :func:`~passlm.model.checkpoint.prompt_format`, names anonymized or
the -Oz context included; plain without one). With the room the served model has
(:func:`prompt_room`: its tokenizer and context length, from the same directory, shortened to
the length the server reports for it, :func:`served_context`), a prompt the
-Oz context makes too long is sent plain, as a local model gets it, and a function too long
either way is not sent (it is left to -Oz, as locally): a server refuses a whole request for one
prompt over its length. Its text is parsed like local output, so an invalid or
missing list falls back to ``-Oz``. A reply that is not a completions reply is a clear error
naming the endpoint, never a traceback.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from passlm.data.format import COUNTS_FROM, parse_answer
from passlm.errors import InputError, PasslmError
from passlm.llvm.backend import Compiler
from passlm.llvm.passes import PassList
from passlm.optimize.prompts import model_prompts
from passlm.optimize.strategies import OZ_BACKUP, PREDICT, SAMPLE, Strategy, unique_lists

TIMEOUT = 300.0
MODELS_TIMEOUT = 10.0
MAX_TOKENS = 96


class EndpointError(PasslmError):
    """The HTTP model endpoint could not be reached or replied with something unusable."""


@dataclass(frozen=True)
class PromptRoom:
    """How long a prompt the served model takes: its tokenizer and context length."""

    tokenizer: Any
    context: int

    def at_most(self, context: int | None) -> PromptRoom:
        """This room, no longer than ``context`` (what the server allows; None: no limit)."""
        if context is None or context >= self.context:
            return self
        return PromptRoom(self.tokenizer, context)

    def fits(self, prompt: str) -> bool:
        """Whether ``prompt`` (after ``<s>``) leaves room for the answer asked for."""
        tokens = 1 + len(self.tokenizer.encode(prompt, add_special_tokens=False).ids)
        return tokens + MAX_TOKENS <= self.context


def prompt_room(model_dir: str | Path) -> PromptRoom | None:
    """The served model's :class:`PromptRoom`, from the ``tokenizer.json`` and ``config.json``
    of its directory (None where either is missing: prompts are then sent as they are)."""
    from passlm.model.tokenizer import load_tokenizer

    model_dir = Path(model_dir)
    tokenizer_file, config_file = model_dir / "tokenizer.json", model_dir / "config.json"
    if not tokenizer_file.is_file() or not config_file.is_file():
        return None
    try:
        context = json.loads(config_file.read_text(encoding="utf-8"))["max_position_embeddings"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{config_file}: no max_position_embeddings ({exc})") from None
    if not isinstance(context, int) or context < 1:
        raise InputError(f"{config_file}: max_position_embeddings {context!r} is not a length")
    return PromptRoom(load_tokenizer(tokenizer_file), context)


def served_context(url: str, model: str) -> int | None:
    """The context length the server gives ``model`` (vLLM's ``/v1/models`` lists it as
    ``max_model_len``, which ``--max-model-len`` may set below the model's own), or None where
    the server does not say: then the model directory's length is all there is to go by. Never
    an error: a server that cannot be asked fails clearly on the completions request."""
    base = completions_url(url).removesuffix("/completions")
    try:
        with urllib.request.urlopen(base + "/models", timeout=MODELS_TIMEOUT) as reply:
            listing = json.loads(reply.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None
    cards = listing.get("data") if isinstance(listing, dict) else None
    for card in cards if isinstance(cards, list) else []:
        if isinstance(card, dict) and card.get("id") == model:
            length = card.get("max_model_len")
            return length if isinstance(length, int) and length > 0 else None
    return None


def completions_url(url: str) -> str:
    """``http://host:8000`` -> ``http://host:8000/v1/completions`` (a full URL is kept)."""
    url = url.rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise EndpointError(f"{url}: the endpoint must be an http:// or https:// URL")
    if url.endswith("/completions"):
        return url
    return url + ("/completions" if url.endswith("/v1") else "/v1/completions")


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode("utf-8"),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as reply:
            raw = reply.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read()[:200].decode("utf-8", errors="replace").replace("\n", " ")
        raise EndpointError(f"{url}: HTTP {exc.code} {exc.reason}: {detail}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise EndpointError(f"{url}: cannot reach the endpoint ({reason})") from None
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise EndpointError(f"{url}: the reply is not JSON") from None


def _texts(url: str, reply: dict, expected: int) -> list[str]:
    choices = reply.get("choices") if isinstance(reply, dict) else None
    if not isinstance(choices, list):
        raise EndpointError(f"{url}: the reply has no 'choices' list (not a completions API?)")
    if len(choices) != expected:
        raise EndpointError(f"{url}: expected {expected} choices, the reply has {len(choices)}")
    texts: list[str | None] = [None] * expected
    for position, choice in enumerate(choices):
        if not isinstance(choice, dict) or not isinstance(choice.get("text"), str):
            raise EndpointError(f"{url}: choice {position} has no 'text'")
        index = choice.get("index", position)
        if not isinstance(index, int) or not 0 <= index < expected or texts[index] is not None:
            raise EndpointError(f"{url}: choice {position} has a bad 'index' ({index!r})")
        texts[index] = choice["text"]
    return texts  # type: ignore[return-value]


def propose_remote(
    url: str,
    model: str,
    irs: Sequence[str],
    strategy: Strategy,
    *,
    reads: Any = None,
    compiler: Compiler | None = None,
    room: PromptRoom | None = None,
) -> list[list[PassList]]:
    """Candidate lists per function from the endpoint (one request for all functions).

    ``reads`` is what the served model reads (a :class:`~passlm.model.checkpoint.PromptFormat`
    or a loaded model; None, like any object that says nothing, reads plain prompts with names
    kept); ``compiler`` makes the -Oz context where it reads one. ``room``: what fits the served
    model (a context prompt too long is sent plain; a function too long either way, not at all).
    """
    endpoint = completions_url(url)
    n = strategy.n if strategy.kind == SAMPLE else 1
    # predict's prompt for predict and oz-backup, as propose gives them (plain where read)
    prompts = model_prompts(
        reads, irs, compiler, compiles=strategy.kind not in (PREDICT, OZ_BACKUP),
        fits_in=room.fits if room is not None else None,
    )  # fmt: skip
    if room is not None:  # too long even plain: a local model would answer nothing either
        prompts = [p if p is None or room.fits(p) else None for p in prompts]
    # None: -Oz failed (for the context), or too long for the served model
    asked = [i for i, prompt in enumerate(prompts) if prompt is not None]
    out: list[list[PassList]] = [[] for _ in irs]
    if not asked:
        return out
    body = {
        "model": model,
        "prompt": [prompts[i] for i in asked],
        "max_tokens": MAX_TOKENS,
        "n": n,
        "temperature": strategy.temperature if strategy.kind == SAMPLE else 0.0,
        "seed": strategy.seed,
        "stop": [COUNTS_FROM],  # the pass list is all the strategies read
    }
    texts = _texts(endpoint, _post(endpoint, body), len(asked) * n)
    for k, i in enumerate(asked):
        out[i] = unique_lists([parse_answer(t).passes for t in texts[k * n : (k + 1) * n]])
    return out
