//! Body rewrites: what the gateway changes in a request body before it goes
//! upstream (the model name of a route alias, the usage request of a stream).

/// The body to send upstream: `model` replaced for route aliases whose
/// upstream name differs, and `stream_options.include_usage` set when
/// `ask_usage`. `None`: the body is to be sent unchanged.
///
/// The common case — asking for usage when the client sent no
/// `stream_options` — is a splice after the opening brace, not a re-encoding.
pub fn rewrite(body: &[u8], model: Option<&str>, ask_usage: bool) -> Option<Vec<u8>> {
    if model.is_none() && !ask_usage {
        return None;
    }
    let brace = body
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .filter(|&i| body[i] == b'{')?;
    if model.is_none() && memchr::memmem::find(body, b"\"stream_options\"").is_none() {
        const FIELD: &[u8] = b"\"stream_options\":{\"include_usage\":true}";
        let rest = &body[brace + 1..];
        let empty = rest.iter().all(|b| b.is_ascii_whitespace() || *b == b'}');
        let mut out = Vec::with_capacity(body.len() + FIELD.len() + 1);
        out.extend_from_slice(&body[..=brace]);
        out.extend_from_slice(FIELD);
        if !empty {
            out.push(b',');
        }
        out.extend_from_slice(rest);
        return Some(out);
    }
    let mut value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let obj = value.as_object_mut()?;
    if let Some(model) = model {
        obj.insert("model".into(), serde_json::Value::String(model.into()));
    }
    if ask_usage {
        let options = obj
            .entry("stream_options")
            .or_insert_with(|| serde_json::json!({}));
        if !options.is_object() {
            *options = serde_json::json!({});
        }
        if let Some(o) = options.as_object_mut() {
            o.insert("include_usage".into(), serde_json::Value::Bool(true));
        }
    }
    serde_json::to_vec(&value).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_rewrite_keeps_other_fields() {
        let out = rewrite(
            br#"{"model":"alias","messages":[1],"x":{"y":true}}"#,
            Some("real"),
            false,
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["model"], "real");
        assert_eq!(v["x"]["y"], true);
        assert_eq!(v["messages"][0], 1);
        assert_eq!(rewrite(b"{}", None, false), None);
    }

    #[test]
    fn asking_for_usage() {
        let check = |body: &[u8]| {
            let out = rewrite(body, None, true).unwrap();
            let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
            assert_eq!(
                v["stream_options"]["include_usage"],
                true,
                "{}",
                String::from_utf8_lossy(&out)
            );
            v
        };
        let v = check(br#"  {"model":"m","messages":[],"stream":true}"#);
        assert_eq!(v["model"], "m");
        check(b"{}");
        check(b"{ }");
        let v = check(br#"{"model":"m","stream_options":{"include_usage":false,"other":1}}"#);
        assert_eq!(v["stream_options"]["other"], 1);
        check(br#"{"model":"m","stream_options":null}"#);
        let v = check(br#"{"model":"a","stream":true}"#);
        assert_eq!(v["stream"], true);
        assert_eq!(rewrite(b"[1]", None, true), None);
    }
}
