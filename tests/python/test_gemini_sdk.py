"""The official `google-genai` Python SDK against Sluice, with a gateway key.

Each test runs on both I/O drivers (see the `stack` fixture). The SDK (a
client is kept in a variable while used: it closes its connections when it
is collected) is given Sluice's address as its base URL; it sends the gateway key in
`x-goog-api-key` and calls `/v1/models/{model}:{method}` (its default
`api_version`) or `/v1beta/...`. Sluice routes the model to the mock's
Gemini upstream (`kind = "gemini"`). Every request's record is checked for
its tokens and its cost.
"""

import json
import math

import pytest
from google import genai
from google.genai import errors, types

from conftest import GEMINI_EMBED_MODEL, GEMINI_MODEL, WRONG_KEY, expected_text

# USD per million tokens (contract/src/quota/price.rs).
FLASH = (0.30, 2.50)
EMBED = 0.15


def knobs(**headers):
    return types.HttpOptions(headers={f"x-mock-{k.replace('_', '-')}": str(v) for k, v in headers.items()})


def cost(input_tokens, output_tokens, price):
    return math.ceil(round(input_tokens * price[0] + output_tokens * price[1], 6))


def record_of(stack, route, seen):
    """The first record of `route` this module's tests have not taken yet
    (every test takes each record its requests leave, in order)."""
    key = lambda r: json.dumps(r, sort_keys=True)  # noqa: E731
    rec = stack.wait_record(lambda r: r["route"] == route and key(r) not in seen, route)
    seen.add(key(rec))
    return rec


@pytest.fixture
def seen(stack):
    if not hasattr(stack, "gemini_seen"):
        stack.gemini_seen = set()
    return stack.gemini_seen


@pytest.mark.parametrize("version", [None, "v1beta"])
def test_generate_content(stack, seen, version):
    client = stack.gemini(api_version=version)
    resp = client.models.generate_content(
        model=GEMINI_MODEL,
        contents="Say hello to the world.",
        config=types.GenerateContentConfig(
            system_instruction="Be brief.", max_output_tokens=64, http_options=knobs(tokens=21)
        ),
    )
    assert resp.text == expected_text(21)
    assert resp.candidates[0].finish_reason == types.FinishReason.STOP
    assert resp.usage_metadata.candidates_token_count == 21
    rec = record_of(stack, "gemini_generate", seen)
    assert rec["status"] == 200 and rec["outcome"] == "ok"
    assert rec["model"] == GEMINI_MODEL and rec["upstream"] == "mock-gemini"
    assert rec["usage"]["input_tokens"] == resp.usage_metadata.prompt_token_count
    assert rec["usage"]["output_tokens"] == 21
    assert rec["cost_micros"] == cost(rec["usage"]["input_tokens"], 21, FLASH)


@pytest.mark.parametrize("split", ["utf8", "bytes:1", "bytes:5"])
def test_generate_content_stream(stack, seen, split):
    pieces, usage, finish = [], None, None
    client = stack.gemini()  # kept: the SDK closes its connection when the client goes
    for chunk in client.models.generate_content_stream(
        model=GEMINI_MODEL,
        contents=[types.Content(role="user", parts=[types.Part(text="Stream a hello, café ☃.")])],
        config=types.GenerateContentConfig(http_options=knobs(tokens=40, split=split)),
    ):
        pieces.append(chunk.text or "")
        usage = chunk.usage_metadata or usage
        if chunk.candidates and chunk.candidates[0].finish_reason:
            finish = chunk.candidates[0].finish_reason
    assert "".join(pieces) == expected_text(40), "a character split across writes arrives whole"
    assert finish == types.FinishReason.STOP
    assert usage.candidates_token_count == 40
    rec = record_of(stack, "gemini_stream", seen)
    assert rec["stream"] is True and rec["outcome"] == "ok" and rec["error"] is None
    assert rec["usage"]["output_tokens"] == 40
    assert rec["usage"]["input_tokens"] == usage.prompt_token_count
    assert rec["completion_tokens_counted"] > 0
    assert rec["cost_micros"] == cost(rec["usage"]["input_tokens"], 40, FLASH)


def test_count_tokens(stack, seen):
    client = stack.gemini()
    resp = client.models.count_tokens(model=GEMINI_MODEL, contents="Count the tokens of this sentence.")
    assert resp.total_tokens > 0
    rec = record_of(stack, "gemini_count_tokens", seen)
    assert rec["status"] == 200
    assert rec["prompt_tokens_counted"] > 0
    assert rec["cost_micros"] == 0, "counting tokens is free"


