"""The OpenAI-compatible endpoint client against a real local HTTP server."""

from __future__ import annotations

import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from passlm.data.format import PLAIN_PROMPTS, PROMPT_OZ, PROMPT_PLAIN, OzContext, render_prompt
from passlm.errors import InputError
from passlm.llvm.backend import InProcessCompiler
from passlm.llvm.names import NAMES_ANONYMIZED, NAMES_KEPT, anonymize
from passlm.llvm.passes import OZ, parse_pass_list
from passlm.model.checkpoint import PromptFormat, prompt_format
from passlm.optimize.endpoint import (
    MAX_TOKENS,
    EndpointError,
    PromptRoom,
    completions_url,
    prompt_room,
    propose_remote,
    served_context,
)
from passlm.optimize.strategies import parse_strategy

from .conftest import FIXTURES, run_passlm


class Server:
    """Answers each POST with the next canned reply (bytes) and keeps the requests."""

    def __init__(self) -> None:
        self.replies: list[tuple[int, bytes]] = []
        self.requests: list[dict] = []
        self.models: bytes | None = None  # GET /v1/models's reply (None: 404)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if outer.models is None or self.path != "/v1/models":
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(outer.models)))
                self.end_headers()
                self.wfile.write(outer.models)

            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                outer.requests.append(json.loads(self.rfile.read(length)))
                status, body = outer.replies.pop(0)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def reply(self, obj, status: int = 200) -> None:
        body = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
        self.replies.append((status, body))


@pytest.fixture
def server():
    s = Server()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


def completions(texts: list[str]) -> dict:
    return {"choices": [{"index": i, "text": t} for i, t in enumerate(texts)]}


def test_urls():
    assert completions_url("http://h:8000") == "http://h:8000/v1/completions"
    assert completions_url("http://h:8000/v1/") == "http://h:8000/v1/completions"
    assert completions_url("https://h/x/v1/completions") == "https://h/x/v1/completions"
    with pytest.raises(EndpointError, match="http:// or https://"):
        completions_url("h:8000")


def test_sampled_lists_come_back_per_function(server):
    server.reply(
        completions(
            [
                "Run passes `-O1 -gvn`",
                "Run passes `-O1 -gvn`",  # a duplicate: one compile, not two
                "Run passes `-nonsense`",  # an invalid list is dropped
                "Run passes `-Oz`",
                "garbage",
                "Run passes `-sroa`",
            ]
        )
    )
    spec = parse_strategy("sample-3", sampling="temperature", temperature=0.7, seed=4)
    lists = propose_remote(server.url, "m", ["define i32 @f() {\nret i32 0\n}\n", "x\n"], spec)
    assert lists == [
        [parse_pass_list("-O1 -gvn")],
        [parse_pass_list("-Oz"), parse_pass_list("-sroa")],
    ]
    (request,) = server.requests
    assert request["n"] == 3 and request["temperature"] == 0.7 and request["seed"] == 4
    assert request["model"] == "m" and len(request["prompt"]) == 2
    assert "define i32 @f()" in request["prompt"][0]


CALLER = """define i32 @caller(i32 %0) {
  %2 = alloca i32, align 4
  store i32 %0, ptr %2, align 4
  %3 = load i32, ptr %2, align 4
  %4 = call i32 @helper(i32 %3)
  ret i32 %4
}

declare i32 @helper(i32)
"""


def test_the_server_gets_the_prompt_the_served_model_reads(server, toolchain):
    server.reply(completions(["Run passes `-sroa`"]))
    anonymized = PromptFormat(PROMPT_PLAIN, NAMES_ANONYMIZED)
    propose_remote(server.url, "m", [CALLER], parse_strategy("oz-backup"), reads=anonymized)
    (sent,) = server.requests[-1]["prompt"]
    assert sent == render_prompt(anonymize(CALLER)) and "@helper" not in sent
    # the -Oz context is compiled for it; a function -Oz cannot compile is not asked about
    server.reply(completions(["Run passes `-sroa`"]))
    with_oz = PromptFormat(PROMPT_OZ, NAMES_KEPT)
    with InProcessCompiler(toolchain) as compiler:
        oz = compiler.run(CALLER, OZ, want_ir=True)
        lists = propose_remote(
            server.url, "m", ["not IR\n", CALLER], parse_strategy("oz-backup"),
            reads=with_oz, compiler=compiler,
        )  # fmt: skip
    assert lists == [[], [parse_pass_list("-sroa")]]
    (sent,) = server.requests[-1]["prompt"]
    assert sent == render_prompt(CALLER, OzContext(oz.count, oz.ir), PROMPT_OZ)
    # a model that reads plain prompts too gets them where nothing is compiled before its
    # answer (predict, oz-backup) and the context where -Oz is compiled anyway (sample-N)
    both = PromptFormat(PROMPT_OZ, NAMES_KEPT, True)
    with InProcessCompiler(toolchain) as compiler:
        for strategy, expected in (
            ("oz-backup", render_prompt(CALLER)),
            ("predict", render_prompt(CALLER)),
            ("sample-1", render_prompt(CALLER, OzContext(oz.count, oz.ir), PROMPT_OZ)),
        ):
            server.reply(completions(["Run passes `-sroa`"]))
            propose_remote(
                server.url, "m", [CALLER], parse_strategy(strategy), reads=both, compiler=compiler
            )
            assert server.requests[-1]["prompt"] == [expected], strategy


