"""HTTP/2, end to end, on both I/O drivers: over TLS by ALPN and in
cleartext by prior knowledge on the plain listener; `httpx` with
`http2=True` streamed (several streams at once on one connection), `curl
--http2` and `--http2-prior-knowledge`, the records' `protocol`, and hostile
input built frame by frame with the `h2` package (rapid reset, an oversized
header list, a CONTINUATION flood, a flow-control window violation, a
client that stops reading): each ends in GOAWAY, RST_STREAM or a close, and
the worker serves the next client.

The stack is test_tls.py's (a private CA, two certificate pairs).
"""

import json
import shutil
import socket
import ssl
import subprocess
import threading
import time

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
import httpx
import pytest
from hyperframe.frame import ContinuationFrame, HeadersFrame

from conftest import GATEWAY_KEY, OPENAI_MODEL, WAIT, expected_text
from test_tls import TlsStack


@pytest.fixture(scope="module", params=["uring", "epoll"])
def h2_stack(request, tmp_path_factory):
    s = TlsStack(request.param, tmp_path_factory.mktemp(f"sluice-h2-{request.param}"))
    try:
        yield s
    finally:
        s.close()


def chat_body(tokens, stream=True):
    return {
        "model": OPENAI_MODEL,
        "stream": stream,
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": tokens,
    }


def sse_text(lines):
    text = ""
    for line in lines:
        if line.startswith("data: ") and line != "data: [DONE]":
            chunk = json.loads(line[6:])
            for c in chunk.get("choices", []):
                text += c.get("delta", {}).get("content") or ""
    return text


