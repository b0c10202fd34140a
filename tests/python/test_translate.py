"""Translation between dialects, driven by the official SDKs: the openai SDK
against an Anthropic upstream and the anthropic SDK against an OpenAI
upstream (the mock serving the other dialect), streamed and not, with
parallel tool calls streamed as argument deltas, and a multi-turn agent
conversation whose thinking block (with its signature) goes back to the
provider on the next turn — the mock refuses a thinking block whose text
or signature changed, as Anthropic does. Records name the translation, and
usage is metered from the upstream's own report."""

import json

import anthropic
import openai
import pytest

from conftest import Stack

# Routes whose upstream speaks the other dialect.
GPT_ON_CLAUDE = "gpt-on-claude"
GPT_ON_CLAUDE_DROP = "gpt-on-claude-drop"
CLAUDE_ON_GPT = "claude-on-gpt"
CROSS_FALLBACK = "cross-fallback"


def translated_routes(mock_url):
    q = json.dumps
    return f"""
[[upstreams]]
name = "down-openai"
kind = "openai"
base_url = "http://127.0.0.1:9"

[[routes]]
tenant = "acme"
model = {q(GPT_ON_CLAUDE)}
targets = [{{ upstream = "mock-anthropic", provider_key = "pk", model = "claude-mock" }}]

[[routes]]
tenant = "acme"
model = {q(GPT_ON_CLAUDE_DROP)}
on_unsupported = "drop"
targets = [{{ upstream = "mock-anthropic", provider_key = "pk" }}]

[[routes]]
tenant = "acme"
model = {q(CLAUDE_ON_GPT)}
targets = [{{ upstream = "mock", provider_key = "pk", model = "gpt-4o-mini" }}]

[[routes]]
tenant = "acme"
model = {q(CROSS_FALLBACK)}
targets = [{{ upstream = "down-openai", provider_key = "pk", priority = 0 }}, {{ upstream = "mock-anthropic", provider_key = "pk", priority = 1 }}]
"""


@pytest.fixture(scope="module", params=["uring", "epoll"])
def stack(request, tmp_path_factory):
    """conftest's stack, with the routes above in its snapshot."""
    s = Stack(request.param, tmp_path_factory.mktemp(f"sluice-translate-{request.param}"), translated_routes)
    try:
        yield s
    finally:
        s.close()


