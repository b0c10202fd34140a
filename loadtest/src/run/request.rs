//! The target URL and the requests sent to it, built once before the run:
//! every (API key, model) combination becomes one ready-to-write `Bytes`.

use std::net::{SocketAddr, ToSocketAddrs};

use anyhow::{bail, Context};
use bytes::Bytes;
use serde_json::{json, Value};

/// Which provider API the target speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Api {
    /// `POST /v1/chat/completions`, `Authorization: Bearer`.
    Openai,
    /// `POST /v1/messages`, `x-api-key`, `anthropic-version`.
    Anthropic,
    /// `POST /v1/responses` (OpenAI Responses), `Authorization: Bearer`.
    Responses,
    /// `POST /v1beta/models/{model}:generateContent` (streamed:
    /// `:streamGenerateContent?alt=sse`), `x-goog-api-key`.
    Gemini,
}

impl Api {
    fn path(self, model: &str, stream: bool) -> String {
        match self {
            Api::Openai => "/v1/chat/completions".into(),
            Api::Anthropic => "/v1/messages".into(),
            Api::Responses => "/v1/responses".into(),
            Api::Gemini if stream => format!("/v1beta/models/{model}:streamGenerateContent?alt=sse"),
            Api::Gemini => format!("/v1beta/models/{model}:generateContent"),
        }
    }

    /// The model used when none is given.
    pub(crate) fn default_model(self) -> &'static str {
        match self {
            Api::Openai | Api::Responses => "gpt-4o-mini",
            Api::Anthropic => "claude-3-5-haiku-latest",
            Api::Gemini => "gemini-2.5-flash",
        }
    }
}

/// Where requests go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Target {
    pub(crate) tls: bool,
    /// Host name or IP literal (without brackets), for SNI and `Host`.
    pub(crate) host: String,
    pub(crate) port: u16,
    /// Path prefix before `/v1/...`, without a trailing slash (may be empty).
    pub(crate) prefix: String,
}

