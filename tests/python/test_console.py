"""The web console at /ui, in a real browser: Debian's Chromium driven by
Playwright (the system executable; no browser download).

A mock provider, `sluice-control serve` and a data plane in control mode
are started as in test_control_sdk.py; the CLI sets up one tenant with a
gateway key for traffic. Everything else is done in the console: a tenant,
its credit and privacy settings, a provider key, a route and a gateway key,
which the openai SDK then uses, until the console revokes it. Every network
response the page receives is captured and searched for the provider-key
secrets and the admin token. Screenshots of each page go to
target/console-screenshots/.
"""

import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request

import openai
import pytest

from conftest import ROOT, WAIT, Proc, addr_of, binary, expected_text

import playwright.sync_api as playwright_api

expect = playwright_api.expect

TENANT = "acme"
KEY_ID = "k1"
NEW_TENANT = "webco"
MODEL = "gpt-4o-mini"
PROVIDER_KEY = "sk-provider-console-canary-7f3a"
ROTATED_KEY = "sk-provider-console-rotated-canary-19bd"
SHOTS = ROOT / "target" / "console-screenshots"
MESSAGES = [{"role": "user", "content": "Say hello to the world."}]


def chromium_path():
    for p in (os.environ.get("SLUICE_CHROMIUM"), shutil.which("chromium"), "/usr/bin/chromium"):
        if p and os.path.exists(p):
            return p
    pytest.fail("no chromium executable: tests/run.sh installs Debian's chromium (apt-get install chromium)")