def test_a_prompt_too_long_for_the_served_model_is_sent_plain_or_not_at_all(
    server, toolchain, tmp_path
):
    """A server refuses a whole request for one prompt over its length, so the prompts are
    measured first, as a local model measures them."""
    from passlm.model import default_model_dir

    served = tmp_path / "served"
    served.mkdir()
    shutil.copy(default_model_dir() / "tokenizer.json", served / "tokenizer.json")
    (served / "passlm.json").write_text(json.dumps({"prompt": PROMPT_OZ}))
    assert prompt_room(served) is None  # no config.json: prompts go as they are
    with InProcessCompiler(toolchain) as compiler:
        oz = compiler.run(CALLER, OZ, want_ir=True)
    plain = render_prompt(CALLER)
    (served / "config.json").write_text(json.dumps({"max_position_embeddings": 10_000}))
    room = prompt_room(served)
    assert room is not None and room.context == 10_000
    length = 1 + len(room.tokenizer.encode(plain, add_special_tokens=False).ids)
    with_oz = prompt_format(served)
    # room for the plain prompt and the answer, not for the -Oz context: sent plain
    just = PromptRoom(room.tokenizer, length + MAX_TOKENS)
    assert just.fits(plain)
    assert not just.fits(render_prompt(CALLER, OzContext(oz.count, oz.ir), PROMPT_OZ))
    server.reply(completions(["Run passes `-sroa`"]))
    with InProcessCompiler(toolchain) as compiler:
        lists = propose_remote(
            server.url, "m", [CALLER], parse_strategy("sample-1"),
            reads=with_oz, compiler=compiler, room=just,
        )  # fmt: skip
        assert lists == [[parse_pass_list("-sroa")]]
        assert server.requests[-1]["prompt"] == [plain]
        # a token less: not even the plain prompt fits, so nothing is asked and -Oz stands
        asked = len(server.requests)
        short = PromptRoom(room.tokenizer, length + MAX_TOKENS - 1)
        lists = propose_remote(
            server.url, "m", [CALLER], parse_strategy("sample-1"),
            reads=with_oz, compiler=compiler, room=short,
        )  # fmt: skip
    assert lists == [[]] and len(server.requests) == asked
    for bad in ('{"max_position_embeddings": "long"}', "{}", "not json"):
        (served / "config.json").write_text(bad)
        with pytest.raises(InputError, match=r"config\.json"):
            prompt_room(served)


def test_the_servers_own_context_length_shortens_the_room(server):
    """vLLM lists each served model's length (``--max-model-len``) under /v1/models; a server
    that does not say leaves the model directory's length."""
    from passlm.model import default_model_dir

    room = prompt_room(default_model_dir())
    assert room is not None and served_context(server.url, "m") is None  # 404
    cards = {"object": "list", "data": [{"id": "other", "max_model_len": 64},
                                        {"id": "m", "max_model_len": 512}]}  # fmt: skip
    server.models = json.dumps(cards).encode()
    for url in (server.url, server.url + "/v1", server.url + "/v1/completions"):
        assert served_context(url, "m") == 512
    assert served_context(server.url, "absent") is None
    assert room.at_most(512).context == 512 and room.at_most(None) is room
    assert room.at_most(10**6) is room  # never longer than the model's own
    long_prompt = render_prompt("x\n" * 300)
    assert room.fits(long_prompt) and not room.at_most(512).fits(long_prompt)
    for bad in (b"not json", b'{"data": "x"}', b'{"data": [{"id": "m", "max_model_len": "8k"}]}'):
        server.models = bad
        assert served_context(server.url, "m") is None
    assert served_context("http://127.0.0.1:9", "m") is None  # unreachable: the POST says so