impl Target {
    /// Parses `http[s]://host[:port][/prefix][/v1]`.
    pub(crate) fn parse(url: &str) -> anyhow::Result<Self> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else {
            bail!("URL must start with http:// or https://: {url}");
        };
        if rest.contains(['?', '#']) {
            bail!("URL must not have a query or fragment: {url}");
        }
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let default_port = if tls { 443 } else { 80 };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6.split_once(']').context("unclosed [ in URL host")?;
            (h, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            bail!("URL has no host: {url}");
        }
        let port = match port {
            Some(p) => p
                .parse::<u16>()
                .with_context(|| format!("bad port in URL {url}"))?,
            None => default_port,
        };
        let path = path.trim_end_matches('/');
        let prefix = path.strip_suffix("/v1").unwrap_or(path).to_string();
        Ok(Self {
            tls,
            host: host.to_string(),
            port,
            prefix,
        })
    }

    /// The socket addresses the host resolves to.
    pub(crate) fn resolve(&self) -> anyhow::Result<Vec<SocketAddr>> {
        let addrs: Vec<SocketAddr> = (self.host.as_str(), self.port)
            .to_socket_addrs()
            .with_context(|| format!("cannot resolve {}", self.host))?
            .collect();
        if addrs.is_empty() {
            bail!("{} resolves to no address", self.host);
        }
        Ok(addrs)
    }

    fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == if self.tls { 443 } else { 80 } {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

/// Everything that shapes the request bodies and heads.
#[derive(Clone, Debug, Default)]
pub(crate) struct RequestSpec {
    pub(crate) api: Option<Api>,
    pub(crate) stream: bool,
    pub(crate) api_keys: Vec<String>,
    /// Empty: the API's default model (or the body file's own).
    pub(crate) models: Vec<String>,
    pub(crate) body: Option<Value>,
    pub(crate) prompt: String,
    pub(crate) max_tokens: u64,
    pub(crate) headers: Vec<(String, String)>,
}

/// The prebuilt requests, indexed so that request `i` uses key `i % keys`
/// and model `i % models` (both round-robin).
#[derive(Clone, Debug)]
pub(crate) struct Requests {
    table: Vec<Bytes>,
    keys: usize,
    models: usize,
}

impl Requests {
    pub(crate) fn build(target: &Target, spec: &RequestSpec) -> anyhow::Result<Self> {
        let api = spec.api.unwrap_or(Api::Openai);
        if spec.api_keys.is_empty() {
            bail!("at least one --api-key is needed");
        }
        for (name, value) in &spec.headers {
            if [name, value].iter().any(|s| s.contains(['\r', '\n'])) || name.is_empty() {
                bail!("bad header {name:?}");
            }
        }
        let models: Vec<Option<&str>> = if spec.models.is_empty() {
            vec![None]
        } else {
            spec.models.iter().map(|m| Some(m.as_str())).collect()
        };
        let mut table = Vec::with_capacity(spec.api_keys.len() * models.len());
        for key in &spec.api_keys {
            for model in &models {
                let body = body(api, spec, *model)?;
                let model_name = match api {
                    // Gemini names the model in the path, not the body.
                    Api::Gemini => model.unwrap_or(api.default_model()),
                    _ => "",
                };
                let body = serde_json::to_vec(&body)?;
                let mut req = head(api, target, spec, key, model_name, body.len()).into_bytes();
                req.extend_from_slice(&body);
                table.push(Bytes::from(req));
            }
        }
        Ok(Self {
            table,
            keys: spec.api_keys.len(),
            models: models.len(),
        })
    }

    /// The bytes of request number `i` (a cheap reference-counted clone).
    pub(crate) fn get(&self, i: u64) -> Bytes {
        let k = (i % self.keys as u64) as usize;
        let m = (i % self.models as u64) as usize;
        self.table[k * self.models + m].clone()
    }
}

fn body(api: Api, spec: &RequestSpec, model: Option<&str>) -> anyhow::Result<Value> {
    let mut body = match &spec.body {
        Some(b) if api == Api::Gemini => {
            b.as_object().context("--body-file must hold a JSON object")?;
            return Ok(b.clone());
        }
        Some(b) => {
            let mut b = b.clone();
            let obj = b.as_object_mut().context("--body-file must hold a JSON object")?;
            obj.insert("stream".into(), Value::Bool(spec.stream));
            if let Some(m) = model {
                obj.insert("model".into(), m.into());
            } else if !obj.contains_key("model") {
                obj.insert("model".into(), api.default_model().into());
            }
            return Ok(b);
        }
        None if api == Api::Gemini => {
            return Ok(json!({
                "contents": [{"role": "user", "parts": [{"text": spec.prompt}]}],
                "generationConfig": {"maxOutputTokens": spec.max_tokens},
            }))
        }
        None if api == Api::Responses => json!({
            "model": model.unwrap_or(api.default_model()),
            "max_output_tokens": spec.max_tokens,
            "input": spec.prompt,
            "stream": spec.stream,
        }),
        None => json!({
            "model": model.unwrap_or(api.default_model()),
            "max_tokens": spec.max_tokens,
            "messages": [{"role": "user", "content": spec.prompt}],
            "stream": spec.stream,
        }),
    };
    if api == Api::Openai && spec.stream {
        // Ask for the final usage chunk, so reported tokens can be read.
        body["stream_options"] = json!({"include_usage": true});
    }
    Ok(body)
}

fn head(api: Api, target: &Target, spec: &RequestSpec, key: &str, model: &str, body_len: usize) -> String {
    let has = |name: &str| spec.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
    let mut h = format!(
        "POST {}{} HTTP/1.1\r\nHost: {}\r\n",
        target.prefix,
        api.path(model, spec.stream),
        target.host_header()
    );
    if !has("user-agent") {
        h.push_str("User-Agent: sluice-loadtest\r\n");
    }
    if !has("content-type") {
        h.push_str("Content-Type: application/json\r\n");
    }
    if !has("accept") {
        h.push_str(if spec.stream {
            "Accept: text/event-stream\r\n"
        } else {
            "Accept: application/json\r\n"
        });
    }
    match api {
        Api::Openai | Api::Responses => h.push_str(&format!("Authorization: Bearer {key}\r\n")),
        Api::Gemini => h.push_str(&format!("x-goog-api-key: {key}\r\n")),
        Api::Anthropic => {
            h.push_str(&format!("x-api-key: {key}\r\n"));
            if !has("anthropic-version") {
                h.push_str("anthropic-version: 2023-06-01\r\n");
            }
        }
    }
    for (n, v) in &spec.headers {
        h.push_str(&format!("{n}: {v}\r\n"));
    }
    h.push_str(&format!("Content-Length: {body_len}\r\n\r\n"));
    h
}

/// Parses `name: value`.
pub(crate) fn parse_header(s: &str) -> anyhow::Result<(String, String)> {
    let (n, v) = s
        .split_once(':')
        .with_context(|| format!("header must be 'name: value': {s}"))?;
    Ok((n.trim().to_string(), v.trim().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = Target::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(
            (t.tls, t.host.as_str(), t.port, t.prefix.as_str()),
            (false, "127.0.0.1", 8080, "")
        );
        assert_eq!(Target::parse("http://127.0.0.1:8080/v1/").unwrap().prefix, "");
        assert_eq!(
            Target::parse("https://api.example.com/proxy/v1").unwrap().prefix,
            "/proxy"
        );
        let t = Target::parse("https://[::1]/x").unwrap();
        assert_eq!(
            (t.tls, t.host.as_str(), t.port, t.prefix.as_str()),
            (true, "::1", 443, "/x")
        );
        assert_eq!(t.host_header(), "[::1]");
        for bad in ["ftp://x", "http://", "http://h:99999", "http://h/?q=1"] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }

    fn spec(api: Api) -> RequestSpec {
        RequestSpec {
            api: Some(api),
            stream: true,
            api_keys: vec!["k1".into(), "k2".into()],
            models: vec!["m1".into(), "m2".into(), "m3".into()],
            prompt: "hi".into(),
            max_tokens: 5,
            headers: vec![("x-mock-tokens".into(), "7".into())],
            ..Default::default()
        }
    }

    fn split(req: &Bytes) -> (String, Value) {
        let s = std::str::from_utf8(req).unwrap();
        let (head, body) = s.split_once("\r\n\r\n").unwrap();
        let len: usize = head.split("Content-Length: ").nth(1).unwrap().parse().unwrap();
        assert_eq!(len, body.len());
        (head.to_string(), serde_json::from_str(body).unwrap())
    }

    #[test]
    fn keys_and_models_round_robin() {
        let t = Target::parse("http://127.0.0.1:9/gw").unwrap();
        let r = Requests::build(&t, &spec(Api::Openai)).unwrap();
        let (head, body) = split(&r.get(4));
        assert!(
            head.starts_with("POST /gw/v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:9\r\n"),
            "{head}"
        );
        assert!(head.contains("Authorization: Bearer k1\r\n") && head.contains("x-mock-tokens: 7\r\n"));
        assert_eq!(body["model"], "m2");
        assert_eq!(body["stream"], true);
        assert_eq!(body["stream_options"]["include_usage"], true);
        assert!(split(&r.get(5)).0.contains("Bearer k2"));
    }

    #[test]
    fn anthropic_shape_and_body_file() {
        let t = Target::parse("http://h:1").unwrap();
        let mut s = spec(Api::Anthropic);
        s.models.clear();
        s.stream = false;
        s.body = Some(json!({"model": "own", "max_tokens": 3, "messages": [], "stream": true}));
        let (head, body) = split(&Requests::build(&t, &s).unwrap().get(0));
        assert!(
            head.starts_with("POST /v1/messages ")
                && head.contains("x-api-key: k1\r\nanthropic-version: 2023-06-01\r\n")
        );
        assert_eq!(
            (body["model"].as_str(), body["stream"].as_bool()),
            (Some("own"), Some(false))
        );
    }
}
