"""The official `openai` Python SDK as the client of a running `exllm serve`.

`exllm serve` (the binary from EXLLM_BIN) runs in front of a fake OpenAI upstream: a small
http.server in a thread that answers with the recorded bodies in EXLLM_FIXTURES (the shared
fixtures folder, `openai/` inside it). Nothing here talks to a real provider.
"""

import json
import os
import pathlib
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import openai
import pytest

FIXTURES = pathlib.Path(
    os.environ.get(
        "EXLLM_FIXTURES",
        pathlib.Path(__file__).resolve().parents[4] / "shared" / "fixtures",
    )
)
UPSTREAM_KEY = "sk-upstream-sentinel-9f2e"


def fixture(name: str) -> str:
    return (FIXTURES / "openai" / name).read_text()


def jsonl_to_sse(jsonl: str) -> bytes:
    frames = [f"data: {line}\n\n" for line in jsonl.splitlines() if line.strip()]
    return ("".join(frames) + "data: [DONE]\n\n").encode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FakeOpenAI(BaseHTTPRequestHandler):
    """Answers like api.openai.com, choosing the recording by what the request asks for."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # keep pytest output clean
        pass

    def send(self, status: int, body: bytes, content_type: str = "application/json"):
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path.endswith("/models"):
            body = {
                "object": "list",
                "data": [
                    {"id": "gpt-4o-mini", "object": "model", "created": 1, "owned_by": "openai"}
                ],
            }
            return self.send(200, json.dumps(body).encode())
        self.send(404, b'{"error":{"message":"no route","type":"invalid_request_error","param":null,"code":null}}')

    def do_POST(self):
        length = int(self.headers.get("content-length", "0"))
        request = json.loads(self.rfile.read(length) or b"{}")
        if self.headers.get("authorization") != f"Bearer {UPSTREAM_KEY}":
            return self.send(401, fixture("error-401-invalid-api-key.json").encode())
        if self.path.endswith("/embeddings"):
            inputs = request["input"] if isinstance(request["input"], list) else [request["input"]]
            body = {
                "object": "list",
                "data": [
                    {"object": "embedding", "index": i, "embedding": [0.5, -1.0, float(i)]}
                    for i in range(len(inputs))
                ],
                "model": request["model"],
                "usage": {"prompt_tokens": 2 * len(inputs), "total_tokens": 2 * len(inputs)},
            }
            return self.send(200, json.dumps(body).encode())
        last = request["messages"][-1]
        text = last.get("content") if isinstance(last.get("content"), str) else ""
        if text == "TRIGGER_429":
            return self.send(429, fixture("error-429-insufficient-quota.json").encode())
        if text == "TRIGGER_400":
            return self.send(400, fixture("error-400-unsupported-parameter.json").encode())
        if request.get("stream"):
            sse = jsonl_to_sse(fixture("stream-text-gpt41nano-with-usage.chunks.jsonl"))
            return self.send(200, sse, "text/event-stream")
        if request.get("tools") and last["role"] == "user":
            return self.send(200, fixture("chat-completion-tool-call-gpt4o.response.json").encode())
        self.send(200, fixture("chat-completion-text-gpt41nano.json").encode())


def start_gateway(extra_env=None):
    """Starts the fake upstream and `exllm serve` in front of it; yields the base URL."""
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), FakeOpenAI)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    port = free_port()
    home = tempfile.mkdtemp(prefix="exllm-py-")
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": home,
        "XDG_DATA_HOME": os.path.join(home, "data"),
        "OPENAI_API_KEY": UPSTREAM_KEY,
        "OPENAI_BASE_URL": f"http://127.0.0.1:{upstream.server_address[1]}/v1",
        "EXLLM_DATABASE_URL": "memory://",
        "EXLLM_LOG": "info",
        **(extra_env or {}),
    }
    log_path = os.path.join(home, "gateway.log")
    log = open(log_path, "w")
    binary = os.environ.get("EXLLM_BIN", "exllm")
    proc = subprocess.Popen(
        [binary, "serve", "--bind", f"127.0.0.1:{port}"],
        env=env,
        cwd=home,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=1) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            log.close()
            pytest.fail("exllm serve did not start:\n" + pathlib.Path(log_path).read_text())
        time.sleep(0.1)
    yield base
    # SIGTERM: a graceful shutdown ends the process promptly when nothing is running.
    proc.terminate()
    try:
        assert proc.wait(timeout=10) == 0
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("exllm serve did not stop on SIGTERM")
    finally:
        log.close()
        upstream.shutdown()
    logs = pathlib.Path(log_path).read_text()
    assert "request_id" in logs, "no access log line"
    assert UPSTREAM_KEY not in logs, "the provider key appeared in the gateway's log"


@pytest.fixture(scope="module")
def gateway():
    yield from start_gateway()


MASTER_KEY = "sk-master-test-1234"


@pytest.fixture(scope="module")
def keyed_gateway():
    yield from start_gateway({"EXLLM_MASTER_KEY": MASTER_KEY})


@pytest.fixture
def client(gateway):
    # No SDK retries: each test sees exactly what the gateway answered.
    return openai.OpenAI(base_url=gateway + "/v1", api_key="unused", max_retries=0)


def test_chat(client):
    reply = client.chat.completions.with_raw_response.create(
        model="openai/gpt-4.1-nano",
        messages=[{"role": "user", "content": "Invent a holiday"}],
    )
    assert reply.headers["x-exllm-provider"] == "openai"
    assert reply.headers.get("x-request-id")
    completion = reply.parse()
    assert completion.object == "chat.completion"
    assert "Galaxy Day" in completion.choices[0].message.content
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.completion_tokens == 363
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + 363


def test_streaming_with_usage(client):
    stream = client.chat.completions.create(
        model="openai/gpt-4.1-nano",
        messages=[{"role": "user", "content": "Invent a holiday"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text, usage, finish = [], None, None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.content:
                text.append(choice.delta.content)
            if choice.finish_reason:
                finish = choice.finish_reason
    assert len("".join(text)) > 100
    assert finish == "stop"
    assert usage is not None and usage.total_tokens == 316


def test_tool_call_round_trip(client):
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_image",
                "description": "Get an image",
                "parameters": {"type": "object", "properties": {}},
            },
        }
    ]
    messages = [{"role": "user", "content": "What food is in the image?"}]
    first = client.chat.completions.create(
        model="openai/gpt-4o", messages=messages, tools=tools, tool_choice="auto"
    )
    message = first.choices[0].message
    assert first.choices[0].finish_reason == "tool_calls"
    call = message.tool_calls[0]
    assert call.function.name == "get_image"
    assert isinstance(call.function.arguments, str)
    assert json.loads(call.function.arguments) == {}
    messages.append(message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": call.id, "content": '{"food": "pizza"}'})
    second = client.chat.completions.create(model="openai/gpt-4o", messages=messages, tools=tools)
    assert second.choices[0].message.content
    assert second.choices[0].finish_reason == "stop"


def test_models(client):
    ids = [m.id for m in client.models.list()]
    assert "openai/gpt-4o-mini" in ids
    assert any(i.startswith("mock/") for i in ids)


def test_embeddings(client):
    # The SDK asks for base64 by default and decodes it itself.
    result = client.embeddings.create(model="openai/text-embedding-3-small", input=["a", "b"])
    assert [d.index for d in result.data] == [0, 1]
    assert result.data[1].embedding == [0.5, -1.0, 1.0]
    assert result.usage.prompt_tokens == 4
    floats = client.embeddings.create(
        model="openai/text-embedding-3-small", input="a", encoding_format="float"
    )
    assert floats.data[0].embedding == [0.5, -1.0, 0.0]


def test_upstream_429_is_a_rate_limit_error(client):
    with pytest.raises(openai.RateLimitError) as raised:
        client.chat.completions.create(
            model="openai/gpt-4o", messages=[{"role": "user", "content": "TRIGGER_429"}]
        )
    assert raised.value.status_code == 429
    assert UPSTREAM_KEY not in str(raised.value)


def test_upstream_400_is_a_bad_request_error_even_when_streaming(client):
    for stream in (False, True):
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(
                model="openai/gpt-4o",
                messages=[{"role": "user", "content": "TRIGGER_400"}],
                stream=stream,
            )


def test_unknown_model_is_not_found(client):
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(
            model="nosuch/model", messages=[{"role": "user", "content": "hi"}]
        )


def test_a_budget_exhausted_key_is_refused(keyed_gateway):
    request = urllib.request.Request(
        keyed_gateway + "/admin/keys",
        data=json.dumps({"name": "broke", "budget_usd": "0"}).encode(),
        headers={"authorization": f"Bearer {MASTER_KEY}", "content-type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as r:
        key = json.loads(r.read())["key"]
    client = openai.OpenAI(base_url=keyed_gateway + "/v1", api_key=key, max_retries=0)
    with pytest.raises(openai.RateLimitError) as raised:
        client.chat.completions.create(
            model="openai/gpt-4.1-nano", messages=[{"role": "user", "content": "hi"}]
        )
    assert raised.value.code == "insufficient_quota"
    # A key the gateway never issued: 401.
    stranger = openai.OpenAI(base_url=keyed_gateway + "/v1", api_key="sk-exllm-unknown", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        stranger.chat.completions.create(
            model="openai/gpt-4.1-nano", messages=[{"role": "user", "content": "hi"}]
        )
