//! The usual setup: one mock, one data plane in front of it, one tenant with
//! one gateway key, and a route per API.
//!
//! The mock runs with `--require-key PROVIDER_KEY`, so every successful
//! answer also proves the data plane injected the tenant's provider key.

use crate::gateway::{Driver, Gateway, GatewayOpts};
use crate::http::{Req, Response};
use crate::mock::{Mock, MockOpts};
use crate::snapshot::Snapshot;
use serde_json::{json, Value};

/// The tenant's gateway key (only its SHA-256 is in the snapshot).
pub const GATEWAY_KEY: &str = "sk-sluice-test-1";
/// A gateway key that is not in the snapshot.
pub const WRONG_KEY: &str = "sk-sluice-test-wrong";
/// The tenant's provider key, given to the data plane as `MOCK_KEY`.
pub const PROVIDER_KEY: &str = "sk-provider-canary-5b1e2d9f";
/// The tenant.
pub const TENANT: &str = "acme";
/// The gateway key's id.
pub const KEY_ID: &str = "k1";
/// The OpenAI route (upstream `mock`, kind openai).
pub const OPENAI_MODEL: &str = "gpt-4o-mini";
/// The Anthropic route (upstream `mock-anthropic`, kind anthropic).
pub const ANTHROPIC_MODEL: &str = "claude-sonnet-4-5";
/// A route open to every tenant.
pub const SHARED_MODEL: &str = "mock-model";
/// A route of another tenant, which `acme` must not see.
pub const OTHER_TENANT_MODEL: &str = "other-tenant-model";

/// The usual snapshot, pointing at the mock at `url`.
pub fn snapshot(url: &str) -> Snapshot {
    Snapshot::new()
        .version(1)
        .tenant(TENANT, None)
        .tenant("other", None)
        .key(KEY_ID, TENANT, GATEWAY_KEY)
        .key("k-other", "other", "sk-sluice-other-tenant")
        .upstream("mock", "openai", url, None)
        .upstream("mock-anthropic", "anthropic", url, None)
        .provider_key("pk", Some(TENANT), "MOCK_KEY")
        .provider_key("pk-other", Some("other"), "MOCK_KEY")
        .provider_key("pk-shared", None, "MOCK_KEY")
        .route(Some(TENANT), OPENAI_MODEL, &[("mock", "pk")])
        .route(Some(TENANT), ANTHROPIC_MODEL, &[("mock-anthropic", "pk")])
        .route(None, SHARED_MODEL, &[("mock", "pk-shared")])
        .route(Some("other"), OTHER_TENANT_MODEL, &[("mock", "pk-other")])
}

/// The tenant, its gateway key and its provider key, without upstreams or
/// routes (for tests that build their own).
pub fn base() -> Snapshot {
    Snapshot::new()
        .version(1)
        .tenant(TENANT, None)
        .key(KEY_ID, TENANT, GATEWAY_KEY)
        .provider_key("pk", Some(TENANT), "MOCK_KEY")
}

/// A chat completions body for `model`.
pub fn openai_body(model: &str, stream: bool) -> Value {
    json!({
        "model": model,
        "messages": [{"role": "user", "content": "Say hello to the whole wide world, please."}],
        "stream": stream,
    })
}

/// A messages body for `model`.
pub fn anthropic_body(model: &str, stream: bool) -> Value {
    json!({
        "model": model,
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": "Say hello to the whole wide world, please."}],
        "stream": stream,
    })
}

/// A mock and a data plane in front of it.
#[derive(Debug)]
pub struct Stack {
    /// The mock provider.
    pub mock: Mock,
    /// The data plane.
    pub gw: Gateway,
}

impl Stack {
    /// The usual stack on `driver`.
    pub fn start(driver: Driver) -> Stack {
        Stack::with(driver, GatewayOpts::default())
    }

    /// The usual stack with data plane options of the caller's.
    pub fn with(driver: Driver, opts: GatewayOpts) -> Stack {
        let mock = Mock::start(MockOpts {
            require_key: Some(PROVIDER_KEY.into()),
            ..MockOpts::default()
        });
        let opts = opts.env("MOCK_KEY", PROVIDER_KEY);
        let gw = Gateway::start(driver, &snapshot(&mock.url), opts);
        Stack { mock, gw }
    }

    /// A mock (requiring [`PROVIDER_KEY`]) and a data plane on the snapshot
    /// `build` makes from the mock's base URL.
    pub fn custom(driver: Driver, opts: GatewayOpts, build: impl FnOnce(&str) -> Snapshot) -> Stack {
        let mock = Mock::start(MockOpts {
            require_key: Some(PROVIDER_KEY.into()),
            ..MockOpts::default()
        });
        let gw = Gateway::start(driver, &build(&mock.url), opts.env("MOCK_KEY", PROVIDER_KEY));
        Stack { mock, gw }
    }

    /// `POST /v1/chat/completions` with the tenant's key and `x-mock-*` headers.
    pub fn chat(&self, body: &Value, mock_headers: &[(&str, &str)]) -> Response {
        let mut req = Req::chat(GATEWAY_KEY, body);
        for (k, v) in mock_headers {
            req = req.header(k, v);
        }
        self.gw.request(&req)
    }

    /// `POST /v1/messages` with the tenant's key and `x-mock-*` headers.
    pub fn messages(&self, body: &Value, mock_headers: &[(&str, &str)]) -> Response {
        let mut req = Req::messages(GATEWAY_KEY, body);
        for (k, v) in mock_headers {
            req = req.header(k, v);
        }
        self.gw.request(&req)
    }
}
