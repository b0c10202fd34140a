//! The response head and the first body bytes in one `writev`.
//!
//! An upstream usually sends its head and the first events in one write, and
//! the relay reads them together. Sending the gateway's head alone and the
//! body after it costs a second syscall here and a second wake-up and read at
//! the client, which then sees its first token one write later than the head
//! (~20 µs on loopback). Copying the body behind the head would cost a copy of
//! the whole read; this type hands both buffers to the kernel as they are.
//!
//! monoio sends a vectored write from any [`IoVecBuf`], an unsafe trait (the
//! kernel reads through the pointers it returns), so this is the one module
//! of the data plane that needs `unsafe`. Its own `write_vectored_all` is not
//! used: in monoio 0.2.4 it resends from the start of a partly written iovec
//! and, after a whole one, hands the kernel an iovec count past the end of
//! its array (`EFAULT`); [`write_all`] here keeps its own place.
#![allow(unsafe_code)]

use bytes::Bytes;
use monoio::buf::IoVecBuf;
use monoio::io::AsyncWriteRent;
use monoio::BufResult;

/// Two owned buffers written in order by one vectored write.
pub struct HeadAndBody {
    head: Vec<u8>,
    /// The kernel reads these through `iov` (a TLS session through
    /// [`HeadAndBody::parts`]).
    body: Bytes,
    /// Where `head` and `body` lie, for the kernel. Boxed, so that the array
    /// stays where it is when the value moves into the runtime.
    iov: Box<[libc::iovec; 2]>,
}

impl HeadAndBody {
    /// `head`, then `body`, ready for one vectored write.
    pub fn new(head: Vec<u8>, body: Bytes) -> Self {
        let iov = Box::new([
            libc::iovec {
                iov_base: head.as_ptr() as *mut libc::c_void,
                iov_len: head.len(),
            },
            libc::iovec {
                iov_base: body.as_ptr() as *mut libc::c_void,
                iov_len: body.len(),
            },
        ]);
        HeadAndBody { head, body, iov }
    }

    /// Bytes not written yet.
    fn remaining(&self) -> usize {
        self.iov.iter().map(|v| v.iov_len).sum()
    }

    /// Marks the next `n` bytes as written: the iovecs then describe what is
    /// left of each part (an empty iovec is skipped by the kernel).
    fn consume(&mut self, mut n: usize) {
        for v in self.iov.iter_mut() {
            let k = n.min(v.iov_len);
            v.iov_base = v.iov_base.cast::<u8>().wrapping_add(k).cast();
            v.iov_len -= k;
            n -= k;
        }
    }

    /// Both parts whole, for a writer that copies them (a TLS session).
    pub fn parts(&self) -> (&[u8], &[u8]) {
        (&self.head, &self.body)
    }

    /// The head's buffer back, for its capacity.
    pub fn into_head(self) -> Vec<u8> {
        self.head
    }
}

/// Writes both parts whole, in order; returns the bytes written.
pub async fn write_all<W: AsyncWriteRent>(
    w: &mut W,
    mut parts: HeadAndBody,
) -> BufResult<usize, HeadAndBody> {
    let mut written = 0;
    while parts.remaining() > 0 {
        let (res, back) = w.writev(parts).await;
        parts = back;
        match res {
            Ok(0) => return (Err(std::io::ErrorKind::WriteZero.into()), parts),
            Ok(n) => {
                written += n;
                parts.consume(n);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return (Err(e), parts),
        }
    }
    (Ok(written), parts)
}

// SAFETY: the two iovecs describe the initialised bytes of `head` and `body`
// not written yet (a suffix of each: `consume` only moves a start forward
// within its part, and only between writes, while no write holds the value).
// Neither buffer can change or be freed while the value lives: both
// are private, owned, and only given back by `into_head`, which consumes the
// value. Moving the value moves neither the heap storage they point into nor
// the boxed array (a `Bytes` and a `Vec` keep their data where it is when
// moved), so the pointers stay valid for as long as the runtime holds it.
unsafe impl IoVecBuf for HeadAndBody {
    fn read_iovec_ptr(&self) -> *const libc::iovec {
        self.iov.as_ptr()
    }

    fn read_iovec_len(&self) -> usize {
        self.iov.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use monoio::io::AsyncReadRentExt;
    use monoio::net::{TcpListener, TcpStream};

    /// Both parts arrive, in order, whole, also when the kernel takes them
    /// in several writes (a body larger than the socket buffer).
    #[monoio::test_all(timer_enabled = true)]
    async fn writes_head_then_body() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let body: Vec<u8> = (0..4_000_000u32).map(|i| (i % 251) as u8).collect();
        let head = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
        let want: Vec<u8> = head.iter().chain(&body).copied().collect();
        let reader = monoio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let (res, got) = s.read_exact(vec![0u8; 4_000_019]).await;
            res.unwrap();
            got
        });
        let mut client = TcpStream::connect(addr).await.unwrap();
        let (res, parts) = write_all(&mut client, HeadAndBody::new(head, Bytes::from(body))).await;
        assert_eq!(res.unwrap(), want.len());
        assert_eq!(parts.into_head(), b"HTTP/1.1 200 OK\r\n\r\n");
        assert_eq!(reader.await, want);
    }
}
