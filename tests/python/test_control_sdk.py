"""The official `openai` and `anthropic` SDKs against a data plane that gets
its configuration from the control plane.

Everything is set up the way an operator would: `sluice-control serve`,
then the CLI creates a tenant, a gateway key (read back from what the CLI
prints), upstreams pointing at the mock provider, a provider key (on
stdin), routes, and enrolls a data plane, which is then started with
`--control`. The SDK calls go through it, and their records are read back
with `sluice-control logs --json` and `usage --json`.

The `fleet` fixture is parametrized over both I/O drivers of the data plane.
"""

import json
import os
import subprocess
import time

import anthropic
import openai
import pytest

from conftest import WAIT, Proc, addr_of, binary, expected_text

TENANT = "acme"
KEY_ID = "k1"
DATAPLANE_ID = "edge1"
OPENAI_MODEL = "gpt-4o-mini"
ANTHROPIC_MODEL = "claude-mock"
PROVIDER_KEY = "sk-provider-control-sdk-canary-5d0e"
MESSAGES = [{"role": "user", "content": "Say hello to the world."}]


class Fleet:
    """The mock provider, `serve`, and a data plane in control mode,
    configured with the CLI."""

    def __init__(self, driver, tmp):
        self.procs = []
        self.tmp = tmp
        self.data = tmp / "control"
        env = {k: v for k, v in os.environ.items()
               if k not in ("MONOIO_FORCE_LEGACY_DRIVER", "SLUICE_DATA", "SLUICE_ADMIN_TOKEN",
                            "SLUICE_ADMIN_URL", "SLUICE_MASTER_KEY")}
        env["RUST_LOG"] = "info"
        self.env = env

        mock = self._spawn("mock", [binary("sluice-loadtest"), "mock", "--listen", "127.0.0.1:0",
                                    "--workers", "1", "--require-key", PROVIDER_KEY], env)
        mock_url = mock.wait_line("listening on ")

        control = self._spawn("control", [binary("sluice-control"), "serve", "--admin", "127.0.0.1:0",
                                          "--sync", "127.0.0.1:0", "--data", str(self.data)], env)
        self.admin = control.wait_line("admin listening on ").split()[0]
        sync = control.wait_line("sync listening on ").split()[0]

        self.ok("tenant", "create", TENANT)
        self.key = self.printed_once(self.ok("apikey", "create", "--tenant", TENANT, "--id", KEY_ID),
                                     "sk-sluice-")
        self.ok("upstream", "add", "mock", "--kind", "openai", "--base-url", mock_url)
        self.ok("upstream", "add", "mock-anthropic", "--kind", "anthropic", "--base-url", mock_url)
        self.ok("provider-key", "add", "--tenant", TENANT, "pk", stdin=PROVIDER_KEY)
        self.ok("route", "set", "--tenant", TENANT, "--model", OPENAI_MODEL,
                "--target", "upstream=mock,key=pk")
        self.ok("route", "set", "--tenant", TENANT, "--model", ANTHROPIC_MODEL,
                "--target", "upstream=mock-anthropic,key=pk")
        token = self.printed_once(self.ok("dataplane", "enroll", DATAPLANE_ID), "sdp-")
        token_file = tmp / "dataplane.token"
        token_file.write_text(token + "\n")
        token_file.chmod(0o600)

        dp_env = dict(env)
        if driver == "epoll":
            dp_env["MONOIO_FORCE_LEGACY_DRIVER"] = "1"
        dp = self._spawn("sluice-dataplane", [
            binary("sluice-dataplane"), "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
            "--control", f"http://{sync}", "--token-file", str(token_file),
            "--spool-dir", str(tmp / "spool"), "--workers", "2", "--no-pin"], dp_env)
        self.dataplane = dp
        self.addr = addr_of(dp.wait_line("listening on "))

    def _spawn(self, name, args, env):
        proc = Proc(name, args, str(self.tmp / f"{name}.stderr"), env)
        self.procs.append(proc)
        return proc

    def cli(self, *args, stdin=""):
        return subprocess.run(
            [binary("sluice-control"), *args, "--admin", f"http://{self.admin}", "--data", str(self.data)],
            input=stdin, capture_output=True, text=True, env=self.env, timeout=2 * WAIT,
        )

    def ok(self, *args, stdin=""):
        out = self.cli(*args, stdin=stdin)
        assert out.returncode == 0, f"sluice-control {args} failed: {out.stdout}{out.stderr}"
        return out.stdout

    @staticmethod
    def printed_once(stdout, prefix):
        lines = [l.strip() for l in stdout.splitlines() if l.strip()]
        assert len(lines) == 1 and lines[0].startswith(prefix), f"expected one {prefix}... line: {stdout!r}"
        return lines[0]

    def logs(self):
        return json.loads(self.ok("logs", "--tenant", TENANT, "--limit", "10000", "--json"))

    def wait_logs(self, n):
        deadline = time.monotonic() + WAIT
        while True:
            entries = self.logs()
            if len(entries) >= n:
                return entries
            if time.monotonic() > deadline:
                pytest.fail(f"expected {n} records within {WAIT}s, got {len(entries)}:\n{entries}")
            time.sleep(0.1)

    def usage(self):
        return json.loads(self.ok("usage", "--tenant", TENANT, "--json"))

    def openai(self, api_key=None):
        return openai.OpenAI(base_url=f"http://{self.addr}/v1", api_key=api_key or self.key,
                             max_retries=0, timeout=WAIT)

    def anthropic(self):
        return anthropic.Anthropic(base_url=f"http://{self.addr}", api_key=self.key,
                                   max_retries=0, timeout=WAIT)

    def close(self):
        for p in reversed(self.procs):
            p.close()
        if self.dataplane.popen.returncode not in (None, 0, -9):
            pytest.fail(f"data plane exited with {self.dataplane.popen.returncode}:\n"
                        f"{self.dataplane.stderr()}")