def test_a_served_models_prompt_format_comes_from_its_directory(tmp_path):
    (tmp_path / "passlm.json").write_text(json.dumps({"names": "anonymized"}))
    assert prompt_format(tmp_path) == PromptFormat(PROMPT_PLAIN, NAMES_ANONYMIZED)
    (tmp_path / "passlm.json").write_text("{}")  # says nothing: plain, names kept
    assert prompt_format(tmp_path) == PromptFormat(PROMPT_PLAIN, NAMES_KEPT)
    (tmp_path / "passlm.json").write_text(json.dumps({"names": "hashed"}))
    with pytest.raises(InputError, match="unknown names 'hashed'"):
        prompt_format(tmp_path)
    both = {"prompt": PROMPT_OZ, PLAIN_PROMPTS: True}
    (tmp_path / "passlm.json").write_text(json.dumps(both))
    assert prompt_format(tmp_path) == PromptFormat(PROMPT_OZ, NAMES_KEPT, True)
    (tmp_path / "passlm.json").write_text(json.dumps({**both, PLAIN_PROMPTS: "yes"}))
    with pytest.raises(InputError, match="plain_prompts must be true or false"):
        prompt_format(tmp_path)
    with pytest.raises(InputError, match="no such model directory"):
        prompt_format(tmp_path / "missing")


@pytest.mark.parametrize(
    ("reply", "status", "message"),
    [
        (b"<html>not json</html>", 200, "the reply is not JSON"),
        ({"object": "error"}, 200, "no 'choices' list"),
        (completions(["a", "b"]), 200, "expected 1 choices, the reply has 2"),
        ({"choices": [{"index": 0}]}, 200, "choice 0 has no 'text'"),
        ({"choices": [{"index": 5, "text": "x"}]}, 200, "bad 'index'"),
        ({"error": "model not found"}, 404, "HTTP 404"),
    ],
)
def test_malformed_replies_are_clear_errors(server, reply, status, message):
    server.reply(reply, status)
    with pytest.raises(EndpointError, match=message) as info:
        propose_remote(server.url, "m", ["x\n"], parse_strategy("oz-backup"))
    assert str(info.value).startswith(server.url) and "\n" not in str(info.value)


def test_unreachable_endpoint_is_a_clear_error():
    with pytest.raises(EndpointError, match="cannot reach the endpoint"):
        propose_remote("http://127.0.0.1:9", "m", ["x\n"], parse_strategy("predict"))


@pytest.mark.slow
def test_optimize_with_an_endpoint(server, tmp_path):
    functions = 8  # sample.c
    server.reply(completions(["Run passes `-gvn -dse`"] * functions))
    res = run_passlm(
        "optimize", str(FIXTURES / "sample.c"), "--endpoint", server.url, "-s", "oz-backup",
        "-j", "1",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    said = " ".join(res.stderr.split())  # rich wraps at the pipe's 80 columns
    assert "-gvn -dse" in said and "strategy: oz-backup via http://127.0.0.1" in said
    assert "written: per-function lists" in said
    # the shipped model reads names anonymized, so a served copy of it gets them so too
    # (main's module: it calls the others and printf, a library function, kept by name)
    main = next(p for p in server.requests[-1]["prompt"] if "@printf" in p)
    assert "@sum_array" not in main and "@main" not in main and "@g0" in main
    # --model names the served model's directory: a plain one gets the names as they are
    (tmp_path / "passlm.json").write_text("{}")
    server.reply(completions(["Run passes `-gvn -dse`"] * functions))
    plain = run_passlm(
        "optimize", str(FIXTURES / "sample.c"), "--endpoint", server.url, "-s", "oz-backup",
        "--model", str(tmp_path), "-j", "1",
    )  # fmt: skip
    assert plain.returncode == 0, plain.stderr
    assert any("@sum_array" in p and "@printf" in p for p in server.requests[-1]["prompt"])
    missing = run_passlm(
        "optimize", str(FIXTURES / "sample.c"), "--endpoint", server.url,
        "--model", str(tmp_path / "none"),
    )  # fmt: skip
    assert missing.returncode == 2 and "no such model directory" in missing.stderr
    # a server that gives the model a context too short for any prompt is asked nothing
    server.models = json.dumps({"data": [{"id": "passlm", "max_model_len": 100}]}).encode()
    asked = len(server.requests)
    short = run_passlm(
        "optimize", str(FIXTURES / "sample.c"), "--endpoint", server.url, "-s", "oz-backup",
        "--endpoint-model", "passlm", "-j", "1",
    )  # fmt: skip
    assert short.returncode == 0, short.stderr
    assert len(server.requests) == asked and "-gvn -dse" not in short.stderr
    server.models = None
    server.reply(b"oops")
    bad = run_passlm(
        "optimize", str(FIXTURES / "sample.c"), "--endpoint", server.url, "-s", "predict"
    )
    assert bad.returncode == 2 and "the reply is not JSON" in bad.stderr
    assert "Traceback" not in bad.stderr
