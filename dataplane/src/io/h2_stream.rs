//! One HTTP/2 stream as the two halves of a client connection, so that the
//! request phases serve it with the same code as an HTTP/1.1 connection.
//!
//! The seam is the bytes: the stream's request is presented as an HTTP/1.1
//! head in the read buffer (see [`crate::server::h2_conn`]) and its body,
//! read from the stream's DATA frames, as the bytes that follow it
//! (chunk-framed when the client gave no `content-length`, so the body's
//! end is the stream's end). What the phases write back is an HTTP/1 head,
//! which [`H2Write`] turns into a HEADERS frame (status and end-to-end
//! fields; connection-specific ones dropped, RFC 9113 §8.2.2), and the body
//! bytes, sent as DATA frames as they come, each within the flow-control
//! capacity the client granted (a client that stops reading stops the
//! writes, and the client write timeout ends the stream). The connection
//! serves the stream as it would an HTTP/1.0 client: no chunked coding in
//! the response; the stream's END_STREAM ends it, or a RST_STREAM when the
//! upstream was cut off (a truncated response stays visibly truncated).

use bytes::{Bytes, BytesMut};
use h2::server::SendResponse;
use h2::{Reason, RecvStream, SendStream};
use monoio::BufResult;
use std::cell::RefCell;
use std::future::poll_fn;
use std::io;
use std::rc::Rc;
use std::task::Poll;

/// The stream's sending side, shared by the two halves: the read half
/// watches it for a reset while a response streams.
struct Out {
    respond: SendResponse<Bytes>,
    send: Option<SendStream<Bytes>>,
}

/// The read half of a stream: its request body.
pub struct H2Read {
    body: RecvStream,
    /// Present the body chunk-framed (the client gave no length).
    chunked: bool,
    done: bool,
    out: Rc<RefCell<Out>>,
}

/// The write half of a stream: the response.
pub struct H2Write {
    out: Rc<RefCell<Out>>,
    /// The response head until it is whole.
    head: Vec<u8>,
    head_sent: bool,
}

/// The two halves of a stream whose request is `body`.
pub fn halves(body: RecvStream, chunked: bool, respond: SendResponse<Bytes>) -> (H2Read, H2Write) {
    let out = Rc::new(RefCell::new(Out { respond, send: None }));
    (
        H2Read {
            body,
            chunked,
            done: false,
            out: out.clone(),
        },
        H2Write {
            out,
            head: Vec::new(),
            head_sent: false,
        },
    )
}

fn h2_error(e: h2::Error) -> io::Error {
    io::Error::other(e)
}

impl H2Read {
    /// Appends the next DATA frame's bytes to `buf` (and lets the client
    /// send as much again); `Ok(0)` at the end of the body.
    pub async fn read_append(&mut self, mut buf: BytesMut) -> BufResult<usize, BytesMut> {
        loop {
            if self.done {
                return (Ok(0), buf);
            }
            match self.body.data().await {
                Some(Ok(data)) if data.is_empty() => continue,
                Some(Ok(data)) => {
                    let n = data.len();
                    let _ = self.body.flow_control().release_capacity(n);
                    let before = buf.len();
                    if self.chunked {
                        put_hex(&mut buf, n);
                        buf.extend_from_slice(b"\r\n");
                        buf.extend_from_slice(&data);
                        buf.extend_from_slice(b"\r\n");
                    } else {
                        buf.extend_from_slice(&data);
                    }
                    return (Ok(buf.len() - before), buf);
                }
                Some(Err(e)) => return (Err(h2_error(e)), buf),
                None => {
                    self.done = true;
                    if self.chunked {
                        buf.extend_from_slice(b"0\r\n\r\n");
                        return (Ok(5), buf);
                    }
                    return (Ok(0), buf);
                }
            }
        }
    }

    /// Resolves (`Ok(0)`, as a closed socket would) when the client resets
    /// the stream or the connection ends; never otherwise.
    pub async fn watch(&mut self, buf: BytesMut) -> BufResult<usize, BytesMut> {
        poll_fn(|cx| {
            let mut out = self.out.borrow_mut();
            let reset = match out.send.as_mut() {
                Some(send) => send.poll_reset(cx),
                None => out.respond.poll_reset(cx),
            };
            match reset {
                Poll::Ready(_) => Poll::Ready(()),
                Poll::Pending => Poll::Pending,
            }
        })
        .await;
        (Ok(0), buf)
    }
}