def test_httpx_http2_streams_over_tls(h2_stack):
    headers = {"authorization": f"Bearer {GATEWAY_KEY}", "x-mock-itl-ms": "5"}
    with httpx.Client(http2=True, verify=h2_stack.context(), timeout=WAIT) as client:
        url = f"https://{h2_stack.tls_addr}/v1/chat/completions"
        results = {}

        def one(n):
            with client.stream("POST", url, json=chat_body(n), headers={**headers, "x-mock-tokens": str(n)}) as r:
                assert r.http_version == "HTTP/2"
                assert r.status_code == 200
                assert r.headers["content-type"].startswith("text/event-stream")
                results[n] = sse_text(r.iter_lines())

        # Several streams at once on the one connection.
        threads = [threading.Thread(target=one, args=(n,)) for n in (20, 21, 22, 23)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(WAIT)
        assert results == {n: expected_text(n) for n in (20, 21, 22, 23)}
        # Not streamed, and a refusal in the caller's shape.
        r = client.post(url, json=chat_body(5, stream=False), headers={**headers, "x-mock-tokens": "5"})
        assert r.http_version == "HTTP/2" and r.status_code == 200
        assert r.json()["choices"][0]["message"]["content"] == expected_text(5)
        r = client.post(url, json=chat_body(5), headers={"authorization": "Bearer sk-sluice-nope"})
        assert r.status_code == 401 and r.json()["error"]["type"]
    deadline = time.monotonic() + WAIT
    while True:
        recs = [r for r in h2_stack.records_list() if r.get("protocol") == "h2" and r.get("stream")
                and (r.get("usage") or {}).get("output_tokens") in (20, 21, 22, 23)]
        if len(recs) >= 4 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert sorted(r["usage"]["output_tokens"] for r in recs) == [20, 21, 22, 23], recs
    assert all(r["tls"] == "TLSv1.3" and r["outcome"] == "ok" and r.get("error") is None for r in recs), recs


def curl(*args):
    if not shutil.which("curl"):
        pytest.fail("curl is not installed (tests/run.sh installs it)")
    out = subprocess.run(["curl", "-sS", "--max-time", str(int(WAIT)), *args], capture_output=True, timeout=WAIT + 5)
    assert out.returncode == 0, out.stderr
    return out.stdout.decode()


def test_curl_http2_over_tls_and_prior_knowledge(h2_stack):
    body = json.dumps(chat_body(9))
    common = ["-H", f"authorization: Bearer {GATEWAY_KEY}", "-H", "content-type: application/json", "-H", "x-mock-tokens: 9",
              "-d", body, "-w", "\n%{http_version} %{http_code}"]
    port = h2_stack.tls_port
    out = curl("--http2", "--cacert", str(h2_stack.ca), "--resolve", f"a.test:{port}:127.0.0.1",
               f"https://a.test:{port}/v1/chat/completions", *common)
    text, status = out.rsplit("\n", 1)
    assert status == "2 200", out
    assert sse_text(text.splitlines()) == expected_text(9)
    out = curl("--http2-prior-knowledge", f"http://{h2_stack.addr}/v1/chat/completions", *common)
    text, status = out.rsplit("\n", 1)
    assert status == "2 200", out
    assert sse_text(text.splitlines()) == expected_text(9)
    rec = h2_stack.wait_record(lambda r: r.get("protocol") == "h2" and "tls" not in r, "a cleartext h2 request")
    assert rec["outcome"] == "ok", rec
    # HTTP/1.1 on the same plain listener still works beside it.
    out = curl(f"http://{h2_stack.addr}/healthz", "-w", "\n%{http_version} %{http_code}")
    assert out.endswith("1.1 200"), out


class RawH2:
    """A cleartext HTTP/2 client that can send anything at all."""

    def __init__(self, addr, settings=None):
        host, port = addr.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=WAIT)
        config = h2.config.H2Configuration(client_side=True, header_encoding="utf-8", validate_outbound_headers=False)
        self.conn = h2.connection.H2Connection(config=config)
        self.conn.initiate_connection()
        if settings:
            self.conn.update_settings(settings)
        self.flush()

    def flush(self):
        self.sock.sendall(self.conn.data_to_send())

    def request_headers(self, path="/v1/chat/completions", extra=(), end_stream=False):
        return [(":method", "POST" if not end_stream else "GET"), (":path", path), (":scheme", "http"),
                (":authority", "gw"), ("authorization", f"Bearer {GATEWAY_KEY}"), *extra]

    def events_until(self, pred, deadline=WAIT):
        """Reads until an event satisfies `pred` (returned) or the server
        closes (None)."""
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            self.sock.settimeout(max(0.05, end - time.monotonic()))
            try:
                data = self.sock.recv(65536)
            except (ConnectionResetError, socket.timeout):
                return None
            if not data:
                return None
            try:
                events = self.conn.receive_data(data)
            except h2.exceptions.ProtocolError:
                return None
            for e in events:
                if pred(e):
                    return e
            self.flush()
        return None

    def until_closed(self, deadline=10):
        """Reads until the server closes: (the GOAWAY seen, if any; whether
        it closed within `deadline`)."""
        end = time.monotonic() + deadline
        goaway = None
        while time.monotonic() < end:
            self.sock.settimeout(max(0.05, end - time.monotonic()))
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except (ConnectionResetError, BrokenPipeError):
                return goaway, True
            if not data:
                return goaway, True
            try:
                for e in self.conn.receive_data(data):
                    if isinstance(e, h2.events.ConnectionTerminated):
                        goaway = e
            except h2.exceptions.ProtocolError:
                pass
        return goaway, False

    def slow_stream(self):
        """Opens a stream of 400 tokens 20 ms apart; returns its id once its
        first DATA arrived."""
        sid = self.conn.get_next_available_stream_id()
        body = json.dumps(chat_body(400)).encode()
        extra = [("content-type", "application/json"), ("x-mock-tokens", "400"), ("x-mock-itl-ms", "20"),
                 ("content-length", str(len(body)))]
        self.conn.send_headers(sid, self.request_headers(extra=extra))
        self.conn.send_data(sid, body, end_stream=True)
        self.flush()
        assert self.events_until(lambda e: isinstance(e, h2.events.DataReceived)) is not None
        return sid

    def close(self):
        self.sock.close()


def ended(e):
    return isinstance(e, (h2.events.ConnectionTerminated, h2.events.StreamReset))


def still_serves(stack):
    # A new client on either listener is served while the worker that had
    # the hostile connection stays up (2 workers: try a few connections).
    for _ in range(4):
        with httpx.Client(http2=True, verify=stack.context(), timeout=WAIT) as c:
            r = c.get(f"https://{stack.tls_addr}/healthz")
            assert r.status_code == 200 and r.http_version == "HTTP/2"
        out = curl("--http2-prior-knowledge", f"http://{stack.addr}/healthz", "-w", " %{http_code}")
        assert out.endswith(" 200"), out


def test_a_stalled_preface_is_closed(h2_stack):
    # Part of the HTTP/2 preface, then nothing: closed once the header
    # timeout (3 s here) runs out, not kept for the idle timeout (60 s, past
    # this socket's own 30 s timeout, which would fail the test).
    host, port = h2_stack.addr.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=WAIT) as raw:
        raw.sendall(b"PRI * HTTP/2.0\r\n")
        assert raw.recv(1) == b""


