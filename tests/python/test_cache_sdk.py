"""The response cache through the official openai SDK, with gzip request
bodies: the SDK's httpx client compresses every body it sends
(`content-encoding: gzip`); the data plane decodes it, keys the cache on
the decoded request, and answers the second identical request from the
cache (same completion id, the mock not asked again), streamed or not.
"""

import gzip
import json

import httpx2 as httpx
import pytest

import conftest
from conftest import GATEWAY_KEY, OPENAI_MODEL, WAIT


class GzipTransport(httpx.HTTPTransport):
    """Sends every request body gzip-compressed."""

    def handle_request(self, request):
        body = request.read()
        if body:
            packed = gzip.compress(body)
            request.headers["content-encoding"] = "gzip"
            request.headers["content-length"] = str(len(packed))
            request.stream = httpx.ByteStream(packed)
            request._content = packed
        return super().handle_request(request)


@pytest.fixture(scope="module", params=["uring", "epoll"])
def cached(request, tmp_path_factory):
    plain = conftest.snapshot_toml
    conftest.snapshot_toml = lambda url: plain(url) + '\n[[caches]]\ntenant = "acme"\nttl_s = 300\n'
    try:
        s = conftest.Stack(request.param, tmp_path_factory.mktemp(f"sluice-cache-{request.param}"))
    finally:
        conftest.snapshot_toml = plain
    try:
        yield s
    finally:
        s.close()


def client(stack):
    import openai

    return openai.OpenAI(
        base_url=f"http://{stack.addr}/v1",
        api_key=GATEWAY_KEY,
        max_retries=0,
        timeout=WAIT,
        http_client=httpx.Client(transport=GzipTransport(), timeout=WAIT),
    )


def mock_requests(stack):
    r = httpx.get(f"{stack.mock_url}/_mock/stats", timeout=WAIT)
    return r.json()["requests"]


def test_gzip_bodies_and_a_cache_hit(cached):
    c = client(cached)
    messages = [{"role": "user", "content": "gzip me and cache me"}]
    first = c.chat.completions.with_raw_response.create(model=OPENAI_MODEL, messages=messages)
    assert first.headers.get("x-sluice-cache") == "miss"
    miss = first.parse()
    cached.wait_record(lambda r: r.get("cache") == "miss", "of the miss")
    before = mock_requests(cached)
    second = c.chat.completions.with_raw_response.create(model=OPENAI_MODEL, messages=messages, user="someone")
    assert second.headers.get("x-sluice-cache") == "hit"
    hit = second.parse()
    assert hit.id == miss.id
    assert hit.choices[0].message.content == miss.choices[0].message.content
    assert hit.usage.completion_tokens == miss.usage.completion_tokens
    # Streamed, from the same entry.
    stream = c.chat.completions.create(
        model=OPENAI_MODEL, messages=messages, stream=True, stream_options={"include_usage": True}
    )
    text, usage = "", None
    for chunk in stream:
        assert chunk.id == miss.id
        if chunk.choices and chunk.choices[0].delta.content:
            text += chunk.choices[0].delta.content
        if chunk.usage:
            usage = chunk.usage
    assert text == miss.choices[0].message.content
    assert usage.total_tokens == miss.usage.total_tokens
    assert mock_requests(cached) == before
    rec = cached.wait_record(lambda r: r.get("cache") == "hit" and r.get("stream"), "of the streamed hit")
    assert rec["cost_micros"] == 0
    assert rec["usage"]["output_tokens"] == miss.usage.completion_tokens
    assert json.dumps(rec).find("gzip me") < 0