impl H2Write {
    /// Sends `parts` in order: the first bytes are an HTTP/1 response head,
    /// then body bytes. Returns the bytes taken.
    pub async fn write_parts(&mut self, parts: &[&[u8]]) -> io::Result<usize> {
        let mut total = 0;
        for part in parts {
            total += part.len();
            if self.head_sent {
                self.send_body(part).await?;
                continue;
            }
            self.head.extend_from_slice(part);
            let Some(end) = memchr::memmem::find(&self.head, b"\r\n\r\n") else {
                continue;
            };
            let body = self.head.split_off(end + 4);
            self.send_head()?;
            self.send_body(&body).await?;
        }
        Ok(total)
    }

    fn send_head(&mut self) -> io::Result<()> {
        let mut fields = [httparse::EMPTY_HEADER; 128];
        let mut parsed = httparse::Response::new(&mut fields);
        let status = match parsed.parse(&self.head) {
            Ok(httparse::Status::Complete(_)) => parsed.code.unwrap_or(502),
            _ => return Err(io::Error::new(io::ErrorKind::InvalidData, "response head")),
        };
        let mut response = http::Response::builder().status(status);
        for h in parsed.headers.iter() {
            if is_connection_specific(h.name.as_bytes()) {
                continue;
            }
            response = response.header(h.name, h.value);
        }
        let response = response
            .body(())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let mut out = self.out.borrow_mut();
        let send = out.respond.send_response(response, false).map_err(h2_error)?;
        out.send = Some(send);
        self.head_sent = true;
        Ok(())
    }

    /// Sends `data` as DATA frames, each within the capacity the client's
    /// windows grant.
    async fn send_body(&mut self, data: &[u8]) -> io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        // One copy into a buffer the stream owns until the frames are out.
        let mut data = Bytes::copy_from_slice(data);
        while !data.is_empty() {
            let want = data.len();
            let granted = poll_fn(|cx| {
                let mut out = self.out.borrow_mut();
                let Some(send) = out.send.as_mut() else {
                    return Poll::Ready(None);
                };
                // Capacity already assigned is used as it is; only none
                // left waits for the client's window to open.
                let assigned = send.capacity();
                if assigned > 0 {
                    return Poll::Ready(Some(Ok(assigned)));
                }
                send.reserve_capacity(want);
                send.poll_capacity(cx)
            })
            .await;
            let n = match granted {
                Some(Ok(n)) => n,
                Some(Err(e)) => return Err(h2_error(e)),
                None => return Err(io::ErrorKind::BrokenPipe.into()),
            };
            if n == 0 {
                continue;
            }
            let chunk = data.split_to(n.min(data.len()));
            let mut out = self.out.borrow_mut();
            if let Some(send) = out.send.as_mut() {
                send.send_data(chunk, false).map_err(h2_error)?;
            }
        }
        Ok(())
    }

    /// Ends the stream: END_STREAM after a whole response, RST_STREAM with
    /// `reset` otherwise (or when no whole head was ever written).
    pub fn finish(&mut self, reset: Option<Reason>) {
        let mut out = self.out.borrow_mut();
        let out = &mut *out;
        match (reset, out.send.as_mut()) {
            (None, Some(send)) => {
                let _ = send.send_data(Bytes::new(), true);
            }
            (Some(reason), Some(send)) => send.send_reset(reason),
            (reason, None) => out.respond.send_reset(reason.unwrap_or(Reason::INTERNAL_ERROR)),
        }
    }
}

/// Appends `n` in hexadecimal (a chunk size line's number).
fn put_hex(buf: &mut BytesMut, n: usize) {
    let digits = (usize::BITS - n.leading_zeros()).div_ceil(4).max(1);
    for i in (0..digits).rev() {
        buf.extend_from_slice(&[b"0123456789abcdef"[(n >> (i * 4)) & 0xf]]);
    }
}

/// Fields an HTTP/2 message must not carry (RFC 9113 §8.2.2).
fn is_connection_specific(name: &[u8]) -> bool {
    const NAMES: [&[u8]; 6] = [
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"transfer-encoding",
        b"upgrade",
        b"te",
    ];
    NAMES.iter().any(|n| name.eq_ignore_ascii_case(n))
}

#[cfg(test)]
mod tests {
    #[test]
    fn chunk_sizes_are_hex() {
        for (n, hex) in [
            (0usize, "0"),
            (9, "9"),
            (16, "10"),
            (255, "ff"),
            (16384, "4000"),
            (65537, "10001"),
        ] {
            let mut buf = bytes::BytesMut::new();
            super::put_hex(&mut buf, n);
            assert_eq!(&buf[..], hex.as_bytes());
        }
    }
}