@pytest.fixture(scope="module", params=["uring", "epoll"])
def fleet(request, tmp_path_factory):
    f = Fleet(request.param, tmp_path_factory.mktemp(f"sluice-control-{request.param}"))
    try:
        yield f
    finally:
        f.close()


def new_records(fleet, before, n):
    """Waits for exactly `n` records beyond the `before` already listed;
    returns them (each `{dataplane, seq, record}`)."""
    seen = {(e["dataplane"], e["seq"]) for e in before}
    entries = fleet.wait_logs(len(before) + n)
    keys = [(e["dataplane"], e["seq"]) for e in entries]
    assert len(set(keys)) == len(keys), f"a record listed twice: {entries}"
    fresh = [e for e in entries if (e["dataplane"], e["seq"]) not in seen]
    assert len(fresh) == n, f"expected {n} new records: {fresh}"
    for e in fresh:
        r = e["record"]
        assert e["dataplane"] == DATAPLANE_ID
        assert (r["tenant"], r["key_id"], r["status"], r["outcome"]) == (TENANT, KEY_ID, 200, "ok"), r
    return [e["record"] for e in fresh]


def usage_of(fleet, model):
    rows = [u for u in fleet.usage() if u["model"] == model]
    return (sum(u["requests"] for u in rows), sum(u["output_tokens"] for u in rows))


def test_openai_sdk_through_control(fleet):
    before = fleet.logs()
    usage_before = usage_of(fleet, OPENAI_MODEL)
    client = fleet.openai()

    resp = client.chat.completions.create(
        model=OPENAI_MODEL, messages=MESSAGES, extra_headers={"x-mock-tokens": "13"})
    assert resp.choices[0].message.content == expected_text(13)
    assert resp.usage.completion_tokens == 13

    stream = client.chat.completions.create(
        model=OPENAI_MODEL, messages=MESSAGES, stream=True, extra_headers={"x-mock-tokens": "21"})
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == expected_text(21)

    with pytest.raises(openai.AuthenticationError):
        fleet.openai(api_key=fleet.key + "x").chat.completions.create(model=OPENAI_MODEL, messages=MESSAGES)

    records = new_records(fleet, before, 2)
    by_stream = {r["stream"]: r for r in records}
    assert set(by_stream) == {False, True}, records
    assert by_stream[False]["usage"]["output_tokens"] == 13
    assert by_stream[True]["usage"]["output_tokens"] == 21
    assert all(r["route"] == "chat_completions" and r["model"] == OPENAI_MODEL for r in records)

    requests, output = usage_of(fleet, OPENAI_MODEL)
    assert (requests - usage_before[0], output - usage_before[1]) == (2, 13 + 21)


def test_anthropic_sdk_through_control(fleet):
    before = fleet.logs()
    usage_before = usage_of(fleet, ANTHROPIC_MODEL)
    client = fleet.anthropic()

    msg = client.messages.create(model=ANTHROPIC_MODEL, max_tokens=64, messages=MESSAGES,
                                 extra_headers={"x-mock-tokens": "8"})
    assert msg.content[0].text == expected_text(8)
    assert msg.usage.output_tokens == 8

    with client.messages.stream(model=ANTHROPIC_MODEL, max_tokens=64, messages=MESSAGES,
                                extra_headers={"x-mock-tokens": "19"}) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == expected_text(19)
    assert final.usage.output_tokens == 19

    records = new_records(fleet, before, 2)
    assert sorted(r["usage"]["output_tokens"] for r in records) == [8, 19], records
    assert all(r["route"] == "messages" and r["model"] == ANTHROPIC_MODEL for r in records)
    assert sorted(r["stream"] for r in records) == [False, True]

    requests, output = usage_of(fleet, ANTHROPIC_MODEL)
    assert (requests - usage_before[0], output - usage_before[1]) == (2, 8 + 19)


def test_translated_route_set_with_the_cli(fleet):
    """`route set --on-unsupported drop` on a route whose target speaks
    Anthropic: the openai SDK is served through it, the field without an
    equivalent dropped and named."""
    model = "gpt-on-claude"
    fleet.ok("route", "set", "--tenant", TENANT, "--model", model,
             "--target", "upstream=mock-anthropic,key=pk,model=claude-mock", "--on-unsupported", "drop")
    routes = json.loads(fleet.ok("route", "list", "--tenant", TENANT, "--json"))
    assert [r.get("on_unsupported") for r in routes if r["model"] == model] == ["drop"]
    client = fleet.openai()
    deadline = time.monotonic() + WAIT
    while True:
        try:
            raw = client.chat.completions.with_raw_response.create(
                model=model, messages=MESSAGES, max_tokens=4, seed=3, extra_headers={"x-mock-tokens": "4"})
            break
        except openai.NotFoundError:
            # The data plane has not polled the new snapshot yet.
            assert time.monotonic() < deadline, "the route never reached the data plane"
            time.sleep(0.1)
    assert raw.headers["x-sluice-dropped-fields"] == "seed"
    resp = raw.parse()
    assert resp.choices[0].message.content == expected_text(4)
    assert resp.choices[0].finish_reason == "stop"
    deadline = time.monotonic() + WAIT
    while True:
        recs = [e["record"] for e in fleet.logs() if e["record"].get("model") == model]
        if recs or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert recs, "no record of the translated request"
    rec = recs[-1]
    assert rec["translation"] == "openai_to_anthropic"
    assert rec["dropped_fields"] == "seed"
