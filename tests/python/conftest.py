"""Fixtures for the SDK tests: a mock provider and a Sluice data plane in
front of it, started from the binaries `cargo build --workspace --bins`
left in the target directory, on 127.0.0.1 with ports read from stdout.

The `stack` fixture is parametrized over both I/O drivers (the default,
io_uring where the kernel has it, and epoll via MONOIO_FORCE_LEGACY_DRIVER),
so every test that uses it runs twice.
"""

import hashlib
import json
import os
import queue
import subprocess
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WAIT = 30.0

GATEWAY_KEY = "sk-sluice-sdk-test-1"
WRONG_KEY = "sk-sluice-sdk-wrong"
PROVIDER_KEY = "sk-provider-sdk-canary-81c2"
OPENAI_MODEL = "gpt-4o-mini"
ANTHROPIC_MODEL = "claude-mock"
SHARED_MODEL = "mock-model"
GEMINI_MODEL = "gemini-2.5-flash"
GEMINI_EMBED_MODEL = "gemini-embedding-001"

# Token i of every mock completion is VOCAB[i % len(VOCAB)]
# (loadtest/src/mock/text.rs).
VOCAB = [
    " Hello",
    " héllo",
    " 世界",
    " 🚀",
    " naïve",
    " Ω",
    " stream",
    " café",
    " 日本語",
    ",",
    " über",
    ' "quoted"',
    " ☃",
    " señor",
    " 💡",
    ".\n",
]


def expected_text(n):
    return "".join(VOCAB[i % len(VOCAB)] for i in range(n))


def bin_dir():
    if os.environ.get("SLUICE_BIN_DIR"):
        return Path(os.environ["SLUICE_BIN_DIR"])
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    if not target.is_absolute():
        target = ROOT / target
    return target / "debug"


def binary(name):
    path = bin_dir() / name
    if not path.is_file():
        pytest.fail(f"{path} not found: run `cargo build --workspace --bins` first")
    return str(path)


class Proc:
    """A child process: stdout read line by line on a thread, stderr in a
    file, killed on close."""

    def __init__(self, name, args, stderr_path, env):
        self.name = name
        self.stderr_path = stderr_path
        self._stderr = open(stderr_path, "wb")
        self.popen = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=env,
        )
        self.lines = queue.Queue()
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self):
        for raw in self.popen.stdout:
            self.lines.put(raw.decode("utf-8", "replace").rstrip("\n"))
        self.lines.put(None)

    def stderr(self):
        try:
            return Path(self.stderr_path).read_text("utf-8", "replace")[-16000:]
        except OSError:
            return ""

    def wait_line(self, prefix):
        deadline = time.monotonic() + WAIT
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                pytest.fail(f"{self.name}: no line {prefix!r} within {WAIT}s; stderr:\n{self.stderr()}")
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                code = self.popen.wait(timeout=5)
                pytest.fail(f"{self.name} exited ({code}) before printing {prefix!r}; stderr:\n{self.stderr()}")
            if line.startswith(prefix):
                return line[len(prefix):].strip()

    def close(self):
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(timeout=10)
        self._stderr.close()


def addr_of(url):
    return url.split("://", 1)[1]


