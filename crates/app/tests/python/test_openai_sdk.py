"""The official `openai` Python SDK as the client of a running `exllm serve`.

`exllm serve` (the binary from EXLLM_BIN) runs in front of a fake OpenAI upstream: a small
http.server in a thread that answers with the recorded bodies in EXLLM_FIXTURES (the shared
fixtures folder, `openai/` inside it). Nothing here talks to a real provider.
"""

import json
import urllib.request

import openai
import pytest

from harness import UPSTREAM_KEY, FakeOpenAI, run_gateway


def start_gateway(extra_env=None):
    """Starts the fake upstream and `exllm serve` in front of it; yields the base URL."""
    yield from run_gateway(
        FakeOpenAI,
        lambda root: {"OPENAI_API_KEY": UPSTREAM_KEY, "OPENAI_BASE_URL": f"{root}/v1"},
        UPSTREAM_KEY,
        extra_env,
    )


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
