//! `--http2`: one request at a time on an HTTP/2 connection (ALPN `h2` over
//! TLS, prior knowledge over TCP), with the `h2` crate over monoio's tokio
//! compatibility layer, and TLS by tokio-rustls over that layer (the `h2`
//! connection reads and writes at once; monoio-rustls's stream, wrapped
//! whole, hung here when it did). The request is the same bytes the HTTP/1.1 client
//! sends, read back into HEADERS and DATA, so both protocols load the
//! target with the same requests; the response is read as it arrives and
//! fed to the same metrics as HTTP/1.1's body.

use std::io;
use std::time::Duration;

use bytes::Bytes;
use h2::client::SendRequest;
use monoio_compat::{AsyncRead, AsyncWrite};

use super::request::{Api, Target};
use super::response::{fail, Clock, Response, Sink, Stale};
use super::stats::ErrorKind;

/// A client HTTP/2 connection; a task of its own drives its frames.
pub(crate) struct H2Conn {
    send: SendRequest<Bytes>,
    authority: String,
    scheme: &'static str,
}

impl H2Conn {
    /// Runs the HTTP/2 handshake on `io` and starts the connection's task.
    pub(crate) async fn handshake<T>(io: T, target: &Target) -> io::Result<H2Conn>
    where
        T: AsyncRead + AsyncWrite + Unpin + 'static,
    {
        let (send, conn) = h2::client::Builder::new()
            .initial_window_size(1 << 20)
            .initial_connection_window_size(4 << 20)
            .handshake::<_, Bytes>(io)
            .await
            .map_err(io::Error::other)?;
        monoio::spawn(async move {
            let _ = conn.await;
        });
        let authority = if target.host.contains(':') {
            format!("[{}]:{}", target.host, target.port)
        } else {
            format!("{}:{}", target.host, target.port)
        };
        Ok(H2Conn {
            send,
            authority,
            scheme: if target.tls { "https" } else { "http" },
        })
    }
}

/// The HTTP/1.1 request bytes `req` as an HTTP/2 request and its body.
fn request(conn: &H2Conn, req: &Bytes) -> Option<(http::Request<()>, Bytes)> {
    let mut fields = [httparse::EMPTY_HEADER; 64];
    let mut parsed = httparse::Request::new(&mut fields);
    let len = match parsed.parse(req) {
        Ok(httparse::Status::Complete(n)) => n,
        _ => return None,
    };
    let uri = format!("{}://{}{}", conn.scheme, conn.authority, parsed.path?);
    let mut builder = http::Request::builder().method(parsed.method?).uri(uri);
    for h in parsed.headers.iter() {
        let name = h.name.to_ascii_lowercase();
        if matches!(
            name.as_str(),
            "host" | "connection" | "keep-alive" | "transfer-encoding" | "upgrade"
        ) {
            continue;
        }
        builder = builder.header(name, h.value);
    }
    let request = builder.body(()).ok()?;
    Some((request, req.slice(len..)))
}

/// Sends `req` on a stream of `conn` and reads the whole response.
pub(crate) async fn exchange(
    conn: &mut H2Conn,
    req: &Bytes,
    api: Api,
    stream: bool,
    clock: Clock,
) -> Result<Response, Stale> {
    let mut resp = Response::default();
    let Some((request, body)) = request(conn, req) else {
        resp.error = Some(ErrorKind::Protocol);
        resp.end_ns = clock.now_ns();
        return Ok(resp);
    };
    let mut send = match conn.send.clone().ready().await {
        Ok(s) => s,
        Err(_) => return Err(Stale),
    };
    let (response, mut body_tx) = match send.send_request(request, body.is_empty()) {
        Ok(pair) => pair,
        Err(_) => return Err(Stale),
    };
    if !body.is_empty() && body_tx.send_data(body, true).is_err() {
        return Err(Stale);
    }
    let response = match response.await {
        Ok(r) => r,
        Err(_) => return Ok(fail(resp, ErrorKind::Truncated, clock)),
    };
    let mut now = clock.now_ns();
    resp.head_ns = Some(now);
    let status = response.status().as_u16();
    let ok_status = (200..300).contains(&status);
    let event_stream = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    let mut sink = Sink::for_response(ok_status, stream && event_stream, api);
    let mut data = response.into_body();
    let mut clean_end = true;
    loop {
        match monoio::time::timeout(Duration::from_secs(3600), data.data()).await {
            Ok(Some(Ok(chunk))) => {
                now = clock.now_ns();
                let _ = data.flow_control().release_capacity(chunk.len());
                sink.feed(&chunk, now);
            }
            Ok(None) => break,
            Ok(Some(Err(_))) | Err(_) => {
                clean_end = false;
                break;
            }
        }
    }
    resp.end_ns = now;
    resp.reusable = clean_end;
    if !ok_status {
        resp.error = Some(ErrorKind::Status(status));
        return Ok(resp);
    }
    if !clean_end {
        resp.error = Some(ErrorKind::Truncated);
    }
    sink.finish(api, &mut resp);
    Ok(resp)
}
