"""The official `openai` SDK → `exllm serve` → a fake **Gemini** upstream.

The gateway is configured only with GEMINI_API_KEY and GEMINI_BASE_URL
(`http://127.0.0.1:PORT/v1beta`; the adapter appends `/models/{model}:generateContent` or
`:streamGenerateContent?alt=sse`). The upstream answers with the recordings in
EXLLM_FIXTURES/gemini; SSE recordings are served byte for byte (Gemini frames with CRLF).
"""

import json
from urllib.parse import urlsplit

import openai
import pytest

from harness import FakeUpstream, fixture_bytes, fixture_json, run_gateway

GEMINI_KEY = "AIza-upstream-sentinel-77b3"
MODEL = "gemini/gemini-2.5-flash"

TEXT = fixture_json("gemini/generate-content-text.response.json")
CALLS = fixture_json("gemini/generate-content-function-call-gemini3.response.json")
STREAM_TEXT = "gemini/stream-sse-text.response.sse"
STREAM_CALL = "gemini/stream-sse-function-call.response.sse"

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "generate_topic",
            "description": "A topic for a joke",
            "parameters": {"type": "object", "properties": {}},
        },
    }
]


def sse_payloads(path: str):
    raw = fixture_bytes(path)
    assert b"\r\n\r\n" in raw, "the recording should keep Gemini's CRLF framing"
    return [
        json.loads(line[5:])
        for line in raw.decode().splitlines()
        if line.startswith("data:")
    ]


def sse_text(path: str) -> str:
    return "".join(
        part.get("text", "")
        for payload in sse_payloads(path)
        for candidate in payload["candidates"]
        for part in candidate["content"]["parts"]
    )


class FakeGemini(FakeUpstream):
    """Answers like generativelanguage.googleapis.com/v1beta."""

    requests: list = []

    def do_POST(self):
        request = self.read_json()
        url = urlsplit(self.path)
        if self.headers.get("x-goog-api-key") != GEMINI_KEY:
            return self.send(400, fixture_bytes("gemini/error-400-api-key-invalid.json"))
        if url.path.startswith("/v1beta/models/") and url.path.endswith(":streamGenerateContent"):
            if url.query != "alt=sse":
                return self.send(400, b'{"error":{"code":400,"message":"want alt=sse","status":"INVALID_ARGUMENT"}}')
            path = STREAM_CALL if request.get("tools") else STREAM_TEXT
            return self.send(200, fixture_bytes(path), "text/event-stream")
        if url.path.startswith("/v1beta/models/") and url.path.endswith(":generateContent"):
            answered = any("functionResponse" in p for p in request["contents"][-1]["parts"])
            if request.get("tools") and not answered:
                return self.send(200, json.dumps(CALLS).encode())
            return self.send(200, json.dumps(TEXT).encode())
        self.send(404, b'{"error":{"code":404,"message":"no route","status":"NOT_FOUND"}}')


@pytest.fixture(scope="module")
def gateway():
    yield from run_gateway(
        FakeGemini,
        lambda root: {"GEMINI_API_KEY": GEMINI_KEY, "GEMINI_BASE_URL": f"{root}/v1beta"},
        GEMINI_KEY,
    )


@pytest.fixture
def client(gateway):
    FakeGemini.requests.clear()
    return openai.OpenAI(base_url=gateway + "/v1", api_key="unused", max_retries=0)


def test_chat(client):
    reply = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": "Hello"}]
    )
    assert reply.headers["x-exllm-provider"] == "gemini"
    completion = reply.parse()
    assert completion.choices[0].message.content == TEXT["candidates"][0]["content"]["parts"][0]["text"]
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.prompt_tokens == 9
    # Gemini's total includes the thoughts: 9 + 9 + 34.
    assert completion.usage.total_tokens == 52
    [(path, _, sent)] = FakeGemini.requests
    assert path == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert sent["contents"] == [{"role": "user", "parts": [{"text": "Hello"}]}]


def test_streaming_with_usage(client):
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "What is the capital of France?"}],
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
    assert "".join(text) == sse_text(STREAM_TEXT) == "The capital of France is Paris.\n"
    assert finish == "stop"
    # The last chunk's cumulative usage.
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (13, 8, 21)
    assert FakeGemini.requests[0][0] == "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"


def test_tool_calls(client):
    completion = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Tell three jokes."}],
        tools=TOOLS,
        tool_choice="required",
    )
    choice = completion.choices[0]
    # Gemini ends a function-call turn with STOP; the gateway must say tool_calls.
    assert choice.finish_reason == "tool_calls"
    recorded = [p["functionCall"] for p in CALLS["candidates"][0]["content"]["parts"]]
    calls = choice.message.tool_calls
    assert [c.function.name for c in calls] == [r["name"] for r in recorded]
    assert len({c.id for c in calls}) == len(calls), "tool call ids must be distinct"
    for call, r in zip(calls, recorded):
        assert isinstance(call.function.arguments, str)
        assert json.loads(call.function.arguments) == r["args"]
    sent = FakeGemini.requests[0][2]
    assert sent["tools"][0]["functionDeclarations"][0]["name"] == "generate_topic"
    assert sent["toolConfig"]["functionCallingConfig"]["mode"] == "ANY"


def test_tool_round_trip_keeps_the_thought_signature(client):
    """Gemini 3 rejects a function call sent back without its `thoughtSignature`; an OpenAI
    client can only keep what the gateway puts in the message it returns."""
    messages = [{"role": "user", "content": "Tell three jokes."}]
    first = client.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS)
    message = first.choices[0].message
    messages.append(message.model_dump(exclude_none=True))
    for call in message.tool_calls:
        messages.append({"role": "tool", "tool_call_id": call.id, "content": "cats"})
    second = client.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS)
    assert second.choices[0].message.content == TEXT["candidates"][0]["content"]["parts"][0]["text"]
    contents = FakeGemini.requests[1][2]["contents"]
    assert [c["role"] for c in contents] == ["user", "model", "user"]
    calls = [p for p in contents[1]["parts"] if "functionCall" in p]
    assert [p["functionCall"]["name"] for p in calls] == ["generate_topic"] * 3
    responses = [p["functionResponse"] for p in contents[2]["parts"] if "functionResponse" in p]
    assert [r["name"] for r in responses] == ["generate_topic"] * 3
    recorded = CALLS["candidates"][0]["content"]["parts"][0]["thoughtSignature"]
    assert calls[0].get("thoughtSignature") == recorded


def test_streamed_tool_call(client):
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Capital of France?"}],
        tools=[
            {
                "type": "function",
                "function": {
                    "name": "get_capital",
                    "parameters": {
                        "type": "object",
                        "properties": {"country": {"type": "string"}},
                    },
                },
            }
        ],
        stream=True,
    )
    calls, finish = {}, None
    for chunk in stream:
        for choice in chunk.choices:
            for part in choice.delta.tool_calls or []:
                slot = calls.setdefault(part.index, {"id": None, "name": None, "arguments": ""})
                slot["id"] = part.id or slot["id"]
                if part.function and part.function.name:
                    slot["name"] = part.function.name
                if part.function and part.function.arguments:
                    slot["arguments"] += part.function.arguments
            if choice.finish_reason:
                finish = choice.finish_reason
    assert finish == "tool_calls"
    assert list(calls) == [0]
    assert calls[0]["id"]
    assert calls[0]["name"] == "get_capital"
    assert json.loads(calls[0]["arguments"]) == {"country": "France"}
