//! Appending reads: monoio's `read(buf)` fills a buffer from offset 0; a
//! connection's buffer keeps bytes not yet consumed, so reads go after them.

use bytes::BytesMut;
use monoio::io::AsyncReadRent;
use monoio::BufResult;

/// Reads into `buf`'s spare capacity, so the bytes already in it stay.
pub async fn read_append<R: AsyncReadRent>(r: &mut R, mut buf: BytesMut) -> BufResult<usize, BytesMut> {
    if buf.capacity() == buf.len() {
        // A full buffer would read zero bytes, indistinguishable from EOF.
        buf.reserve(4096);
    }
    let (len, cap) = (buf.len(), buf.capacity());
    let (res, slice) = r.read(monoio::buf::IoBufMut::slice_mut(buf, len..cap)).await;
    (res, slice.into_inner())
}
