"""Ingress TLS, end to end, on both I/O drivers: the official openai SDK over
https with a private CA (made here with the openssl CLI, thrown away with
the test's temporary directory), SNI picking the certificate, TLS 1.2 and
1.3, session resumption, the handshake timeout, a client that leaves a
TLS stream, and a certificate swap on SIGHUP while streams run.

The data plane runs with `--listen-tls 127.0.0.1:0` beside its plain
listener and two certificate pairs: `a.test` (also `localhost` and
127.0.0.1, the first pair, so the default) and `*.b.test`.
"""

import json
import os
import socket
import ssl
import subprocess
import threading
import time

import pytest

from conftest import GATEWAY_KEY, OPENAI_MODEL, WAIT, Stack, addr_of, expected_text


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(d):
    openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=Sluice Test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=d,
    )
    return d / "ca.pem"


def make_leaf(d, name, sans, cn):
    """A leaf certificate for `sans` (openssl's subjectAltName syntax) signed
    by the CA in `d`; returns (cert path, key path)."""
    (d / f"{name}.ext").write_text(
        f"subjectAltName={sans}\nbasicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
    )
    openssl(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}",
        cwd=d,
    )
    openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext",
        cwd=d,
    )
    return d / f"{name}.pem", d / f"{name}.key"


class TlsStack(Stack):
    """conftest's stack (a mock provider, a data plane in front) with a TLS
    listener beside the plain one."""

    def __init__(self, driver, tmp):
        self.tmp = tmp
        self.ca = make_ca(tmp)
        self.a_cert, self.a_key = make_leaf(tmp, "a", "DNS:a.test,DNS:localhost,IP:127.0.0.1", "a.test")
        self.b_cert, self.b_key = make_leaf(tmp, "b", "DNS:*.b.test", "b.test")
        (tmp / "limits.toml").write_text("[limits]\nheader_timeout_ms = 3000\n")
        super().__init__(driver, tmp, extra_args=[
            "--config", str(tmp / "limits.toml"),
            "--listen-tls", "127.0.0.1:0",
            "--tls-cert", str(self.a_cert), "--tls-key", str(self.a_key),
            "--tls-cert", str(self.b_cert), "--tls-key", str(self.b_key),
            "--tls-handshake-timeout-ms", "1000", "--client-write-timeout-ms", "2000",
        ])
        self.tls_addr = addr_of(self.gateway.wait_line("tls listening on "))
        host, port = self.tls_addr.rsplit(":", 1)
        self.tls_host, self.tls_port = host, int(port)

    def context(self, **kw):
        ctx = ssl.create_default_context(cafile=str(self.ca))
        for k, v in kw.items():
            setattr(ctx, k, v)
        return ctx

    def openai(self):
        import httpx
        import openai

        return openai.OpenAI(
            base_url=f"https://{self.tls_addr}/v1",
            api_key=GATEWAY_KEY,
            max_retries=0,
            timeout=WAIT,
            http_client=httpx.Client(verify=self.context(), timeout=WAIT),
        )

    def connect(self, server_hostname="a.test", ctx=None, session=None):
        raw = socket.create_connection((self.tls_host, self.tls_port), timeout=WAIT)
        return (ctx or self.context()).wrap_socket(raw, server_hostname=server_hostname, session=session)

    def peer_names(self, server_hostname):
        with self.connect(server_hostname) as s:
            return sorted(v for k, v in s.getpeercert()["subjectAltName"] if k == "DNS")


@pytest.fixture(scope="module", params=["uring", "epoll"])
def tls_stack(request, tmp_path_factory):
    s = TlsStack(request.param, tmp_path_factory.mktemp(f"sluice-tls-{request.param}"))
    try:
        yield s
    finally:
        s.close()


