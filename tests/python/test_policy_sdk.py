"""Policy blocks, exhausted credit and rate limits through the official
`openai` and `anthropic` SDKs: each refusal must raise the exception class
the SDK picks for that status, carrying the gateway's message and body.

One data plane per I/O driver (module scope), with three tenants:
`acme` (a policy with a blocking rule), `broke` (a credit grant too small
for any request) and `limited` (one request a minute per key, one key per
test so the tests do not share a budget).
"""

import hashlib
import json
import os

import anthropic
import openai
import pytest

from conftest import (
    ANTHROPIC_MODEL,
    GATEWAY_KEY,
    OPENAI_MODEL,
    PROVIDER_KEY,
    WAIT,
    Proc,
    addr_of,
    binary,
    expected_text,
)

BROKE_KEY = "sk-sluice-sdk-broke-1"
LIMITED_OPENAI_KEY = "sk-sluice-sdk-limited-openai"
LIMITED_ANTHROPIC_KEY = "sk-sluice-sdk-limited-anthropic"
RULE_ID = "no-zeus"
MESSAGES = [{"role": "user", "content": "Tell me about Project Zeus."}]
HARMLESS = [{"role": "user", "content": "Say hello."}]


def _sha(key):
    return hashlib.sha256(key.encode()).hexdigest()


def policy_snapshot(mock_url):
    q = json.dumps
    keys = [
        ("k-sdk", "acme", GATEWAY_KEY),
        ("k-broke", "broke", BROKE_KEY),
        ("k-lim-oa", "limited", LIMITED_OPENAI_KEY),
        ("k-lim-an", "limited", LIMITED_ANTHROPIC_KEY),
    ]
    out = ["version = 1\n"]
    for tenant in ("acme", "broke", "limited"):
        out.append(f"[[tenants]]\nid = {q(tenant)}\n")
    for kid, tenant, key in keys:
        out.append(f"[[api_keys]]\nid = {q(kid)}\ntenant = {q(tenant)}\nsha256 = {q(_sha(key))}\n")
    out.append(f"""
[[upstreams]]
name = "mock"
kind = "openai"
base_url = {q(mock_url)}

[[upstreams]]
name = "mock-anthropic"
kind = "anthropic"
base_url = {q(mock_url)}

[[provider_keys]]
id = "pk-shared"
api_key_env = "MOCK_KEY"

[[routes]]
model = {q(OPENAI_MODEL)}
targets = [{{ upstream = "mock", provider_key = "pk-shared" }}]

[[routes]]
model = {q(ANTHROPIC_MODEL)}
targets = [{{ upstream = "mock-anthropic", provider_key = "pk-shared" }}]

[[policies]]
tenant = "acme"
toml = '''
[[rules]]
id = "{RULE_ID}"
action = "block"
when.prompt_contains = ["project zeus"]
'''

[[prices]]
model = {q(OPENAI_MODEL)}
input = 0.15
output = 0.60

[[prices]]
model = {q(ANTHROPIC_MODEL)}
input = 3.0
output = 15.0

[[credits]]
tenant = "broke"
granted_micros = 1

[[rate_limits]]
tenant = "limited"
key = "k-lim-oa"
rpm = 1

[[rate_limits]]
tenant = "limited"
key = "k-lim-an"
rpm = 1
""")
    return "\n".join(out)


class PolicyStack:
    """A mock provider and a data plane on the policy snapshot."""

    def __init__(self, driver, tmp):
        self.procs = []
        base_env = {k: v for k, v in os.environ.items() if k != "MONOIO_FORCE_LEGACY_DRIVER"}
        base_env["RUST_LOG"] = "warn"
        mock = Proc(
            "mock",
            [binary("sluice-loadtest"), "mock", "--listen", "127.0.0.1:0", "--workers", "1",
             "--require-key", PROVIDER_KEY],
            str(tmp / "mock.stderr"),
            base_env,
        )
        self.procs.append(mock)
        mock_url = mock.wait_line("listening on ")
        snapshot = tmp / "snapshot.toml"
        snapshot.write_text(policy_snapshot(mock_url))
        self.records = tmp / "records.jsonl"
        env = dict(base_env, MOCK_KEY=PROVIDER_KEY, RUST_LOG="info")
        if driver == "epoll":
            env["MONOIO_FORCE_LEGACY_DRIVER"] = "1"
        gw = Proc(
            "sluice-dataplane",
            [binary("sluice-dataplane"), "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
             "--snapshot", str(snapshot), "--records", str(self.records), "--workers", "2", "--no-pin"],
            str(tmp / "dataplane.stderr"),
            env,
        )
        self.procs.append(gw)
        self.gateway = gw
        self.addr = addr_of(gw.wait_line("listening on "))

    def openai(self, api_key=GATEWAY_KEY):
        return openai.OpenAI(base_url=f"http://{self.addr}/v1", api_key=api_key, max_retries=0, timeout=WAIT)

    def anthropic(self, api_key=GATEWAY_KEY):
        return anthropic.Anthropic(base_url=f"http://{self.addr}", api_key=api_key, max_retries=0, timeout=WAIT)

    def records_list(self):
        try:
            text = self.records.read_text("utf-8")
        except OSError:
            return []
        complete = text[: text.rfind("\n") + 1]
        return [json.loads(line) for line in complete.splitlines() if line.strip()]

    def wait_record(self, pred, what):
        import time

        deadline = time.monotonic() + WAIT
        while True:
            for rec in self.records_list():
                if pred(rec):
                    return rec
            if time.monotonic() > deadline:
                pytest.fail(f"no record {what} within {WAIT}s; records:\n{self.records_list()}")
            time.sleep(0.05)

    def close(self):
        for p in reversed(self.procs):
            p.close()
        if self.gateway.popen.returncode not in (None, 0, -9):
            pytest.fail(f"data plane exited with {self.gateway.popen.returncode}:\n{self.gateway.stderr()}")