def test_rapid_reset_ends_in_goaway(h2_stack):
    c = RawH2(h2_stack.addr)
    goaway = None
    try:
        for i in range(2000):
            sid = c.conn.get_next_available_stream_id()
            c.conn.send_headers(sid, c.request_headers(extra=[("content-type", "application/json")]))
            c.conn.reset_stream(sid)
            c.flush()
    except (BrokenPipeError, ConnectionResetError, h2.exceptions.ProtocolError):
        pass
    goaway, closed = c.until_closed()
    c.close()
    # GOAWAY ENHANCE_YOUR_CALM and the connection closed.
    assert closed, "the connection stayed open"
    if goaway is not None:
        assert goaway.error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM, goaway
    still_serves(h2_stack)


def test_oversized_header_list_is_refused(h2_stack):
    c = RawH2(h2_stack.addr)
    sid = c.conn.get_next_available_stream_id()
    big = [(f"x-pad-{i}", "v" * 1000) for i in range(40)]  # ~40 KiB, limit 16 KiB
    c.conn.send_headers(sid, c.request_headers(path="/healthz", extra=big, end_stream=True), end_stream=True)
    c.flush()
    e = c.events_until(lambda e: ended(e) or isinstance(e, h2.events.ResponseReceived))
    c.close()
    if isinstance(e, h2.events.ResponseReceived):
        status = dict(e.headers)[":status"]
        assert status == "431", e.headers
    # None: closed; StreamReset or ConnectionTerminated: refused too.
    still_serves(h2_stack)


def test_continuation_flood_is_cut_off(h2_stack):
    c = RawH2(h2_stack.addr)
    sid = c.conn.get_next_available_stream_id()
    block = c.conn.encoder.encode(c.request_headers(path="/healthz", end_stream=True))
    first = HeadersFrame(sid, data=block, flags=["END_STREAM"])  # no END_HEADERS
    sent = 0
    try:
        c.sock.sendall(first.serialize())
        frame = ContinuationFrame(sid, data=b"\x40\x01a\x01b" * 200)  # literal fields, never ending
        payload = frame.serialize()
        for _ in range(5000):
            c.sock.sendall(payload)
            sent += 1
    except (BrokenPipeError, ConnectionResetError, socket.timeout):
        pass
    goaway, closed = c.until_closed()
    c.close()
    # GOAWAY (too many CONTINUATION frames for the header list limit) and
    # the connection closed, long before the client was done.
    assert closed, "the connection stayed open"
    assert sent < 5000, sent
    if goaway is not None:
        assert goaway.error_code != h2.errors.ErrorCodes.NO_ERROR, goaway
    still_serves(h2_stack)


def test_a_client_reset_cancels_the_upstream(h2_stack):
    # RST_STREAM(CANCEL) mid-stream: the gateway stops at once (the record
    # says cancelled, long before the 400 events), and the connection and
    # its other streams go on.
    c = RawH2(h2_stack.addr)
    sid = c.slow_stream()
    c.conn.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
    c.flush()
    # (The first such record in this module: the tests after it make more.)
    rec = h2_stack.wait_record(lambda r: r.get("protocol") == "h2" and r.get("outcome") == "cancelled"
                               and r.get("stream") and r.get("status") == 200, "the stream the client reset")
    assert 0 < rec["events"] < 400 and rec["total_us"] < 8_000_000, rec
    # The same connection serves another stream.
    sid = c.conn.get_next_available_stream_id()
    c.conn.send_headers(sid, c.request_headers(path="/healthz", end_stream=True), end_stream=True)
    c.flush()
    got = c.events_until(lambda e: isinstance(e, h2.events.ResponseReceived) and e.stream_id == sid)
    assert got is not None and dict(got.headers)[":status"] == "200", got
    c.close()


