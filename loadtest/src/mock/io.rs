//! Writing what a connection buffered, shared by the request loop and the
//! streamer.

use monoio::io::{AsyncWriteRent, AsyncWriteRentExt};
use std::io;

/// Writes out and clears `out`, keeping its allocation.
pub(super) async fn flush<S: AsyncWriteRent>(io: &mut S, out: &mut Vec<u8>) -> io::Result<()> {
    if out.is_empty() {
        return Ok(());
    }
    let (res, mut buf) = io.write_all(std::mem::take(out)).await;
    buf.clear();
    *out = buf;
    res.map(drop)
}
