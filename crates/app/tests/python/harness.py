"""Shared pieces of the SDK suites: the fixtures, a fake-upstream base class, the fake OpenAI
upstream, and `run_gateway`, which starts `exllm serve` (EXLLM_BIN) in front of a fake upstream.

Nothing here talks to a real provider: every upstream is an http.server in a thread answering
with the recorded bodies in EXLLM_FIXTURES (the shared fixtures folder).
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

import pytest

FIXTURES = pathlib.Path(
    os.environ.get(
        "EXLLM_FIXTURES",
        pathlib.Path(__file__).resolve().parents[5] / "shared" / "fixtures",
    )
)
UPSTREAM_KEY = "sk-upstream-sentinel-9f2e"


def fixture(name: str) -> str:
    """An OpenAI recording, as text."""
    return (FIXTURES / "openai" / name).read_text()


def fixture_bytes(path: str) -> bytes:
    """Any recording by its path under the fixtures folder, byte for byte."""
    return (FIXTURES / path).read_bytes()


def fixture_json(path: str):
    return json.loads(fixture_bytes(path))


def jsonl_to_sse(jsonl: str) -> bytes:
    frames = [f"data: {line}\n\n" for line in jsonl.splitlines() if line.strip()]
    return ("".join(frames) + "data: [DONE]\n\n").encode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FakeUpstream(BaseHTTPRequestHandler):
    """The common part of the fake providers. Subclasses set `requests = []` of their own: every
    POST is recorded there as (path, headers, body) so tests can check what the gateway sent."""

    protocol_version = "HTTP/1.1"
    requests: list = []

    def log_message(self, *args):  # keep pytest output clean
        pass

    def send(self, status: int, body: bytes, content_type: str = "application/json"):
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def read_json(self):
        length = int(self.headers.get("content-length", "0"))
        request = json.loads(self.rfile.read(length) or b"{}")
        type(self).requests.append((self.path, dict(self.headers), request))
        return request


class FakeOpenAI(FakeUpstream):
    """Answers like api.openai.com, choosing the recording by what the request asks for."""

    requests: list = []

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
        request = self.read_json()
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


def gateway_binary() -> str:
    """EXLLM_BIN, made absolute when it is a relative path: the gateway runs in its own folder."""
    binary = os.environ.get("EXLLM_BIN", "exllm")
    return os.path.abspath(binary) if os.sep in binary else binary


def run_gateway(handler, provider_env, secret, extra_env=None):
    """Starts `handler` as the fake upstream and `exllm serve` in front of it; yields the base URL.

    `provider_env(root)` gives the provider variables for the upstream at `root`
    (`http://127.0.0.1:PORT`); they and `extra_env` are the only configuration. After the
    gateway stops, its log (stdout and stderr) must not contain `secret`, the upstream key.
    """
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    root = f"http://127.0.0.1:{upstream.server_address[1]}"
    port = free_port()
    home = tempfile.mkdtemp(prefix="exllm-py-")
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": home,
        "XDG_DATA_HOME": os.path.join(home, "data"),
        **provider_env(root),
        "EXLLM_DATABASE_URL": "memory://",
        "EXLLM_LOG": "info",
        **(extra_env or {}),
    }
    log_path = os.path.join(home, "gateway.log")
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [gateway_binary(), "serve", "--bind", f"127.0.0.1:{port}"],
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
            upstream.shutdown()
            if proc.poll() is None:
                proc.kill()
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
    assert secret not in logs, "the provider key appeared in the gateway's log"