SCENARIO = {"x-mock-scenario": "thinking-tools"}
THINKING = "Two cities: two calls."
SIGNATURE = "sig-mock-ErUBCkYIBRgCIkB"
OPENAI_TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Weather now",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
ANTHROPIC_TOOLS = [{"name": "get_weather", "description": "Weather now",
                    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]
QUESTION = "Weather in Paris and Oslo?"


def record_of(stack, model, pred=lambda r: True):
    return stack.wait_record(lambda r: r.get("model") == model and r.get("status") and pred(r), f"for {model}")


def test_openai_sdk_on_anthropic_upstream_plain(stack):
    client = stack.openai()
    r = client.chat.completions.create(
        model=GPT_ON_CLAUDE,
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        max_completion_tokens=5,
        extra_headers={"x-request-marker": "plain"},
    )
    assert r.object == "chat.completion"
    assert r.choices[0].finish_reason == "length"
    assert r.choices[0].message.content
    assert r.usage.completion_tokens == 5
    rec = record_of(stack, GPT_ON_CLAUDE, lambda r: not r["stream"])
    assert rec["translation"] == "openai_to_anthropic"
    assert rec["tries"][-1]["translation"] == "openai_to_anthropic"
    assert rec["usage"]["output_tokens"] == 5


def test_openai_sdk_streams_tool_calls_and_thinking_from_anthropic(stack):
    client = stack.openai()
    messages = [{"role": "user", "content": QUESTION}]
    stream = client.chat.completions.create(
        model=GPT_ON_CLAUDE, messages=messages, tools=OPENAI_TOOLS, stream=True,
        stream_options={"include_usage": True}, reasoning_effort="low", max_completion_tokens=2000,
        extra_headers=SCENARIO,
    )
    calls, text, reasoning, blocks, finish, usage = {}, "", "", [], None, None
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for ch in chunk.choices:
            d = ch.delta
            text += d.content or ""
            extra = d.model_extra or {}
            reasoning += extra.get("reasoning_content") or ""
            blocks += extra.get("thinking_blocks") or []
            for tc in d.tool_calls or []:
                c = calls.setdefault(tc.index, {"id": None, "name": None, "args": ""})
                c["id"] = tc.id or c["id"]
                c["name"] = (tc.function and tc.function.name) or c["name"]
                c["args"] += (tc.function and tc.function.arguments) or ""
            finish = ch.finish_reason or finish
    assert reasoning == THINKING
    assert blocks == [{"type": "thinking", "thinking": THINKING, "signature": SIGNATURE}]
    assert text == "Checking both – “now”."
    assert finish == "tool_calls"
    assert [json.loads(calls[i]["args"]) for i in (0, 1)] == [{"city": "Paris"}, {"city": "Oslo"}]
    assert calls[0]["name"] == "get_weather" and calls[1]["id"] == "call_mock_oslo"
    assert usage.completion_tokens == 31
    assert usage.prompt_tokens_details.cached_tokens == 8

    # Next turn: the assistant message goes back with its thinking blocks
    # (signature intact) and both tool results; the mock verifies them.
    messages.append({"role": "assistant", "content": text, "thinking_blocks": blocks,
                     "tool_calls": [{"id": calls[i]["id"], "type": "function",
                                     "function": {"name": "get_weather", "arguments": calls[i]["args"]}} for i in (0, 1)]})
    messages.append({"role": "tool", "tool_call_id": calls[0]["id"], "content": "18C"})
    messages.append({"role": "tool", "tool_call_id": calls[1]["id"], "content": "4C"})
    r = client.chat.completions.create(model=GPT_ON_CLAUDE, messages=messages, tools=OPENAI_TOOLS,
                                       reasoning_effort="low", max_completion_tokens=2000, extra_headers=SCENARIO)
    assert r.choices[0].message.content == "It is 18C in Paris and 4C in Oslo."
    assert r.choices[0].finish_reason == "stop"
    assert r.choices[0].message.model_extra["thinking_blocks"][0]["signature"] == SIGNATURE

    # A tampered signature is refused by the provider, in OpenAI's shape.
    messages[1]["thinking_blocks"] = [dict(blocks[0], signature="forged")]
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=GPT_ON_CLAUDE, messages=messages, max_completion_tokens=2000,
                                       reasoning_effort="low", extra_headers=SCENARIO)
    assert "signature" in str(e.value)


def test_anthropic_sdk_on_openai_upstream_streams_tools_over_turns(stack):
    client = stack.anthropic()
    messages = [{"role": "user", "content": QUESTION}]
    with client.messages.stream(model=CLAUDE_ON_GPT, max_tokens=2000, messages=messages, tools=ANTHROPIC_TOOLS,
                                thinking={"type": "enabled", "budget_tokens": 1024},
                                extra_headers=SCENARIO) as s:
        deltas = [e for e in s if e.type == "content_block_delta" and e.delta.type == "input_json_delta"]
        final = s.get_final_message()
    assert len(deltas) >= 4, "arguments arrive as deltas"
    kinds = [b.type for b in final.content]
    assert kinds == ["thinking", "text", "tool_use", "tool_use"]
    assert final.content[0].thinking == THINKING
    assert final.content[1].text == "Checking both – “now”."
    assert [b.input for b in final.content[2:]] == [{"city": "Paris"}, {"city": "Oslo"}]
    assert final.stop_reason == "tool_use"
    assert final.usage.output_tokens == 31
    assert final.usage.cache_read_input_tokens == 8

    messages.append({"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in final.content]})
    messages.append({"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": final.content[2].id, "content": "18C"},
        {"type": "tool_result", "tool_use_id": final.content[3].id, "content": "4C"},
    ]})
    r = client.messages.create(model=CLAUDE_ON_GPT, max_tokens=2000, messages=messages, tools=ANTHROPIC_TOOLS,
                               extra_headers=SCENARIO)
    assert r.content[-1].text == "It is 18C in Paris and 4C in Oslo."
    assert r.stop_reason == "end_turn"
    # The thinking block of the earlier turn cannot go to OpenAI: named.
    raw = client.messages.with_raw_response.create(model=CLAUDE_ON_GPT, max_tokens=2000, messages=messages,
                                                   extra_headers=SCENARIO)
    assert "thinking" in raw.headers["x-sluice-dropped-fields"]
    rec = record_of(stack, CLAUDE_ON_GPT, lambda r: r["stream"])
    assert rec["translation"] == "anthropic_to_openai"
    assert rec["usage"]["output_tokens"] == 31 and rec["usage"]["cached_input_tokens"] == 8


