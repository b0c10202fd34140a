"""The official `openai` and `anthropic` Python SDKs against Sluice.

Each test runs on both I/O drivers (see the `stack` fixture). The SDKs parse
the gateway's answers exactly as they parse the providers': these tests
fail if a stream is framed wrongly, a UTF-8 character is corrupted across
writes, or an error comes back in a shape or status that maps to the wrong
exception class.
"""

import anthropic
import openai
import pytest

from conftest import (
    ANTHROPIC_MODEL,
    GEMINI_EMBED_MODEL,
    GEMINI_MODEL,
    OPENAI_MODEL,
    SHARED_MODEL,
    WRONG_KEY,
    expected_text,
)

MESSAGES = [{"role": "user", "content": "Say hello to the world."}]


def tokens(n, **more):
    return dict({"x-mock-tokens": str(n)}, **more)


# ---- OpenAI --------------------------------------------------------------


def test_openai_non_streamed(stack):
    resp = stack.openai().chat.completions.create(
        model=OPENAI_MODEL, messages=MESSAGES, extra_headers=tokens(21)
    )
    assert resp.choices[0].message.content == expected_text(21)
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage.completion_tokens == 21
    assert resp.usage.prompt_tokens > 0


def test_openai_streamed(stack):
    stream = stack.openai().chat.completions.create(
        model=OPENAI_MODEL, messages=MESSAGES, stream=True, extra_headers=tokens(33)
    )
    pieces, finish = [], None
    for chunk in stream:
        assert chunk.usage is None, "a usage chunk the client did not ask for"
        if chunk.choices:
            pieces.append(chunk.choices[0].delta.content or "")
            finish = chunk.choices[0].finish_reason or finish
    assert "".join(pieces) == expected_text(33)
    assert finish == "stop"


def test_openai_streamed_with_usage(stack):
    stream = stack.openai().chat.completions.create(
        model=OPENAI_MODEL,
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
        extra_headers=tokens(12),
    )
    text, usage = "", None
    for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
        if chunk.usage is not None:
            usage = chunk.usage
    assert text == expected_text(12)
    assert usage is not None and usage.completion_tokens == 12
    rec = stack.wait_record(
        lambda r: r["route"] == "chat_completions" and r["usage"] and r["usage"]["output_tokens"] == 12,
        "for the 12-token stream",
    )
    assert rec["outcome"] == "ok" and rec["status"] == 200
    assert rec["usage"]["input_tokens"] == usage.prompt_tokens


