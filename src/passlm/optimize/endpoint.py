"""Pass lists from a model served over HTTP (an OpenAI-compatible ``/v1/completions``, e.g. vLLM).

The server sees the plain prompt a local model would (a served model trained with the -Oz
context, ``passlm dataset make --oz-context``, is not supported: passlm cannot tell); its text
is parsed like local output, so an invalid or missing list falls back to ``-Oz``. A reply that
is not a completions reply is a clear error naming the endpoint, never a traceback.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Sequence

from passlm.data.format import COUNTS_FROM, parse_answer, render_prompt
from passlm.errors import PasslmError
from passlm.llvm.passes import PassList
from passlm.optimize.strategies import SAMPLE, Strategy, unique_lists

TIMEOUT = 300.0
MAX_TOKENS = 96


class EndpointError(PasslmError):
    """The HTTP model endpoint could not be reached or replied with something unusable."""


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
    url: str, model: str, irs: Sequence[str], strategy: Strategy
) -> list[list[PassList]]:
    """Candidate lists per function from the endpoint (one request for all functions)."""
    endpoint = completions_url(url)
    n = strategy.n if strategy.kind == SAMPLE else 1
    body = {
        "model": model,
        "prompt": [render_prompt(ir) for ir in irs],
        "max_tokens": MAX_TOKENS,
        "n": n,
        "temperature": strategy.temperature if strategy.kind == SAMPLE else 0.0,
        "seed": strategy.seed,
        "stop": [COUNTS_FROM],  # the pass list is all the strategies read
    }
    texts = _texts(endpoint, _post(endpoint, body), len(irs) * n)
    return [
        unique_lists([parse_answer(t).passes for t in texts[i * n : (i + 1) * n]])
        for i in range(len(irs))
    ]
