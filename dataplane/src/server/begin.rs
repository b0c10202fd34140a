//! What every request on a client connection begins with, whichever
//! connection loop read it (HTTP/1.1 in [`super::conn`], HTTP/2 in
//! [`super::h2_conn`]): its timestamp, and how a head that does not parse
//! is refused.

use crate::proxy::HeadRefusal;
use crate::respond::ErrorKind;
use sluice_contract::codec::head;
use std::time::SystemTime;

/// How a head that does not parse is refused.
pub(super) fn head_refusal(e: head::HeadError) -> HeadRefusal {
    if e.status() == 431 {
        HeadRefusal::new(ErrorKind::HeadTooLarge, e.label())
    } else {
        HeadRefusal::new(ErrorKind::BadRequest, e.label())
    }
}

/// Milliseconds since the Unix epoch.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