def test_embed_content(stack, seen):
    client = stack.gemini()
    resp = client.models.embed_content(
        model=GEMINI_EMBED_MODEL, contents=["first text to embed", "second text, ünïcode"]
    )
    assert len(resp.embeddings) == 2
    assert len(resp.embeddings[0].values) == 8
    rec = record_of(stack, "gemini_batch_embed", seen)
    assert rec["status"] == 200 and rec["model"] == GEMINI_EMBED_MODEL
    counted = rec["prompt_tokens_counted"]
    assert counted > 0
    # Gemini reports no usage for embeddings: the gateway's count is billed.
    assert rec["usage"] is None
    assert rec["cost_micros"] == math.ceil(round(counted * EMBED, 6))


@pytest.mark.parametrize("status,cls,name", [(400, errors.ClientError, "INVALID_ARGUMENT"),
                                             (429, errors.ClientError, "RESOURCE_EXHAUSTED"),
                                             (500, errors.ServerError, "INTERNAL")])
@pytest.mark.parametrize("stream", [False, True])
def test_upstream_errors(stack, seen, status, cls, name, stream):
    config = types.GenerateContentConfig(http_options=knobs(status=status))
    client = stack.gemini()
    with pytest.raises(cls) as info:
        if stream:
            list(client.models.generate_content_stream(model=GEMINI_MODEL, contents="hi", config=config))
        else:
            client.models.generate_content(model=GEMINI_MODEL, contents="hi", config=config)
    assert isinstance(info.value, errors.APIError)
    assert info.value.code == status
    assert info.value.status == name
    rec = record_of(stack, "gemini_stream" if stream else "gemini_generate", seen)
    assert rec["status"] == status
    assert rec["outcome"] == "upstream_error"
    assert rec.get("cost_micros") in (None, 0), "a refused request costs nothing"


def test_gateway_errors(stack, seen):
    wrong = stack.gemini(api_key=WRONG_KEY)
    with pytest.raises(errors.ClientError) as info:
        wrong.models.generate_content(model=GEMINI_MODEL, contents="hi")
    assert (info.value.code, info.value.status) == (401, "UNAUTHENTICATED")
    client = stack.gemini()
    with pytest.raises(errors.ClientError) as info:
        client.models.generate_content(model="no-such-model", contents="hi")
    assert (info.value.code, info.value.status) == (404, "NOT_FOUND")
    assert "no-such-model" in info.value.message
    for route, status in [("gemini_generate", 401), ("gemini_generate", 404)]:
        rec = record_of(stack, route, seen)
        assert rec["status"] == status
        assert rec.get("cost_micros") in (None, 0)


def test_async_stream(stack, seen):
    import asyncio

    async def run():
        sync = stack.gemini()
        client = sync.aio
        out = []
        async for chunk in await client.models.generate_content_stream(
            model=GEMINI_MODEL, contents="hi", config=types.GenerateContentConfig(http_options=knobs(tokens=7))
        ):
            out.append(chunk.text or "")
        return "".join(out)

    assert asyncio.run(run()) == expected_text(7)
    rec = record_of(stack, "gemini_stream", seen)
    assert rec["usage"]["output_tokens"] == 7
    assert rec["cost_micros"] == cost(rec["usage"]["input_tokens"], 7, FLASH)


@pytest.mark.parametrize("version", [None, "v1beta"])
def test_models_list_and_get(stack, seen, version):
    """`models.list()` and `models.get()` in Gemini's shape: the models the
    key may call over Gemini's API (those routed to Gemini upstreams)."""
    client = stack.gemini(api_version=version)
    names = [m.name for m in client.models.list()]
    assert f"models/{GEMINI_MODEL}" in names, names
    assert f"models/{GEMINI_EMBED_MODEL}" in names, names
    assert all(n.startswith("models/gemini") for n in names), names
    model = client.models.get(model=GEMINI_MODEL)
    assert model.name == f"models/{GEMINI_MODEL}"
    assert "generateContent" in (model.supported_actions or []), model
    with pytest.raises(errors.ClientError) as e:
        client.models.get(model="gpt-4o-mini")
    assert e.value.code == 404
