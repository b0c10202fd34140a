//! Gemini's error shape, `{"error":{"code":400,"message":"…","status":
//! "INVALID_ARGUMENT"}}`: Google's canonical status name for each HTTP
//! status the gateway answers with (google.rpc.Code's HTTP mapping).

use std::io::Write;

/// The canonical status name Google writes for HTTP `status`.
pub fn status_name(status: u16) -> &'static str {
    match status {
        400 | 405 | 413 | 415 | 431 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        402 => "FAILED_PRECONDITION",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        408 | 504 => "DEADLINE_EXCEEDED",
        409 => "ABORTED",
        429 => "RESOURCE_EXHAUSTED",
        501 => "UNIMPLEMENTED",
        502 | 503 => "UNAVAILABLE",
        _ => "INTERNAL",
    }
}

/// Writes the error body for `status` with `message`.
pub fn write_body(body: &mut Vec<u8>, status: u16, message: &str) {
    // Writing into a Vec cannot fail.
    let _ = write!(body, "{{\"error\":{{\"code\":{status},\"message\":");
    let _ = serde_json::to_writer(&mut *body, message);
    let _ = write!(body, ",\"status\":\"{}\"}}}}", status_name(status));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape() {
        let mut b = Vec::new();
        write_body(&mut b, 401, "bad \"key\"");
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["error"]["code"], 401);
        assert_eq!(v["error"]["message"], "bad \"key\"");
        assert_eq!(v["error"]["status"], "UNAUTHENTICATED");
        assert_eq!(status_name(429), "RESOURCE_EXHAUSTED");
        assert_eq!(status_name(502), "UNAVAILABLE");
    }
}
