//! A raw HTTP/1.1 client for one streamed chat completion, printing the
//! text deltas as they arrive.

use anyhow::{anyhow, bail, Context};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Streams one OpenAI-style chat completion from the gateway on `port`.
pub(crate) fn chat(port: u16, key: &str, model: &str, prompt: &str) -> anyhow::Result<()> {
    let body = serde_json::json!({
        "model": model, "stream": true, "max_tokens": 64,
        "messages": [{ "role": "user", "content": prompt }],
    })
    .to_string();
    let mut s = TcpStream::connect(("127.0.0.1", port)).context("connecting to the gateway")?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\nauthorization: Bearer {key}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes())?;
    s.write_all(body.as_bytes())?;

    let mut raw = Vec::new();
    let mut chunk = [0u8; 8192];
    let (status, chunked, head_len) = loop {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            bail!("the gateway closed the connection before answering");
        }
        raw.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut headers);
        if let httparse::Status::Complete(len) = resp.parse(&raw).map_err(|e| anyhow!("bad response: {e}"))? {
            let chunked = resp.headers.iter().any(|h| {
                h.name.eq_ignore_ascii_case("transfer-encoding")
                    && String::from_utf8_lossy(h.value)
                        .to_ascii_lowercase()
                        .contains("chunked")
            });
            break (resp.code.unwrap_or(0), chunked, len);
        }
    };
    raw.drain(..head_len);
    if status != 200 {
        let _ = s.read_to_end(&mut raw);
        bail!("HTTP {status}: {}", String::from_utf8_lossy(&raw).trim());
    }
    print!("   ");
    let mut events = Events::default();
    let mut dechunk = Dechunk::default();
    loop {
        let data = if chunked { dechunk.feed(&raw)? } else { raw.clone() };
        raw.clear();
        if events.feed(&data) || dechunk.done {
            break;
        }
        let n = s.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&chunk[..n]);
    }
    println!(
        "\n   ({} events, stream {})",
        events.count,
        if events.done {
            "complete"
        } else {
            "ended without [DONE]"
        }
    );
    Ok(())
}

/// Incremental chunked-transfer decoder.
#[derive(Default)]
struct Dechunk {
    pending: Vec<u8>,
    done: bool,
}

impl Dechunk {
    /// Returns the payload bytes complete so far.
    fn feed(&mut self, bytes: &[u8]) -> anyhow::Result<Vec<u8>> {
        self.pending.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Some(eol) = self.pending.windows(2).position(|w| w == b"\r\n") {
            let line = String::from_utf8_lossy(&self.pending[..eol]).to_string();
            let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| anyhow!("bad chunk size {line:?}"))?;
            if size == 0 {
                self.done = true;
                break;
            }
            if self.pending.len() < eol + 2 + size + 2 {
                break;
            }
            out.extend_from_slice(&self.pending[eol + 2..eol + 2 + size]);
            self.pending.drain(..eol + 2 + size + 2);
        }
        Ok(out)
    }
}

/// SSE line splitter that prints text deltas.
#[derive(Default)]
struct Events {
    line: Vec<u8>,
    count: usize,
    done: bool,
}

impl Events {
    /// Consumes bytes; returns true at `data: [DONE]`.
    fn feed(&mut self, bytes: &[u8]) -> bool {
        for &b in bytes {
            if b != b'\n' {
                self.line.push(b);
                continue;
            }
            let line = String::from_utf8_lossy(&self.line)
                .trim_end_matches('\r')
                .to_owned();
            self.line.clear();
            let Some(data) = line.strip_prefix("data:") else {
                continue;
            };
            let data = data.trim();
            self.count += 1;
            if data == "[DONE]" {
                self.done = true;
                return true;
            }
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(data) {
                let text = v["choices"][0]["delta"]["content"]
                    .as_str()
                    .or_else(|| v["delta"]["text"].as_str());
                if let Some(t) = text {
                    print!("{t}");
                    let _ = std::io::stdout().flush();
                }
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dechunk_across_reads() {
        let mut d = Dechunk::default();
        let mut out = d.feed(b"5\r\nhel").unwrap();
        out.extend(d.feed(b"lo\r\n3\r\n wo\r\n0\r\n\r\n").unwrap());
        assert_eq!(out, b"hello wo");
        assert!(d.done);
    }

    #[test]
    fn events_stop_at_done() {
        let mut e = Events::default();
        assert!(!e.feed(b"data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\r\n\r\nda"));
        assert!(e.feed(b"ta: [DONE]\n\n"));
        assert_eq!(e.count, 2);
    }
}