class Stack:
    """Mock provider, control (serve) and a data plane, set up with the CLI."""

    def __init__(self, tmp, idle_secs=1800, dataplane=True, tls=None):
        self.tmp = tmp
        self.procs = []
        self.data = tmp / "control"
        # Nothing of the caller's Sluice settings leaks in.
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("SLUICE_", "MONOIO_"))}
        self.env["RUST_LOG"] = "info"
        control = self._spawn("control", [binary("sluice-control"), "serve", "--admin", "127.0.0.1:0",
                                          "--sync", "127.0.0.1:0", "--data", str(self.data),
                                          "--console-idle-secs", str(idle_secs),
                                          *(["--admin-tls-cert", tls[0], "--admin-tls-key", tls[1]] if tls else [])])
        self.admin = control.wait_line("admin listening on ").split()[0]
        sync = control.wait_line("sync listening on ").split()[0]
        self.console_url = control.wait_line("console at ")
        assert self.console_url == f"{'https' if tls else 'http'}://{self.admin}/ui/"
        self.token = (self.data / "admin.token").read_text().strip()
        if not dataplane:
            return
        mock = self._spawn("mock", [binary("sluice-loadtest"), "mock", "--listen", "127.0.0.1:0",
                                    "--workers", "1", "--require-key", PROVIDER_KEY])
        self.mock_url = mock.wait_line("listening on ")
        self.ok("tenant", "create", TENANT)
        self.key = self.ok("apikey", "create", "--tenant", TENANT, "--id", KEY_ID).strip()
        assert self.key.startswith("sk-sluice-")
        self.ok("upstream", "add", "mock", "--kind", "openai", "--base-url", self.mock_url)
        self.ok("provider-key", "add", "--tenant", TENANT, "pk", stdin=PROVIDER_KEY)
        self.ok("route", "set", "--tenant", TENANT, "--model", MODEL, "--target", "upstream=mock,key=pk")
        dp_token = self.ok("dataplane", "enroll", "edge1").strip()
        token_file = tmp / "dataplane.token"
        token_file.write_text(dp_token + "\n")
        token_file.chmod(0o600)
        dp = self._spawn("sluice-dataplane", [
            binary("sluice-dataplane"), "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
            "--control", f"http://{sync}", "--token-file", str(token_file),
            "--spool-dir", str(tmp / "spool"), "--workers", "1", "--no-pin"])
        self.addr = addr_of(dp.wait_line("listening on "))

    def _spawn(self, name, args):
        proc = Proc(name, args, str(self.tmp / f"{name}.stderr"), self.env)
        self.procs.append(proc)
        return proc

    def ok(self, *args, stdin=""):
        out = subprocess.run(
            [binary("sluice-control"), *args, "--admin", f"http://{self.admin}", "--data", str(self.data)],
            input=stdin, capture_output=True, text=True, env=self.env, timeout=2 * WAIT)
        assert out.returncode == 0, f"sluice-control {args} failed: {out.stdout}{out.stderr}"
        return out.stdout

    def call(self, method, path, body=None, headers=None):
        """The admin API or the console, raw: (status, headers, body)."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"http://{self.admin}{path}", data=data, method=method,
                                     headers={"content-type": "application/json", **(headers or {})})
        try:
            with urllib.request.urlopen(req, timeout=WAIT) as r:
                return r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read()

    def admin_get(self, path):
        status, _, body = self.call("GET", path, headers={"authorization": f"Bearer {self.token}"})
        assert status == 200, (path, status, body)
        return json.loads(body)

    def wait(self, what, pred):
        deadline = time.monotonic() + WAIT
        while True:
            out = pred()
            if out:
                return out
            if time.monotonic() > deadline:
                pytest.fail(f"not within {WAIT}s: {what}")
            time.sleep(0.1)

    def wait_synced(self):
        """Until the data plane has fetched the current snapshot."""
        def synced():
            v = self.admin_get("/v1/snapshot")["version"]
            return any((d.get("snapshot_version") or 0) >= v for d in self.admin_get("/v1/dataplanes"))
        self.wait("the data plane syncs", synced)

    def openai(self, key):
        return openai.OpenAI(base_url=f"http://{self.addr}/v1", api_key=key, max_retries=0, timeout=WAIT)

    def close(self):
        for p in reversed(self.procs):
            p.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    s = Stack(tmp_path_factory.mktemp("sluice-console"))
    try:
        yield s
    finally:
        s.close()


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        try:
            yield b
        finally:
            b.close()


class Page:
    """A browser page on the console that keeps every response body it
    receives and every console error (CSP violations included)."""

    def __init__(self, browser, stack, **context):
        self.stack = stack
        self.ctx = browser.new_context(viewport={"width": 1400, "height": 1000}, **context)
        self.page = self.ctx.new_page()
        self.pending = []
        self.bodies = []
        self.errors = []
        self.page.on("response", lambda r: self.pending.append(r))
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def drain(self):
        """Reads the bodies of the responses received so far."""
        while self.pending:
            r = self.pending.pop(0)
            try:
                body = r.body()
            except Exception:  # a redirect or a body the browser dropped
                continue
            self.bodies.append((r.url, body))

    def goto(self, page):
        self.page.goto(f"{self.stack.console_url}#/{page}")
        self.page.wait_for_selector(f'#main > [data-page="{page}"]')

    def shot(self, name):
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.wait_for_timeout(300)
        self.page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
        self.drain()

    def sign_in(self, token):
        self.page.goto(self.stack.console_url)
        self.page.fill('#signin input[name="token"]', token)
        self.page.click('#signin button[type="submit"]')

    def assert_no_leak(self, *secrets):
        self.drain()
        html = self.page.content()
        for s in secrets:
            assert s not in html, f"{s[:12]}… in the page's HTML"
            for url, body in self.bodies:
                assert s.encode() not in body, f"{s[:12]}… in the response to {url}"

    def close(self):
        self.ctx.close()


def records(stack, tenant):
    return stack.admin_get(f"/v1/tenants/{tenant}/records?limit=1000")["entries"]


def test_the_console_end_to_end(stack, browser):
    p = Page(browser, stack)
    page = p.page
    try:
        # Sign in with the root token: a cookie the page's script cannot read.
        p.sign_in(stack.token)
        page.wait_for_selector('#main > [data-page="overview"]')
        cookie = next(c for c in p.ctx.cookies() if c["name"] == "sluice_console")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/ui"
        assert page.evaluate("document.cookie") == ""

        # Traffic through the gateway, with the CLI's key.
        stack.wait_synced()
        client = stack.openai(stack.key)
        for n in (3, 5, 8):
            r = client.chat.completions.create(model=MODEL, messages=MESSAGES,
                                               extra_headers={"x-mock-tokens": str(n)})
            assert r.choices[0].message.content == expected_text(n)
        stream = client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True,
                                                extra_headers={"x-mock-tokens": "13"})
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == expected_text(13)
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(model="no-such-model", messages=MESSAGES)
        stack.wait("5 records at control", lambda: len(records(stack, TENANT)) >= 5)

        # The charts and tables show it.
        p.goto("overview")
        page.wait_for_selector('figure[data-chart="requests"] canvas')
        requests_chart = page.locator('figure[data-chart="requests"]')
        assert float(requests_chart.get_attribute("data-total")) == 5 + 1  # 5 requests + 1 error
        assert page.locator('[data-stat="requests"] .v').inner_text() == "5"
        assert page.locator('[data-stat="errors"] .v').inner_text() == "1"
        assert float(page.locator('figure[data-chart="tokens"]').get_attribute("data-total")) > 3 + 5 + 8 + 13
        assert page.locator('figure[data-chart="ttft"]').get_attribute("data-total") != "0"
        assert TENANT in page.locator('figure[data-chart="by-tenant"]').get_attribute("data-series")
        model_row = page.locator(f'table[data-table="by-model"] tr[data-key="{MODEL}"]')
        assert model_row.locator("td").nth(1).inner_text() == "4"
        assert page.locator(f'table[data-table="by-key"] tr[data-key="{KEY_ID}"]').count() == 1
        p.shot("overview")

        # Logs: metadata, filters, paging.
        p.goto("logs")
        page.wait_for_selector(f'#logs-body[data-tenant="{TENANT}"] table[data-table="logs"] tbody tr[data-key]')
        assert page.locator('table[data-table="logs"] tbody tr[data-key]').count() == 5
        page.check('#log-filters input[name="errors"]')
        page.click('#log-filters button[type="submit"]')
        expect(page.locator('table[data-table="logs"] tbody tr[data-key]')).to_have_count(1)
        assert "404" in page.locator('table[data-table="logs"] tbody tr[data-key]').inner_text()
        page.uncheck('#log-filters input[name="errors"]')
        page.fill('#log-filters input[name="limit"]', "2")
        page.click('#log-filters button[type="submit"]')
        rows = page.locator('table[data-table="logs"] tbody tr[data-key]')
        seen = []
        for want in (2, 2, 1):  # 5 records, newest first, 2 a page
            if seen:  # wait for the page to be replaced
                expect(rows.first).not_to_have_attribute("data-key", seen[-2])
            expect(rows).to_have_count(want)
            seen += [rows.nth(i).get_attribute("data-key") for i in range(want)]
            if want == 2:
                page.click("#older")
        assert page.locator("#older").is_disabled()
        assert len(set(seen)) == 5, seen
        api_keys = [f"{e['dataplane']}:{e['seq']}" for e in records(stack, TENANT)]
        assert seen == api_keys, "newest first, each once"
        page.click("#newer")
        expect(rows.first).to_have_attribute("data-key", seen[2])
        expect(rows).to_have_count(2)
        p.shot("logs")

        # A tenant made in the console, with credit, an alert threshold,
        # retention and content logging.
        p.goto("tenants")
        page.fill('#tenant-create input[name="id"]', NEW_TENANT)
        page.fill('#tenant-create input[name="name"]', "Web Co")
        page.fill('#tenant-create input[name="region"]', "eu")
        page.click('#tenant-create button[type="submit"]')
        page.wait_for_selector(f'#tenant-detail[data-tenant="{NEW_TENANT}"] #tenant-credit')
        page.fill('#tenant-credit input[name="add"]', "5")
        page.fill('#tenant-credit input[name="threshold"]', "1")
        page.click('#tenant-credit button[type="submit"]')
        page.wait_for_selector('#tenant-credit [data-credit="balance"]')
        assert "$5.00" in page.locator('#tenant-credit [data-credit="balance"]').inner_text()
        credit = stack.admin_get(f"/v1/credits/{NEW_TENANT}")
        assert (credit["added_micros"], credit["low_balance_micros"]) == (5_000_000, 1_000_000)
        # A threshold above the balance raises a low-balance alert at once.
        page.fill('#tenant-credit input[name="threshold"]', "10")
        page.click('#tenant-credit button[type="submit"]')
        page.wait_for_selector('#tenant-credit [data-credit="balance"] .badge.bad')
        page.check('#tenant-privacy input[name="log_content"]')
        page.fill('#tenant-privacy input[name="retention_days"]', "14")
        page.click('#tenant-privacy button[type="submit"]')
        stack.wait("privacy saved", lambda: stack.admin_get(f"/v1/tenants/{NEW_TENANT}/privacy")["retention_days"] == 14)
        assert stack.admin_get(f"/v1/tenants/{NEW_TENANT}/privacy")["log_content"] is True
        assert stack.admin_get(f"/v1/tenants/{NEW_TENANT}")["region"] == "eu"
        p.shot("tenants")

        # Its provider key, typed into a form, and a gateway key shown once.
        p.goto("keys")
        page.select_option("#tenant-picker", NEW_TENANT)
        page.wait_for_selector(f'#keys-body[data-tenant="{NEW_TENANT}"] #provider-key-add')
        page.fill('#provider-key-add input[name="id"]', "pk-web")
        page.fill('#provider-key-add input[name="secret"]', PROVIDER_KEY)
        page.click('#provider-key-add button[type="submit"]')
        page.wait_for_selector('table[data-table="provider-keys"] tr[data-key="pk-web"]')
        assert page.locator('#provider-key-add input[name="secret"]').input_value() == ""
        page.fill('#apikey-create input[name="id"]', "web1")
        page.click('#apikey-create button[type="submit"]')
        new_key = page.locator("#created-key").inner_text().strip()
        assert new_key.startswith("sk-sluice-web1-")
        p.shot("keys")

        # A route for it, through the console, then the key works in the SDK.
        p.goto("routing")
        page.fill('#upstream-add input[name="name"]', "mock-spare")
        page.fill('#upstream-add input[name="base_url"]', stack.mock_url)
        page.fill('#upstream-add input[name="region"]', "eu")  # the new tenant's region
        page.click('#upstream-add button[type="submit"]')
        page.wait_for_selector('table[data-table="upstreams"] tr[data-key="mock-spare"]')
        page.select_option("#tenant-picker", NEW_TENANT)
        page.wait_for_selector(f'#routes[data-tenant="{NEW_TENANT}"] #route-set')
        page.fill('#route-set input[name="model"]', MODEL)
        page.fill('#route-set input[name="upstream"]', "mock-spare")
        page.fill('#route-set input[name="provider_key"]', "pk-web")
        page.click('#route-set button[type="submit"]')
        page.wait_for_selector(f'table[data-table="routes"] tr[data-key="{MODEL}"]')
        p.shot("routing")
        stack.wait_synced()
        web = stack.openai(new_key)
        canary = "console-content-canary-5be1"
        r = web.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": canary}],
                                        extra_headers={"x-mock-tokens": "4"})
        assert r.choices[0].message.content == expected_text(4)

        # Its record carries opted-in content: marked, and shown only on request.
        stack.wait("the new tenant's record", lambda: records(stack, NEW_TENANT))
        p.goto("logs")
        page.select_option("#tenant-picker", NEW_TENANT)
        page.wait_for_selector(f'#logs-body[data-tenant="{NEW_TENANT}"] button[data-content]')
        assert canary not in page.content()
        page.click("button[data-content]")
        page.wait_for_selector("#content-view pre")
        assert canary in page.locator("#content-view").inner_text()
        p.shot("logs-content")

        # Revoked in the console: the SDK gets AuthenticationError.
        p.goto("keys")
        page.select_option("#tenant-picker", NEW_TENANT)
        page.wait_for_selector(f'#keys-body[data-tenant="{NEW_TENANT}"]')
        page.click('button[data-revoke="web1"]')
        page.wait_for_selector('table[data-table="api-keys"] tr[data-key="web1"] .badge.bad')

        def refused():
            try:
                web.chat.completions.create(model=MODEL, messages=MESSAGES)
                return False
            except openai.AuthenticationError:
                return True
        stack.wait("the revoked key refused", refused)

        # Rotate the provider key in the console: the new secret is not echoed either.
        page.fill('form[data-rotate="pk-web"] input[name="secret"]', ROTATED_KEY)
        page.click('form[data-rotate="pk-web"] button[type="submit"]')
        expect(page.locator("#toast")).to_contain_text("pk-web rotated")
        # Another provider key, added then deleted (after the browser's confirm).
        page.fill('#provider-key-add input[name="id"]', "pk-spare")
        page.fill('#provider-key-add input[name="secret"]', ROTATED_KEY)
        page.click('#provider-key-add button[type="submit"]')
        page.wait_for_selector('table[data-table="provider-keys"] tr[data-key="pk-spare"]')
        page.once("dialog", lambda d: d.accept())
        page.click('button[data-delete="pk-spare"]')
        expect(page.locator('table[data-table="provider-keys"] tr[data-key="pk-spare"]')).to_have_count(0)
        assert [k["id"] for k in stack.admin_get(f"/v1/tenants/{NEW_TENANT}/provider-keys")] == ["pk-web"]
        p.shot("keys-revoked")

        # Alerts, data planes and the audit trail, verified.
        p.goto("alerts")
        alert = page.locator('table[data-table="alerts"] tbody tr[data-key]')
        expect(alert).to_have_count(1)
        assert NEW_TENANT in alert.inner_text() and "low_balance" in alert.inner_text()
        assert "$10.00" in alert.inner_text()
        p.shot("alerts")
        p.goto("dataplanes")
        page.wait_for_selector('table[data-table="dataplanes"] tr[data-key="edge1"]')
        version = stack.admin_get("/v1/snapshot")["version"]
        assert page.locator("#snapshot-version").inner_text().endswith(str(version))
        p.shot("dataplanes")
        p.goto("audit")
        page.wait_for_selector('[data-verified="ok"]')
        by_console = set()
        for row in page.locator('table[data-table="audit"] tbody tr').all():
            cells = row.locator("td").all_inner_texts()
            if cells[2] == "root (console)" and cells[6] == "ok":
                by_console.add(cells[3])
        want = {"tenant.create", "credit.add", "credit.threshold", "tenant.privacy", "provider_key.create",
                "apikey.create", "upstream.add", "route.set", "apikey.revoke", "provider_key.rotate",
                "provider_key.delete", "content.read"}
        assert want <= by_console, want - by_console
        p.shot("audit")

        # Delete behind a typed confirmation.
        p.goto("tenants")
        page.click(f'table[data-table="tenants"] tr[data-key="{NEW_TENANT}"]')
        page.wait_for_selector(f'#tenant-detail[data-tenant="{NEW_TENANT}"] #tenant-delete')
        button = page.locator('#tenant-delete button[type="submit"]')
        page.fill("#delete-confirm", NEW_TENANT[:-1])
        assert button.is_disabled()
        page.fill("#delete-confirm", NEW_TENANT)
        button.click()
        expect(page.locator(f'table[data-table="tenants"] tr[data-key="{NEW_TENANT}"]')).to_have_count(0)
        status, _, _ = stack.call("GET", f"/v1/tenants/{NEW_TENANT}",
                                  headers={"authorization": f"Bearer {stack.token}"})
        assert status == 404

        # No provider secret and no admin token in any page or response.
        p.assert_no_leak(PROVIDER_KEY, ROTATED_KEY, stack.token)
        assert len(p.bodies) > 30, "responses were captured"
        assert not [e for e in p.errors if "Content Security Policy" in e or "Refused" in e], p.errors
    finally:
        p.close()


def test_every_console_response_is_locked_down(stack):
    status, headers, body = stack.call("GET", "/ui/")
    assert status == 200 and b'<script type="module" src="/ui/assets/app.js">' in body
    csp = headers["content-security-policy"]
    assert csp.startswith("default-src 'self'") and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert headers["x-frame-options"] == "DENY"
    assert b"<script>" not in body and b" on" not in body.replace(b" only", b"")
    status, headers, _ = stack.call("GET", "/ui/session")
    assert status == 401 and headers["cache-control"] == "no-store"
    status, headers, _ = stack.call("GET", "/ui/assets/vendor/uplot/uPlot.iife.min.js")
    assert status == 200 and headers["content-type"].startswith("text/javascript")
    assert stack.call("GET", "/ui/assets/../../etc/passwd")[0] == 404


def test_a_wrong_token_a_forged_request_and_an_expired_session_are_refused(browser, tmp_path):
    s = Stack(tmp_path, idle_secs=2, dataplane=False)
    p = Page(browser, s)
    try:
        # A wrong token: refused, no cookie.
        p.sign_in("sat-nobody-" + "0" * 64)
        p.page.wait_for_selector("#signin-error:not(:empty)")
        assert "wrong" in p.page.locator("#signin-error").inner_text()
        assert not [c for c in p.ctx.cookies() if c["name"] == "sluice_console"]

        # A right one signs in; state changes need the CSRF token and our Origin.
        p.sign_in(s.token)
        p.page.wait_for_selector('#main > [data-page="overview"]')
        sid = next(c["value"] for c in p.ctx.cookies() if c["name"] == "sluice_console")
        cookie = {"cookie": f"sluice_console={sid}"}
        origin = {"origin": f"http://{s.admin}"}
        status, _, body = s.call("GET", "/ui/session", headers=cookie)
        assert status == 200
        csrf = json.loads(body)["csrf"]
        new = {"id": "forged"}
        assert s.call("POST", "/ui/api/v1/tenants", new, {**cookie, **origin})[0] == 403
        assert s.call("POST", "/ui/api/v1/tenants", new,
                      {**cookie, "x-sluice-csrf": csrf, "origin": "http://evil.example"})[0] == 403
        assert s.call("POST", "/ui/api/v1/tenants", new, {**cookie, "x-sluice-csrf": csrf})[0] == 403
        assert s.call("POST", "/ui/api/v1/tenants", new, {**cookie, **origin, "x-sluice-csrf": "0" * 64})[0] == 403
        assert s.call("GET", "/ui/api/v1/tenants", headers={"cookie": "sluice_console=" + "ab" * 32})[0] == 401
        assert s.call("POST", "/ui/api/v1/tenants", new, {**cookie, **origin, "x-sluice-csrf": csrf})[0] == 201

        # Idle past the expiry: the session is gone, the page asks to sign in.
        time.sleep(3)
        assert s.call("GET", "/ui/api/v1/tenants", headers=cookie)[0] == 401
        p.page.reload()
        p.page.wait_for_selector("#signin")
        p.shot("signin-expired")

        # A one-time sign-in link (as the demo prints): works once.
        link = s.ok("console", "link").strip()
        assert link.startswith(f"http://{s.admin}/ui/#code=")
        p.page.goto(link)
        p.page.wait_for_selector('#main > [data-page="overview"]')
        assert "#code=" not in p.page.url
        p.page.goto("about:blank")
        p.ctx.clear_cookies()
        p.page.goto(link)
        p.page.wait_for_selector("#signin-error:not(:empty)")
        assert "did not work" in p.page.locator("#signin-error").inner_text()

        # A read-only token signs in with its scope: it cannot change anything.
        ro = s.ok("token", "create", "viewer", "--scope", "read").strip()
        p.sign_in(ro)
        p.page.wait_for_selector('#main > [data-page="overview"]')
        assert "viewer (read)" in p.page.locator("#who").inner_text()
        p.goto("tenants")
        p.page.fill('#tenant-create input[name="id"]', "nope")
        p.page.click('#tenant-create button[type="submit"]')
        p.page.wait_for_selector("#toast div.bad")
        assert "may not POST" in p.page.locator("#toast").inner_text()
        # Revoking the token ends its session.
        s.ok("token", "revoke", "viewer")
        sid = next(c["value"] for c in p.ctx.cookies() if c["name"] == "sluice_console")
        assert s.call("GET", "/ui/api/v1/tenants", headers={"cookie": f"sluice_console={sid}"})[0] == 401
    finally:
        p.close()
        s.close()


def test_under_tls_the_cookie_is_secure(browser, tmp_path):
    """With --admin-tls-cert the console is https://, its cookie Secure, and
    the origin it accepts changes is https:// too."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    s = Stack(tmp_path, dataplane=False, tls=(str(cert), str(key)))
    p = Page(browser, s, ignore_https_errors=True)
    try:
        p.sign_in(s.token)
        p.page.wait_for_selector('#main > [data-page="overview"]')
        cookie = next(c for c in p.ctx.cookies() if c["name"] == "sluice_console")
        assert cookie["secure"] and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        p.goto("tenants")
        p.page.fill('#tenant-create input[name="id"]', "over-tls")
        p.page.click('#tenant-create button[type="submit"]')
        p.page.wait_for_selector('table[data-table="tenants"] tr[data-key="over-tls"]')
    finally:
        p.close()
        s.close()