@pytest.mark.parametrize("split", ["utf8", "bytes:1", "bytes:3"])
def test_openai_streamed_split(stack, split):
    stream = stack.openai().chat.completions.create(
        model=OPENAI_MODEL,
        messages=MESSAGES,
        stream=True,
        extra_headers=tokens(40, **{"x-mock-split": split}),
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == expected_text(40)


def test_openai_stream_context_manager(stack):
    client = stack.openai()
    with client.chat.completions.stream(
        model=OPENAI_MODEL, messages=MESSAGES, extra_headers=tokens(9)
    ) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.content == expected_text(9)


@pytest.mark.parametrize(
    "status,error",
    [
        (429, openai.RateLimitError),
        (400, openai.BadRequestError),
        (500, openai.InternalServerError),
        (503, openai.InternalServerError),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_openai_upstream_errors(stack, status, error, stream):
    with pytest.raises(error) as info:
        resp = stack.openai().chat.completions.create(
            model=OPENAI_MODEL,
            messages=MESSAGES,
            stream=stream,
            extra_headers={"x-mock-status": str(status)},
        )
        if stream:
            list(resp)
    assert info.value.status_code == status
    assert "(mock)" in info.value.message, "the upstream's own error should pass through"


def test_openai_gateway_errors(stack):
    with pytest.raises(openai.AuthenticationError) as info:
        stack.openai(api_key=WRONG_KEY).chat.completions.create(model=OPENAI_MODEL, messages=MESSAGES)
    assert info.value.status_code == 401
    with pytest.raises(openai.NotFoundError) as info:
        stack.openai().chat.completions.create(model="no-such-model", messages=MESSAGES)
    assert info.value.status_code == 404
    with pytest.raises(openai.NotFoundError):
        stack.openai().chat.completions.create(model="no-such-model", messages=MESSAGES, stream=True)
    with pytest.raises(openai.AuthenticationError):
        stack.openai(api_key=WRONG_KEY).models.list()


def test_openai_models_list(stack):
    # Models routed to Gemini upstreams are callable over Gemini's API only
    # (the gateway does not translate to it), so they are listed there.
    ids = sorted(m.id for m in stack.openai().models.list())
    assert ids == sorted([OPENAI_MODEL, ANTHROPIC_MODEL, SHARED_MODEL])
    assert GEMINI_MODEL not in ids and GEMINI_EMBED_MODEL not in ids


# ---- Anthropic -----------------------------------------------------------


def test_anthropic_non_streamed(stack):
    msg = stack.anthropic().messages.create(
        model=ANTHROPIC_MODEL, max_tokens=1024, messages=MESSAGES, extra_headers=tokens(19)
    )
    assert msg.content[0].text == expected_text(19)
    assert msg.stop_reason == "end_turn"
    assert msg.usage.output_tokens == 19


def test_anthropic_streamed_helper(stack):
    with stack.anthropic().messages.stream(
        model=ANTHROPIC_MODEL, max_tokens=1024, messages=MESSAGES, extra_headers=tokens(27)
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == expected_text(27)
    assert final.content[0].text == expected_text(27)
    assert final.usage.output_tokens == 27
    rec = stack.wait_record(
        lambda r: r["route"] == "messages" and r["usage"] and r["usage"]["output_tokens"] == 27,
        "for the 27-token stream",
    )
    assert rec["outcome"] == "ok" and rec["stream"] is True
    assert rec["usage"]["input_tokens"] == final.usage.input_tokens


def test_anthropic_streamed_raw_events(stack):
    events = list(
        stack.anthropic().messages.create(
            model=ANTHROPIC_MODEL, max_tokens=1024, messages=MESSAGES, stream=True, extra_headers=tokens(11)
        )
    )
    text = "".join(e.delta.text for e in events if e.type == "content_block_delta")
    assert text == expected_text(11)
    assert events[0].type == "message_start"
    assert events[-1].type == "message_stop"


@pytest.mark.parametrize("split", ["utf8", "bytes:1"])
def test_anthropic_streamed_split(stack, split):
    with stack.anthropic().messages.stream(
        model=ANTHROPIC_MODEL,
        max_tokens=1024,
        messages=MESSAGES,
        extra_headers=tokens(40, **{"x-mock-split": split}),
    ) as stream:
        text = "".join(stream.text_stream)
    assert text == expected_text(40)


@pytest.mark.parametrize(
    "status,error",
    [
        (429, anthropic.RateLimitError),
        (400, anthropic.BadRequestError),
        (500, anthropic.InternalServerError),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_upstream_errors(stack, status, error, stream):
    with pytest.raises(error) as info:
        resp = stack.anthropic().messages.create(
            model=ANTHROPIC_MODEL,
            max_tokens=100,
            messages=MESSAGES,
            stream=stream,
            extra_headers={"x-mock-status": str(status)},
        )
        if stream:
            list(resp)
    assert info.value.status_code == status
    assert "(mock)" in str(info.value)


def test_anthropic_gateway_errors(stack):
    with pytest.raises(anthropic.AuthenticationError) as info:
        stack.anthropic(api_key=WRONG_KEY).messages.create(
            model=ANTHROPIC_MODEL, max_tokens=100, messages=MESSAGES
        )
    assert info.value.status_code == 401
    assert info.value.body["error"]["type"] == "authentication_error"
    with pytest.raises(anthropic.NotFoundError) as info:
        stack.anthropic().messages.create(model="no-such-model", max_tokens=100, messages=MESSAGES)
    assert info.value.status_code == 404
    with pytest.raises(anthropic.NotFoundError):
        with stack.anthropic().messages.stream(
            model="no-such-model", max_tokens=100, messages=MESSAGES
        ) as stream:
            list(stream.text_stream)


def test_anthropic_models_list(stack):
    models = list(stack.anthropic().models.list())
    assert sorted(m.id for m in models) == sorted([OPENAI_MODEL, ANTHROPIC_MODEL, SHARED_MODEL])
    assert all(m.type == "model" for m in models)


# ---- The endpoints beside chat and messages --------------------------------


def test_openai_models_retrieve(stack):
    model = stack.openai().models.retrieve(OPENAI_MODEL)
    assert model.id == OPENAI_MODEL
    assert model.object == "model"
    with pytest.raises(openai.NotFoundError):
        stack.openai().models.retrieve("no-such-model")


def test_openai_base_url_without_v1(stack):
    # Some configurations give the SDK the host alone: requests then go to
    # `/chat/completions`, which the gateway serves as `/v1/...`.
    client = openai.OpenAI(base_url=f"http://{stack.addr}", api_key=stack.openai().api_key, max_retries=0)
    resp = client.chat.completions.create(
        model=OPENAI_MODEL, messages=MESSAGES, extra_headers=tokens(5)
    )
    assert resp.choices[0].message.content == expected_text(5)


def test_anthropic_models_retrieve(stack):
    model = stack.anthropic().models.retrieve(ANTHROPIC_MODEL)
    assert model.id == ANTHROPIC_MODEL
    assert model.type == "model"
    with pytest.raises(anthropic.NotFoundError):
        stack.anthropic().models.retrieve("no-such-model")


def test_anthropic_count_tokens(stack):
    counted = stack.anthropic().messages.count_tokens(
        model=ANTHROPIC_MODEL, system="You are terse.", messages=MESSAGES
    )
    assert counted.input_tokens > 0
    with pytest.raises(anthropic.NotFoundError):
        stack.anthropic().messages.count_tokens(model="no-such-model", messages=MESSAGES)


def test_openai_embeddings(stack):
    # The SDK asks for base64 by default and decodes it into floats.
    resp = stack.openai().embeddings.create(model=OPENAI_MODEL, input=["one text", "another text"])
    assert [d.index for d in resp.data] == [0, 1]
    assert all(len(d.embedding) == 8 for d in resp.data)
    assert all(isinstance(x, float) for x in resp.data[0].embedding)
    assert resp.usage.prompt_tokens > 0
    floats = stack.openai().embeddings.create(
        model=OPENAI_MODEL, input="one text", encoding_format="float"
    )
    assert floats.data[0].embedding == resp.data[0].embedding
    with pytest.raises(openai.NotFoundError):
        stack.openai().embeddings.create(model="no-such-model", input="x")


# ---- OpenAI Responses ------------------------------------------------------


def test_openai_responses_non_streamed(stack):
    resp = stack.openai().responses.create(
        model=OPENAI_MODEL,
        instructions="Be brief.",
        input="Say hello to the world.",
        store=False,
        extra_headers=tokens(21),
    )
    assert resp.output_text == expected_text(21)
    assert resp.status == "completed"
    assert resp.usage.output_tokens == 21
    assert resp.usage.input_tokens > 0
    with pytest.raises(openai.NotFoundError):
        stack.openai().responses.create(model="no-such-model", input="x")


def test_openai_responses_streamed(stack):
    stream = stack.openai().responses.create(
        model=OPENAI_MODEL,
        input=[{"role": "user", "content": [{"type": "input_text", "text": "Say hello."}]}],
        stream=True,
        extra_headers=tokens(33),
    )
    pieces, completed = [], None
    for event in stream:
        if event.type == "response.output_text.delta":
            pieces.append(event.delta)
        elif event.type == "response.completed":
            completed = event.response
    assert "".join(pieces) == expected_text(33)
    assert completed is not None and completed.usage.output_tokens == 33


def test_openai_responses_stream_helper(stack):
    with stack.openai().responses.stream(
        model=OPENAI_MODEL, input="Say hello.", extra_headers=tokens(17)
    ) as stream:
        pieces = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(pieces) == expected_text(17)
    assert final.output_text == expected_text(17)
    assert final.usage.output_tokens == 17