def http_get(sock, path, host="a.test"):
    sock.sendall(f"GET {path} HTTP/1.1\r\nhost: {host}\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        assert chunk, f"closed before a response head: {data!r}"
        data += chunk
    return data


def test_openai_sdk_over_https(tls_stack):
    client = tls_stack.openai()
    user = "tls-sdk-plain"
    r = client.chat.completions.create(
        model=OPENAI_MODEL,
        messages=[{"role": "user", "content": "hi"}],
        user=user,
        extra_headers={"x-mock-tokens": "7"},
    )
    assert r.choices[0].message.content == expected_text(7)
    stream = client.chat.completions.create(
        model=OPENAI_MODEL,
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
        extra_headers={"x-mock-tokens": "12"},
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == expected_text(12)
    rec = tls_stack.wait_record(lambda r: r.get("stream") and r.get("tls"), "for the TLS stream")
    assert rec["outcome"] == "ok", rec
    assert rec["tls"] == "TLSv1.3", rec
    assert rec["protocol"] == "http/1.1", rec
    assert rec["usage"]["output_tokens"] == 12, rec
    # The plain listener serves beside it, and its records carry no TLS.
    import openai

    plain = openai.OpenAI(base_url=f"http://{tls_stack.addr}/v1", api_key=GATEWAY_KEY, max_retries=0, timeout=WAIT)
    r = plain.chat.completions.create(
        model=OPENAI_MODEL, messages=[{"role": "user", "content": "plain"}], extra_headers={"x-mock-tokens": "3"}
    )
    assert r.choices[0].message.content == expected_text(3)
    rec = tls_stack.wait_record(lambda r: r.get("usage", {}) and r["usage"]["output_tokens"] == 3, "for plain")
    assert "tls" not in rec and rec["protocol"] == "http/1.1", rec


def test_an_untrusted_client_is_refused(tls_stack):
    # Without the private CA the client's verification fails: the
    # gateway's certificate is not one from the public roots.
    ctx = ssl.create_default_context()
    with pytest.raises(ssl.SSLCertVerificationError):
        tls_stack.connect(ctx=ctx)


def test_sni_selects_the_certificate(tls_stack):
    assert tls_stack.peer_names("a.test") == ["a.test", "localhost"]
    assert tls_stack.peer_names("api.b.test") == ["*.b.test"]
    assert tls_stack.peer_names("localhost") == ["a.test", "localhost"]
    # A name no certificate has gets the first pair, which fails the
    # client's check for that name.
    with pytest.raises(ssl.SSLCertVerificationError):
        tls_stack.connect("c.test")
    # Two labels under b.test: the wildcard covers one only.
    with pytest.raises(ssl.SSLCertVerificationError):
        tls_stack.connect("x.y.b.test")


def test_tls12_and_resumption(tls_stack):
    ctx = tls_stack.context(maximum_version=ssl.TLSVersion.TLSv1_2)
    with tls_stack.connect(ctx=ctx) as s:
        assert s.version() == "TLSv1.2"
        assert s.selected_alpn_protocol() is None
        assert b" 200 " in http_get(s, "/healthz")
        session = s.session
    with tls_stack.connect(ctx=ctx, session=session) as s:
        assert s.session_reused, "TLS 1.2 session resumed"
    # TLS 1.3: tickets come after the handshake; read a response first.
    ctx = tls_stack.context()
    ctx.set_alpn_protocols(["http/1.1"])
    with tls_stack.connect(ctx=ctx) as s:
        assert s.version() == "TLSv1.3"
        assert s.selected_alpn_protocol() == "http/1.1"
        assert b" 200 " in http_get(s, "/healthz")
        session = s.session
    with tls_stack.connect(ctx=ctx, session=session) as s:
        assert s.session_reused, "TLS 1.3 session resumed from a ticket"
        assert b" 200 " in http_get(s, "/healthz")


def test_a_silent_handshake_is_closed(tls_stack):
    # --tls-handshake-timeout-ms 1000: a client that sends nothing is closed.
    with socket.create_connection((tls_stack.tls_host, tls_stack.tls_port), timeout=WAIT) as raw:
        assert raw.recv(1) == b""
    # Plain HTTP on the TLS port is not TLS: closed, the worker serves on.
    with socket.create_connection((tls_stack.tls_host, tls_stack.tls_port), timeout=WAIT) as raw:
        raw.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        data = raw.recv(4096)
        assert b"HTTP/1.1" not in data
    with tls_stack.connect() as s:
        assert b" 200 " in http_get(s, "/healthz")


def stream_request(user, tokens, itl_ms):
    body = json.dumps(
        {"model": OPENAI_MODEL, "stream": True, "user": user, "messages": [{"role": "user", "content": "hi"}]}
    )
    return (
        f"POST /v1/chat/completions HTTP/1.1\r\nhost: a.test\r\nauthorization: Bearer {GATEWAY_KEY}\r\n"
        f"content-type: application/json\r\nx-mock-tokens: {tokens}\r\nx-mock-itl-ms: {itl_ms}\r\n"
        f"content-length: {len(body)}\r\n\r\n{body}"
    ).encode()


def test_a_client_that_leaves_a_tls_stream_cancels_it(tls_stack):
    s = tls_stack.connect()
    s.sendall(stream_request("tls-leaver", 2000, 20))
    data = b""
    while b"data:" not in data:
        chunk = s.recv(4096)
        assert chunk
        data += chunk
    s.close()
    rec = tls_stack.wait_record(
        lambda r: r.get("outcome") == "cancelled" and r.get("tls"), "cancelled when the TLS client left"
    )
    assert rec["events"] < 2000, rec


def test_sighup_swaps_certificates_without_dropping_streams(tls_stack):
    client = tls_stack.openai()
    results, errors = [], []

    def one(i):
        try:
            stream = client.chat.completions.create(
                model=OPENAI_MODEL,
                messages=[{"role": "user", "content": "hi"}],
                stream=True,
                user=f"swap-{i}",
                extra_headers={"x-mock-tokens": "60", "x-mock-itl-ms": "25"},
            )
            results.append("".join(c.choices[0].delta.content or "" for c in stream if c.choices))
        except Exception as e:  # noqa: BLE001 - any failure is the test's
            errors.append(repr(e))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    before = serial_of(tls_stack, "a.test")
    # A new certificate for the same names, in place, then SIGHUP.
    new_cert, new_key = make_leaf(tls_stack.tmp, "a2", "DNS:a.test,DNS:localhost,IP:127.0.0.1", "a.test v2")
    os.replace(new_key, tls_stack.a_key)
    os.replace(new_cert, tls_stack.a_cert)
    tls_stack.gateway.popen.send_signal(1)
    deadline = time.monotonic() + WAIT
    while serial_of(tls_stack, "a.test") == before:
        assert time.monotonic() < deadline, "the new certificate was never served"
        time.sleep(0.05)
    swapped = serial_of(tls_stack, "a.test")
    # A broken file: the reload fails and the certificate serving stays.
    tls_stack.a_cert.write_text("not a certificate\n")
    tls_stack.gateway.popen.send_signal(1)
    deadline = time.monotonic() + WAIT
    while "certificate reload failed" not in tls_stack.gateway.stderr():
        assert time.monotonic() < deadline, "no reload error logged"
        time.sleep(0.05)
    assert serial_of(tls_stack, "a.test") == swapped
    for t in threads:
        t.join(WAIT * 2)
    assert not errors, errors
    assert results == [expected_text(60)] * 6
    def whole(r):
        return r.get("stream") and r.get("tls") and (r.get("usage") or {}).get("output_tokens") == 60

    deadline = time.monotonic() + WAIT
    while len([r for r in tls_stack.records_list() if whole(r)]) < 6:
        assert time.monotonic() < deadline, tls_stack.records_list()
        time.sleep(0.05)
    recs = [r for r in tls_stack.records_list() if whole(r)]
    assert [r["outcome"] for r in recs] == ["ok"] * 6, recs
    assert all(r.get("error") is None for r in recs), recs


def serial_of(tls_stack, name):
    with tls_stack.connect(name) as s:
        return s.getpeercert()["serialNumber"]
