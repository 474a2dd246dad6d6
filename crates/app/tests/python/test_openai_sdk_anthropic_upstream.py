"""The official `openai` SDK → `exllm serve` → a fake **Anthropic** upstream.

The gateway is configured only with ANTHROPIC_API_KEY and ANTHROPIC_BASE_URL (the root URL:
the adapter appends /v1/messages). The upstream answers with the recordings in
EXLLM_FIXTURES/anthropic.
"""

import json

import openai
import pytest

from harness import FakeUpstream, fixture_bytes, fixture_json, run_gateway

ANTHROPIC_KEY = "sk-ant-upstream-sentinel-5c1d"
MODEL = "anthropic/claude-sonnet-4-5"

TEXT = fixture_json("anthropic/messages-text.json")
TOOL_USE = fixture_json("anthropic/messages-parallel-tool-use.response.json")
FOLLOWUP = fixture_json("anthropic/messages-tool-result-followup.response.json")
STREAM_TEXT = "anthropic/stream-text-short.response.sse"
STREAM_TOOLS = "anthropic/llm-anthropic/stream-parallel-tool-use-with-ratelimit-headers.response.sse"

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "retrieve_entity_info",
            "description": "Look a family member up",
            "parameters": {
                "type": "object",
                "properties": {"name": {"type": "string"}},
                "required": ["name"],
            },
        },
    }
]


def sse_text(path: str) -> str:
    """The text deltas of an Anthropic SSE recording, concatenated."""
    out = []
    for line in fixture_bytes(path).decode().splitlines():
        if line.startswith("data:"):
            data = json.loads(line[5:])
            if data.get("type") == "content_block_delta" and data["delta"]["type"] == "text_delta":
                out.append(data["delta"]["text"])
    return "".join(out)


class FakeAnthropic(FakeUpstream):
    """Answers like api.anthropic.com."""

    requests: list = []

    def do_POST(self):
        request = self.read_json()
        if self.path != "/v1/messages":
            return self.send(404, b'{"type":"error","error":{"type":"not_found_error","message":"no route"}}')
        if self.headers.get("x-api-key") != ANTHROPIC_KEY:
            return self.send(401, fixture_bytes("anthropic/error-401-authentication.json"))
        last = request["messages"][-1]
        content = last["content"]
        texts = [content] if isinstance(content, str) else [
            b.get("text") for b in content if b.get("type") == "text"
        ]
        if "TRIGGER_429" in texts:
            return self.send(429, fixture_bytes("anthropic/error-429-rate-limit.json"))
        answered_tools = isinstance(content, list) and any(
            b.get("type") == "tool_result" for b in content
        )
        if request.get("stream"):
            path = STREAM_TOOLS if request.get("tools") and not answered_tools else STREAM_TEXT
            return self.send(200, fixture_bytes(path), "text/event-stream")
        if answered_tools:
            return self.send(200, json.dumps(FOLLOWUP).encode())
        if request.get("tools"):
            return self.send(200, json.dumps(TOOL_USE).encode())
        self.send(200, json.dumps(TEXT).encode())


@pytest.fixture(scope="module")
def gateway():
    yield from run_gateway(
        FakeAnthropic,
        lambda root: {"ANTHROPIC_API_KEY": ANTHROPIC_KEY, "ANTHROPIC_BASE_URL": root},
        ANTHROPIC_KEY,
    )


@pytest.fixture
def client(gateway):
    FakeAnthropic.requests.clear()
    return openai.OpenAI(base_url=gateway + "/v1", api_key="unused", max_retries=0)


def test_chat(client):
    reply = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": "Hello, how are you?"}]
    )
    assert reply.headers["x-exllm-provider"] == "anthropic"
    completion = reply.parse()
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].message.content == TEXT["content"][0]["text"]
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.prompt_tokens == 12
    assert completion.usage.completion_tokens == 29
    assert completion.usage.total_tokens == 41
    # What reached Anthropic: its own request shape, with max_tokens (required there).
    [(path, headers, sent)] = FakeAnthropic.requests
    assert path == "/v1/messages"
    assert headers.get("anthropic-version") == "2023-06-01"
    assert sent["model"] == "claude-sonnet-4-5"
    assert isinstance(sent["max_tokens"], int) and sent["max_tokens"] > 0
    assert sent["messages"][-1]["role"] == "user"