def test_anthropic_sdk_plain_text_stream_from_openai(stack):
    client = stack.anthropic()
    with client.messages.stream(model=CLAUDE_ON_GPT, max_tokens=6,
                                system="Be brief.", messages=[{"role": "user", "content": "Hi"}]) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text and final.stop_reason == "max_tokens"
    assert final.usage.output_tokens == 6


def test_unsupported_fields_are_refused_or_dropped_by_route(stack):
    client = stack.openai()
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=GPT_ON_CLAUDE, messages=[{"role": "user", "content": "Hi"}],
                                       max_tokens=3, seed=7)
    assert "seed" in str(e.value)
    raw = client.chat.completions.with_raw_response.create(
        model=GPT_ON_CLAUDE_DROP, messages=[{"role": "user", "content": "Hi"}], max_tokens=3, seed=7, logit_bias={"1": 1})
    assert raw.headers["x-sluice-dropped-fields"] == "logit_bias, seed"
    assert raw.parse().choices[0].message.content


def test_upstream_errors_reach_the_client_in_its_shape(stack):
    client = stack.anthropic()
    with pytest.raises(anthropic.RateLimitError) as e:
        client.messages.create(model=CLAUDE_ON_GPT, max_tokens=5, messages=[{"role": "user", "content": "Hi"}],
                               extra_headers={"x-mock-status": "429", "x-mock-retry": "no"})
    assert e.value.body["type"] == "error"
    assert e.value.body["error"]["type"] == "rate_limit_error"
    oc = stack.openai()
    with pytest.raises(openai.InternalServerError) as e:
        oc.chat.completions.create(model=GPT_ON_CLAUDE, max_tokens=5, messages=[{"role": "user", "content": "Hi"}],
                                   extra_headers={"x-mock-status": "500"})
    assert e.value.body["type"] == "api_error" or "message" in e.value.body


def test_fallback_across_kinds_names_each_attempt(stack):
    r = stack.openai().chat.completions.create(
        model=CROSS_FALLBACK, messages=[{"role": "user", "content": "Hi"}], max_tokens=4)
    assert r.choices[0].message.content
    rec = record_of(stack, CROSS_FALLBACK)
    tries = rec["tries"]
    assert [t["upstream"] for t in tries] == ["down-openai", "mock-anthropic"]
    assert "translation" not in tries[0]
    assert tries[1]["translation"] == "openai_to_anthropic"
    assert rec["translation"] == "openai_to_anthropic"


def test_apis_that_do_not_translate_are_refused_in_the_clients_shape(stack):
    with pytest.raises(anthropic.BadRequestError) as e:
        stack.anthropic().messages.count_tokens(model=CLAUDE_ON_GPT, messages=[{"role": "user", "content": "Hi"}])
    assert e.value.body["type"] == "error"
    assert "not translated" in e.value.body["error"]["message"]
