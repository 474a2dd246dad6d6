"""The official `anthropic` Python SDK → `exllm serve` `/v1/messages` → the fake OpenAI upstream.

No EXLLM_MASTER_KEY: the gateway takes any key from the client. The only upstream
configuration is OPENAI_API_KEY and OPENAI_BASE_URL.
"""

import json

import anthropic
import pytest

from harness import UPSTREAM_KEY, FakeOpenAI, fixture, fixture_json, run_gateway

MODEL = "openai/gpt-4.1-nano"
TEXT = fixture_json("openai/chat-completion-text-gpt41nano.json")
CHUNKS = [json.loads(line) for line in fixture("stream-text-gpt41nano-with-usage.chunks.jsonl").splitlines() if line.strip()]
STREAM_TEXT = "".join(
    choice["delta"].get("content") or "" for chunk in CHUNKS for choice in chunk["choices"]
)
STREAM_USAGE = CHUNKS[-1]["usage"]


@pytest.fixture(scope="module")
def gateway():
    yield from run_gateway(
        FakeOpenAI,
        lambda root: {"OPENAI_API_KEY": UPSTREAM_KEY, "OPENAI_BASE_URL": f"{root}/v1"},
        UPSTREAM_KEY,
    )


@pytest.fixture
def client(gateway):
    FakeOpenAI.requests.clear()
    # No SDK retries: each test sees exactly what the gateway answered.
    return anthropic.Anthropic(base_url=gateway, api_key="anything", max_retries=0)


def test_messages_create(client):
    raw = client.messages.with_raw_response.create(
        model=MODEL,
        max_tokens=1024,
        system="Be festive.",
        messages=[{"role": "user", "content": "Invent a holiday"}],
    )
    assert raw.headers["x-exllm-provider"] == "openai"
    message = raw.parse()
    assert message.type == "message"
    assert message.role == "assistant"
    assert message.id
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].text == TEXT["choices"][0]["message"]["content"]
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens == 16
    assert message.usage.output_tokens == 363
    # What reached OpenAI: its shape, the system prompt first, the client's key not forwarded.
    [(path, headers, sent)] = FakeOpenAI.requests
    assert path == "/v1/chat/completions"
    assert headers.get("authorization") == f"Bearer {UPSTREAM_KEY}"
    assert "anything" not in json.dumps(headers)
    assert sent["model"] == "gpt-4.1-nano"
    system = sent["messages"][0]
    assert system["role"] == "system"
    assert "Be festive." in json.dumps(system["content"])
    assert sent["messages"][-1]["role"] == "user"


def test_messages_stream_helper(client):
    with client.messages.stream(
        model=MODEL,
        max_tokens=1024,
        messages=[{"role": "user", "content": "Invent a holiday"}],
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == STREAM_TEXT
    assert final.content[0].text == STREAM_TEXT
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == STREAM_USAGE["completion_tokens"]
    assert final.usage.input_tokens == STREAM_USAGE["prompt_tokens"]


def test_messages_create_stream_events(client):
    events = list(
        client.messages.create(
            model=MODEL,
            max_tokens=1024,
            messages=[{"role": "user", "content": "Invent a holiday"}],
            stream=True,
        )
    )
    kinds = [e.type for e in events]
    assert kinds[0] == "message_start"
    assert kinds[-1] == "message_stop"
    assert kinds.index("content_block_start") < kinds.index("content_block_delta")
    assert "content_block_stop" in kinds and "message_delta" in kinds
    text = "".join(
        e.delta.text for e in events if e.type == "content_block_delta" and e.delta.type == "text_delta"
    )
    assert text == STREAM_TEXT
    [delta] = [e for e in events if e.type == "message_delta"]
    assert delta.delta.stop_reason == "end_turn"
    assert delta.usage.output_tokens == STREAM_USAGE["completion_tokens"]


def test_upstream_429_is_a_rate_limit_error(client):
    with pytest.raises(anthropic.RateLimitError) as raised:
        client.messages.create(
            model=MODEL,
            max_tokens=16,
            messages=[{"role": "user", "content": "TRIGGER_429"}],
        )
    assert raised.value.status_code == 429
    body = raised.value.body
    assert body["type"] == "error"
    assert body["error"]["type"] == "rate_limit_error"
    assert UPSTREAM_KEY not in str(raised.value)


def test_unknown_model_is_not_found(client):
    with pytest.raises(anthropic.NotFoundError):
        client.messages.create(
            model="nosuch/model", max_tokens=16, messages=[{"role": "user", "content": "hi"}]
        )