def snapshot_toml(mock_url):
    key_hash = hashlib.sha256(GATEWAY_KEY.encode()).hexdigest()
    q = json.dumps
    return f"""
version = 1

[[tenants]]
id = "acme"

[[api_keys]]
id = "k-sdk"
tenant = "acme"
sha256 = {q(key_hash)}

[[upstreams]]
name = "mock"
kind = "openai"
base_url = {q(mock_url)}

[[upstreams]]
name = "mock-anthropic"
kind = "anthropic"
base_url = {q(mock_url)}

[[upstreams]]
name = "mock-gemini"
kind = "gemini"
base_url = {q(mock_url)}

[[provider_keys]]
id = "pk"
tenant = "acme"
api_key_env = "MOCK_KEY"

[[provider_keys]]
id = "pk-shared"
api_key_env = "MOCK_KEY"

[[routes]]
tenant = "acme"
model = {q(OPENAI_MODEL)}
targets = [{{ upstream = "mock", provider_key = "pk" }}]

[[routes]]
tenant = "acme"
model = {q(ANTHROPIC_MODEL)}
targets = [{{ upstream = "mock-anthropic", provider_key = "pk" }}]

[[routes]]
tenant = "acme"
model = {q(GEMINI_MODEL)}
targets = [{{ upstream = "mock-gemini", provider_key = "pk" }}]

[[routes]]
tenant = "acme"
model = {q(GEMINI_EMBED_MODEL)}
targets = [{{ upstream = "mock-gemini", provider_key = "pk" }}]

[[routes]]
model = {q(SHARED_MODEL)}
targets = [{{ upstream = "mock", provider_key = "pk-shared" }}]
"""


class Stack:
    """A mock provider (requiring PROVIDER_KEY) and a data plane in front."""

    def __init__(self, driver, tmp, extra_toml=None, extra_args=()):
        """`extra_toml(mock_url)`: more snapshot TOML (a test module's own routes)."""
        self.driver = driver
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
        self.mock_url = mock.wait_line("listening on ")
        snapshot = tmp / "snapshot.toml"
        snapshot.write_text(snapshot_toml(self.mock_url) + (extra_toml(self.mock_url) if extra_toml else ""))
        self.records = tmp / "records.jsonl"
        env = dict(base_env, MOCK_KEY=PROVIDER_KEY, RUST_LOG="info")
        if driver == "epoll":
            env["MONOIO_FORCE_LEGACY_DRIVER"] = "1"
        gw = Proc(
            "sluice-dataplane",
            [binary("sluice-dataplane"), "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
             "--snapshot", str(snapshot), "--records", str(self.records), "--workers", "2", "--no-pin",
             *extra_args],
            str(tmp / "dataplane.stderr"),
            env,
        )
        self.procs.append(gw)
        self.gateway = gw
        self.addr = addr_of(gw.wait_line("listening on "))
        self.admin = addr_of(gw.wait_line("admin on "))

    def openai(self, api_key=GATEWAY_KEY):
        import openai

        return openai.OpenAI(base_url=f"http://{self.addr}/v1", api_key=api_key, max_retries=0, timeout=WAIT)

    def anthropic(self, api_key=GATEWAY_KEY):
        import anthropic

        return anthropic.Anthropic(base_url=f"http://{self.addr}", api_key=api_key, max_retries=0, timeout=WAIT)

    def gemini(self, api_key=GATEWAY_KEY, api_version=None):
        from google import genai

        options = {"base_url": f"http://{self.addr}", "timeout": int(WAIT * 1000)}
        if api_version:
            options["api_version"] = api_version
        return genai.Client(api_key=api_key, http_options=options)
    def records_list(self):
        """Every whole record written so far."""
        try:
            text = self.records.read_text("utf-8")
        except OSError:
            text = ""
        complete = text[: text.rfind("\n") + 1]
        return [json.loads(line) for line in complete.splitlines() if line.strip()]

    def wait_record(self, pred, what):
        deadline = time.monotonic() + WAIT
        while True:
            records = self.records_list()
            for rec in records:
                if pred(rec):
                    return rec
            if time.monotonic() > deadline:
                pytest.fail(f"no record {what} within {WAIT}s; records:\n{records}")
            time.sleep(0.05)

    def close(self):
        for p in reversed(self.procs):
            p.close()
        if self.gateway.popen.returncode not in (None, 0, -9):
            # Killed by us is -9; anything else means it died on its own.
            pytest.fail(f"data plane exited with {self.gateway.popen.returncode}:\n{self.gateway.stderr()}")


@pytest.fixture(scope="module", params=["uring", "epoll"])
def stack(request, tmp_path_factory):
    s = Stack(request.param, tmp_path_factory.mktemp(f"sluice-{request.param}"))
    try:
        yield s
    finally:
        s.close()