def test_window_violations_are_flow_control_errors(h2_stack):
    from hyperframe.frame import WindowUpdateFrame

    # A stream's window pushed past 2^31-1 (RFC 9113 §6.9.1): that stream
    # is reset with FLOW_CONTROL_ERROR while it streams; its record says the
    # client went away.
    c = RawH2(h2_stack.addr)
    sid = c.slow_stream()
    c.sock.sendall(WindowUpdateFrame(sid, window_increment=2**31 - 1).serialize())
    e = c.events_until(lambda e: isinstance(e, h2.events.StreamReset) and e.stream_id == sid)
    assert e is not None and e.error_code == h2.errors.ErrorCodes.FLOW_CONTROL_ERROR, e
    rec = h2_stack.wait_record(lambda r: r.get("protocol") == "h2" and r.get("outcome") == "cancelled"
                               and r.get("stream") and r.get("events", 0) < 400, "the reset stream")
    assert rec["status"] == 200, rec
    # The connection's window pushed past it: GOAWAY FLOW_CONTROL_ERROR.
    c.sock.sendall(WindowUpdateFrame(0, window_increment=2**31 - 1).serialize())
    e = c.events_until(lambda e: isinstance(e, h2.events.ConnectionTerminated))
    c.close()
    assert e is not None and e.error_code == h2.errors.ErrorCodes.FLOW_CONTROL_ERROR, e
    # DATA past the window the server granted: the server may have opened
    # the window meanwhile (it reads the body as it comes), so the
    # connection either survives the body or ends with FLOW_CONTROL_ERROR;
    # never anything else, and the worker goes on.
    from hyperframe.frame import DataFrame

    c = RawH2(h2_stack.addr)
    sid = c.conn.get_next_available_stream_id()
    c.conn.send_headers(sid, c.request_headers(extra=[("content-type", "application/json")]))
    c.flush()
    c.sock.sendall(b"".join(DataFrame(sid, data=b"x" * 16384).serialize() for _ in range(64)))
    e = c.events_until(lambda e: isinstance(e, (h2.events.ConnectionTerminated, h2.events.StreamReset))
                       and e.error_code != h2.errors.ErrorCodes.NO_ERROR, 3)
    c.close()
    if e is not None:
        assert e.error_code == h2.errors.ErrorCodes.FLOW_CONTROL_ERROR, e
    still_serves(h2_stack)


def test_a_client_that_stops_reading_is_cut_off(h2_stack):
    # The client's window is 0: the server may send headers, never DATA.
    c = RawH2(h2_stack.addr, settings={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0})
    c.events_until(lambda e: isinstance(e, h2.events.SettingsAcknowledged), 5)
    sid = c.conn.get_next_available_stream_id()
    body = json.dumps(chat_body(50)).encode()
    c.conn.send_headers(sid, c.request_headers(extra=[("content-type", "application/json"),
                                                      ("content-length", str(len(body)))]))
    c.conn.send_data(sid, body, end_stream=True)
    c.flush()
    got = c.events_until(lambda e: isinstance(e, h2.events.ResponseReceived), 10)
    assert got is not None, "headers come though no DATA can"
    # Meanwhile others are served on the same worker.
    still_serves(h2_stack)
    # --client-write-timeout-ms 2000: the stream that cannot send is ended.
    rec = h2_stack.wait_record(lambda r: r.get("protocol") == "h2" and r.get("error") == "client_write_timeout",
                               "the stalled h2 stream cut off")
    assert rec["outcome"] == "cancelled" and rec["stream"], rec
    reset = c.events_until(lambda e: isinstance(e, h2.events.StreamReset), 10)
    assert reset is not None and reset.stream_id == sid, reset
    c.close()


def test_loadtest_drives_tls_and_http2(h2_stack, tmp_path):
    # sluice-loadtest --tls-ca and --http2, against both listeners.
    from conftest import binary

    runs = {
        "h1-tls": [f"https://localhost:{h2_stack.tls_port}", "--tls-ca", str(h2_stack.ca)],
        "h2-tls": [f"https://localhost:{h2_stack.tls_port}", "--tls-ca", str(h2_stack.ca), "--http2"],
        "h2c": [f"http://{h2_stack.addr}", "--http2"],
    }
    for name, (url, *extra) in runs.items():
        report = tmp_path / f"{name}.json"
        out = subprocess.run(
            [binary("sluice-loadtest"), "run", "--url", url, "--api-key", GATEWAY_KEY, "--model", OPENAI_MODEL,
             "--stream", "--concurrency", "4", "--requests", "100", "--quiet", "--json", str(report), *extra],
            capture_output=True, text=True, timeout=WAIT * 2,
        )
        assert out.returncode == 0, (name, out.stderr)
        r = json.loads(report.read_text())
        assert r["requests"]["ok"] == 100 and r["requests"]["errors"] == 0, (name, r["requests"])
        assert r["requests"]["completed_streams"] == 100, (name, r["requests"])