@pytest.fixture(scope="module", params=["uring", "epoll"])
def pstack(request, tmp_path_factory):
    s = PolicyStack(request.param, tmp_path_factory.mktemp(f"sluice-policy-{request.param}"))
    try:
        yield s
    finally:
        s.close()


# ---- policy BLOCK: 403 ---------------------------------------------------


def test_openai_block_raises_permission_denied(pstack):
    client = pstack.openai()
    with pytest.raises(openai.PermissionDeniedError) as info:
        client.chat.completions.create(model=OPENAI_MODEL, messages=MESSAGES)
    e = info.value
    assert e.status_code == 403
    assert RULE_ID in e.message, e.message
    assert isinstance(e.body, dict) and RULE_ID in e.body["message"], e.body
    # A stream is refused the same way, before any event.
    with pytest.raises(openai.PermissionDeniedError) as info:
        client.chat.completions.create(model=OPENAI_MODEL, messages=MESSAGES, stream=True)
    assert RULE_ID in info.value.message
    rec = pstack.wait_record(
        lambda r: r["route"] == "chat_completions" and r.get("verdict") == "BLOCK", "for the block"
    )
    assert rec["status"] == 403 and rec["rule_ids"] == [RULE_ID], rec
    # The same client is not blocked for a harmless prompt.
    resp = client.chat.completions.create(
        model=OPENAI_MODEL, messages=HARMLESS, extra_headers={"x-mock-tokens": "3"}
    )
    assert resp.choices[0].message.content == expected_text(3)


def test_anthropic_block_raises_permission_denied(pstack):
    client = pstack.anthropic()
    with pytest.raises(anthropic.PermissionDeniedError) as info:
        client.messages.create(model=ANTHROPIC_MODEL, max_tokens=32, messages=MESSAGES)
    e = info.value
    assert e.status_code == 403
    assert RULE_ID in e.message, e.message
    assert e.body["type"] == "error" and e.body["error"]["type"] == "permission_error", e.body
    # Blocked in the system prompt too, and on a stream.
    with pytest.raises(anthropic.PermissionDeniedError) as info:
        with client.messages.stream(
            model=ANTHROPIC_MODEL, max_tokens=32, system="You know PROJECT ZEUS.", messages=HARMLESS
        ) as stream:
            for _ in stream:
                pass
    assert RULE_ID in info.value.message


# ---- exhausted credit: 402 -------------------------------------------------


def test_openai_insufficient_credit_is_a_402(pstack):
    client = pstack.openai(BROKE_KEY)
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model=OPENAI_MODEL, messages=HARMLESS, max_tokens=16)
    e = info.value
    # openai maps no class to 402: the base class, with the status and body.
    assert e.status_code == 402, e
    assert not isinstance(e, (openai.RateLimitError, openai.PermissionDeniedError, openai.BadRequestError))
    assert e.body["type"] == "insufficient_quota", e.body
    assert e.code == "insufficient_quota"
    assert e.type == "insufficient_quota"
    rec = pstack.wait_record(
        lambda r: r.get("key_id") == "k-broke" and r["route"] == "chat_completions", "for the 402"
    )
    assert rec["status"] == 402 and rec["error"] == "insufficient_credit", rec


def test_anthropic_insufficient_credit_is_payment_required(pstack):
    client = pstack.anthropic(BROKE_KEY)
    with pytest.raises(anthropic.PaymentRequiredError) as info:
        client.messages.create(model=ANTHROPIC_MODEL, max_tokens=16, messages=HARMLESS)
    e = info.value
    assert e.status_code == 402
    assert e.body["type"] == "error" and e.body["error"]["type"] == "billing_error", e.body


# ---- rate limits: 429 ------------------------------------------------------


def test_openai_rate_limited(pstack):
    client = pstack.openai(LIMITED_OPENAI_KEY)
    resp = client.chat.completions.create(
        model=OPENAI_MODEL, messages=HARMLESS, extra_headers={"x-mock-tokens": "2"}
    )
    assert resp.choices[0].message.content == expected_text(2)
    # One a minute: the next is refused (nothing in this test waits a minute).
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model=OPENAI_MODEL, messages=HARMLESS)
    e = info.value
    assert e.status_code == 429
    assert e.code == "rate_limit_exceeded", e.body
    assert e.response.headers.get("x-sluice-error") == "rate_limited"


def test_anthropic_rate_limited(pstack):
    client = pstack.anthropic(LIMITED_ANTHROPIC_KEY)
    msg = client.messages.create(
        model=ANTHROPIC_MODEL, max_tokens=16, messages=HARMLESS, extra_headers={"x-mock-tokens": "2"}
    )
    assert msg.content[0].text == expected_text(2)
    with pytest.raises(anthropic.RateLimitError) as info:
        client.messages.create(model=ANTHROPIC_MODEL, max_tokens=16, messages=HARMLESS)
    e = info.value
    assert e.status_code == 429
    assert e.body["error"]["type"] == "rate_limit_error", e.body
