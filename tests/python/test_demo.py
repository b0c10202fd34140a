"""README's first command: `sluice-control demo` runs the whole stack, and
the lines it prints to paste work as printed, with the official SDKs (chat,
Responses, embeddings, Anthropic messages, Gemini through google-genai)
and the CLI."""

import os
import re
import signal
import subprocess
import tempfile
import time

import anthropic
import openai
import sys
from google import genai

from conftest import WAIT, binary


def console_signs_in_once(text, admin_url):
    """The demo prints the console's URL and a sign-in link whose one-time
    code (in the fragment) opens a session once."""
    import json
    import urllib.error
    import urllib.request

    assert f"{admin_url}/ui/" in text, text
    m = re.search(r"^(http://[^\s/]+)/ui/#code=([0-9a-f]{64})$", text, re.M)
    assert m and m.group(1) == admin_url, f"no sign-in link printed:\n{text}"

    def redeem():
        req = urllib.request.Request(
            f"{admin_url}/ui/session", data=json.dumps({"code": m.group(2)}).encode(), method="POST",
            headers={"content-type": "application/json", "origin": admin_url})
        try:
            with urllib.request.urlopen(req, timeout=WAIT) as r:
                return r.status, r.headers.get("set-cookie", "")
        except urllib.error.HTTPError as e:
            return e.code, ""

    status, cookie = redeem()
    assert status == 201 and "HttpOnly" in cookie and "SameSite=Strict" in cookie, (status, cookie)
    assert redeem()[0] == 401, "a sign-in code works once"


def test_the_demo_runs_and_its_lines_work():
    log = tempfile.NamedTemporaryFile(prefix="sluice-demo-", suffix=".log", delete=False)
    demo = subprocess.Popen(
        [binary("sluice-control"), "demo"],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 4 * WAIT
        text = ""
        while time.monotonic() < deadline:
            text = open(log.name, encoding="utf-8", errors="replace").read()
            if "Running; Ctrl-C stops everything." in text:
                break
            assert demo.poll() is None, f"the demo exited early:\n{text}"
            time.sleep(0.5)
        else:
            raise AssertionError(f"the demo did not come up:\n{text}")
        assert "errors 0" in text, text
        env = dict(re.findall(r"^export (SLUICE_[A-Z_]+)=(.*)$", text, re.M))
        for name in ["SLUICE_BASE_URL", "SLUICE_API_KEY", "SLUICE_MODEL", "SLUICE_EMBED_MODEL",
                     "SLUICE_GEMINI_MODEL"]:
            assert env.get(name), f"{name} not printed:\n{text}"

        client = openai.OpenAI(base_url=env["SLUICE_BASE_URL"], api_key=env["SLUICE_API_KEY"], max_retries=0)
        chat = client.chat.completions.create(
            model=env["SLUICE_MODEL"], messages=[{"role": "user", "content": "hi"}]
        )
        assert chat.choices[0].message.content
        assert client.responses.create(model=env["SLUICE_MODEL"], input="hi").output_text
        emb = client.embeddings.create(model=env["SLUICE_EMBED_MODEL"], input="hi")
        assert len(emb.data[0].embedding) > 0
        claude = anthropic.Anthropic(
            base_url=env["SLUICE_BASE_URL"].removesuffix("/v1"), api_key=env["SLUICE_API_KEY"], max_retries=0
        )
        msg = claude.messages.create(
            model="claude-3-5-haiku", max_tokens=64, messages=[{"role": "user", "content": "hi"}]
        )
        assert msg.content[0].text

        # The google-genai snippet, run exactly as printed.
        block = text.split("# Google Gen AI SDK (python, google-genai):\n", 1)[1].split("\n\n", 1)[0]
        run = subprocess.run(
            [sys.executable, "-c", block], env={**os.environ, **env}, capture_output=True, text=True, timeout=WAIT
        )
        assert run.returncode == 0 and run.stdout.strip(), f"{block}\n{run.stdout}\n{run.stderr}"
        gemini = genai.Client(
            api_key=env["SLUICE_API_KEY"], http_options={"base_url": env["SLUICE_BASE_URL"].removesuffix("/v1")}
        )
        streamed = "".join(
            c.text or "" for c in gemini.models.generate_content_stream(model=env["SLUICE_GEMINI_MODEL"], contents="hi")
        )
        assert streamed

        # Records reach control in batches: wait for the last ones.
        deadline = time.monotonic() + WAIT
        while True:
            cli = subprocess.run(
                [binary("sluice-control"), "logs", "--tenant", "demo", "--limit", "10", "--json"],
                env={**os.environ, **env},
                capture_output=True,
                text=True,
                timeout=WAIT,
            )
            assert cli.returncode == 0, cli.stderr
            if "gemini_stream" in cli.stdout or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert "embeddings" in cli.stdout or "responses" in cli.stdout, cli.stdout
        assert "gemini_stream" in cli.stdout and "gemini_generate" in cli.stdout, cli.stdout
        console_signs_in_once(text, env["SLUICE_ADMIN_URL"])
    finally:
        os.killpg(demo.pid, signal.SIGINT)
        try:
            demo.wait(timeout=WAIT)
        except subprocess.TimeoutExpired:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
        os.unlink(log.name)
    assert demo.returncode is not None