def test_streaming_with_usage(client):
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "1+1?"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text, usage, finish = [], None, None
    for chunk in stream:
        assert chunk.object == "chat.completion.chunk"
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.content:
                text.append(choice.delta.content)
            if choice.finish_reason:
                finish = choice.finish_reason
    assert "".join(text) == sse_text(STREAM_TEXT) == "2"
    assert finish == "stop"
    assert usage is not None
    assert usage.prompt_tokens == 20
    assert usage.completion_tokens == 5
    assert usage.total_tokens == 25
    assert FakeAnthropic.requests[0][2]["stream"] is True


def test_tool_calls_and_round_trip(client):
    messages = [{"role": "user", "content": "Who is the youngest of Alice, Bob, Charlie and Daisy?"}]
    first = client.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS)
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    recorded = [b for b in TOOL_USE["content"] if b["type"] == "tool_use"]
    calls = choice.message.tool_calls
    assert [c.id for c in calls] == [b["id"] for b in recorded]
    assert [c.function.name for c in calls] == [b["name"] for b in recorded]
    for call, block in zip(calls, recorded):
        assert call.type == "function"
        assert isinstance(call.function.arguments, str)
        assert json.loads(call.function.arguments) == block["input"]
    assert choice.message.content == TOOL_USE["content"][0]["text"]
    # The tool definition reached Anthropic in its shape.
    sent_tools = FakeAnthropic.requests[0][2]["tools"]
    assert sent_tools[0]["name"] == "retrieve_entity_info"
    assert sent_tools[0]["input_schema"]["required"] == ["name"]

    messages.append(choice.message.model_dump(exclude_none=True))
    for call in calls:
        messages.append({"role": "tool", "tool_call_id": call.id, "content": "a person"})
    second = client.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS)
    assert second.choices[0].message.content == FOLLOWUP["content"][0]["text"]
    assert second.choices[0].finish_reason == "stop"
    # The second request carried the tool_use blocks and their results, ids matched.
    sent = FakeAnthropic.requests[1][2]["messages"]
    uses = [b for b in sent[1]["content"] if b["type"] == "tool_use"]
    assert sent[1]["role"] == "assistant"
    assert [(u["id"], u["input"]) for u in uses] == [(b["id"], b["input"]) for b in recorded]
    results = [b for m in sent[2:] for b in m["content"] if b["type"] == "tool_result"]
    assert [r["tool_use_id"] for r in results] == [b["id"] for b in recorded]
    assert all(m["role"] == "user" for m in sent[2:])


def test_streamed_tool_calls(client):
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Name two pelicans"}],
        tools=[
            {
                "type": "function",
                "function": {
                    "name": "pelican_name_generator",
                    "parameters": {"type": "object", "properties": {}},
                },
            }
        ],
        stream=True,
        stream_options={"include_usage": True},
    )
    calls, finish, usage = {}, None, None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            for part in choice.delta.tool_calls or []:
                slot = calls.setdefault(part.index, {"id": None, "name": None, "arguments": ""})
                if part.id:
                    slot["id"] = part.id
                if part.function and part.function.name:
                    slot["name"] = part.function.name
                if part.function and part.function.arguments:
                    slot["arguments"] += part.function.arguments
            if choice.finish_reason:
                finish = choice.finish_reason
    assert finish == "tool_calls"
    assert sorted(calls) == [0, 1]
    assert [calls[i]["id"] for i in (0, 1)] == [
        "toolu_01LtHJmixrs9NcWQkK8hu8hj",
        "toolu_01N8a4jWyf116qKTMqKKmjyt",
    ]
    for i in (0, 1):
        assert calls[i]["name"] == "pelican_name_generator"
        # No arguments on the wire (only "" fragments): an empty object, as a JSON string.
        assert json.loads(calls[i]["arguments"] or "null") == {}
    assert usage is not None and usage.prompt_tokens == 542 and usage.completion_tokens == 62


def test_upstream_429_is_a_rate_limit_error(client):
    with pytest.raises(openai.RateLimitError) as raised:
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "TRIGGER_429"}]
        )
    assert raised.value.status_code == 429
    assert ANTHROPIC_KEY not in str(raised.value)
