//! The web console, served at `/ui` on the admin listener (with its TLS when
//! configured).
//!
//! - `GET /ui/` and `GET /ui/assets/…`: the page and its scripts, styles and
//!   the vendored uPlot, embedded in this binary ([`assets`]); no
//!   authentication, nothing secret in them.
//! - `POST /ui/session` `{"token": T}` or `{"code": C}` signs in: an admin
//!   token (named tokens keep their scope) or a one-time sign-in code from
//!   `POST /v1/console/sign-in` becomes a session cookie ([`session`]).
//!   `GET /ui/session` says who is signed in and hands the page its CSRF
//!   token; `DELETE /ui/session` signs out.
//! - `/ui/api/v1/…`: the admin API itself, with the session in place of the
//!   bearer token: the same handlers, the same scope checks, and every change
//!   recorded in the audit trail, under `<token name> (console)`.
//!
//! Every answer carries a strict Content-Security-Policy (no inline script,
//! no eval, nothing from elsewhere), refuses framing, and all but the static
//! assets are `no-store`. A state-changing request needs the session's CSRF
//! token and the console's own `Origin`.

mod assets;
pub(crate) mod session;
pub(crate) mod stats;

use crate::admin_api::auth::{self, Principal};
use crate::admin_api::ApiError;
use crate::app::App;
use crate::clock::now_ms;
use crate::http::{Request, Response};
use serde::{Deserialize, Serialize};
use session::{Refusal, Session, CSRF_HEADER};
use std::sync::Arc;
use zeroize::Zeroizing;

/// The console's path prefix.
pub(crate) const PREFIX: &str = "/ui";
/// Largest sign-in body.
const SIGN_IN_BODY: usize = 4096;
/// The admin API path that issues sign-in codes (to a bearer token).
const SIGN_IN_CODES: &str = "/v1/console/sign-in";
/// The sessions of this process, each for an admin API principal.
pub(crate) type Sessions = session::Sessions<Principal>;
/// The Content-Security-Policy of every console answer.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; \
                   form-action 'self'; frame-ancestors 'none'";

/// Whether `path` is the console's.
pub(crate) fn owns(path: &str) -> bool {
    path == PREFIX || path == SIGN_IN_CODES || path.strip_prefix(PREFIX).is_some_and(|r| r.starts_with('/'))
}

/// What a console path is.
enum Kind<'a> {
    /// The page or one of its assets.
    Asset,
    /// `/ui/session`.
    Session,
    /// `/ui/api/…`: the admin API path after `/ui/api`.
    Api(&'a str),
    /// `POST /v1/console/sign-in`: a sign-in code for a bearer token.
    SignInCode,
    /// Anything else.
    Unknown,
}

fn kind(path: &str) -> Kind<'_> {
    if path == SIGN_IN_CODES {
        return Kind::SignInCode;
    }
    let rest = path.strip_prefix(PREFIX).unwrap_or("");
    match rest {
        "" | "/" | "/index.html" => Kind::Asset,
        "/session" => Kind::Session,
        _ if rest.starts_with("/assets/") => Kind::Asset,
        _ => match rest.strip_prefix("/api") {
            Some(api) if api.starts_with("/v1/") => Kind::Api(api),
            _ => Kind::Unknown,
        },
    }
}

/// Admits a console request on its head (see `admin_api::admit`).
pub(crate) fn admit(app: &App, sessions: &Sessions, req: &Request) -> Result<usize, Response> {
    match kind(&req.path) {
        Kind::Asset | Kind::Unknown => Ok(0),
        Kind::Session if req.method == "POST" => Ok(SIGN_IN_BODY),
        Kind::Session => Ok(0),
        Kind::SignInCode => auth::authenticate(app, req).map(|_| 0).map_err(Response::from),
        Kind::Api(_) => match signed_in(app, sessions, req) {
            Ok(_) => Ok(crate::admin_api::MAX_BODY),
            Err(r) => Err(secured(refusal(r), true)),
        },
    }
}

/// Answers a console request.
pub(crate) fn handle(app: &Arc<App>, sessions: &Sessions, req: &Request) -> Response {
    let path = req.path.clone();
    let (resp, api) = match kind(&path) {
        Kind::Asset => (asset(req), false),
        Kind::Session => (session_endpoint(app, sessions, req), true),
        Kind::Api(api_path) => (api(app, sessions, req, api_path), true),
        Kind::SignInCode => return sign_in_code(app, sessions, req),
        Kind::Unknown => (Response::error(404, "no such console page"), true),
    };
    secured(resp, api)
}

/// Adds the security headers; `no_store` for anything but static assets.
fn secured(resp: Response, no_store: bool) -> Response {
    resp.with_header("content-security-policy", CSP.into())
        .with_header("x-frame-options", "DENY".into())
        .with_header("x-content-type-options", "nosniff".into())
        .with_header("referrer-policy", "no-referrer".into())
        .with_header("cross-origin-opener-policy", "same-origin".into())
        .with_header("cross-origin-resource-policy", "same-origin".into())
        .with_header(
            "cache-control",
            if no_store { "no-store" } else { "no-cache" }.into(),
        )
}

fn refusal(r: Refusal) -> Response {
    Response::error(r.status(), r.message())
}

fn asset(req: &Request) -> Response {
    if !matches!(req.method.as_str(), "GET" | "HEAD") {
        return Response::error(405, "the console's pages are read with GET");
    }
    let rest = req.path.strip_prefix(PREFIX).unwrap_or("");
    let name = match rest {
        "" | "/" | "/index.html" => "index.html",
        _ => rest.strip_prefix("/assets/").unwrap_or(""),
    };
    match assets::find(name) {
        Some((content_type, body)) => Response {
            status: 200,
            content_type,
            headers: Vec::new(),
            body: body.to_vec(),
        },
        None => Response::error(404, "no such console asset"),
    }
}

/// The session of `req`'s cookie, its token still valid, and for a change
/// its CSRF token and origin checked.
fn signed_in(app: &App, sessions: &Sessions, req: &Request) -> Result<(String, Session<Principal>), Refusal> {
    let cookies = req
        .headers
        .iter()
        .filter(|(n, _)| n == "cookie")
        .map(|(_, v)| v.as_str());
    let id = session::cookie_id(cookies).ok_or(Refusal::NoSession)?;
    let s = sessions.resume(id, now_ms())?;
    if !auth::still_valid(app, &s.principal) {
        sessions.close_all_of(&s.principal.name);
        return Err(Refusal::NoSession);
    }
    if session::changes_state(&req.method) {
        check_origin(sessions, req)?;
        session::check_change(&s, req.header(CSRF_HEADER))?;
    }
    Ok((id.to_owned(), s))
}

fn check_origin(sessions: &Sessions, req: &Request) -> Result<(), Refusal> {
    session::check_origin(
        req.header("origin"),
        req.header("sec-fetch-site"),
        req.header("host"),
        sessions.config().secure,
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignIn {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    code: Option<String>,
}

/// Who is signed in, and the CSRF token the page must send with changes.
#[derive(Serialize)]
struct Whoami<'a> {
    name: &'a str,
    scope: String,
    csrf: &'a str,
    idle_secs: u64,
}

fn whoami<'a>(sessions: &Sessions, s: &'a Session<Principal>) -> Whoami<'a> {
    Whoami {
        name: &s.principal.name,
        scope: s.principal.scope.to_string(),
        csrf: &s.csrf,
        idle_secs: sessions.config().idle_ms / 1000,
    }
}

fn session_endpoint(app: &App, sessions: &Sessions, req: &Request) -> Response {
    let secure = sessions.config().secure;
    match req.method.as_str() {
        "GET" => match signed_in(app, sessions, req) {
            Ok((_, s)) => Response::json(200, &whoami(sessions, &s)),
            Err(r) => refusal(r),
        },
        "POST" => {
            if let Err(r) = check_origin(sessions, req) {
                return refusal(r);
            }
            let principal = match sign_in(app, sessions, req) {
                Ok(p) => p,
                Err(e) => return e.into(),
            };
            // A new id at every sign-in: an id set before it is worth nothing.
            if let Ok((old, _)) = signed_in(app, sessions, req) {
                sessions.close(&old);
            }
            match sessions.open(principal, now_ms()) {
                Ok((id, s)) => {
                    tracing::info!(admin = %s.principal.name, "console sign-in");
                    Response::json(201, &whoami(sessions, &s))
                        .with_header("set-cookie", session::set_cookie(&id, secure))
                }
                Err(e) => ApiError::Internal(e).into(),
            }
        }
        "DELETE" => match signed_in(app, sessions, req) {
            Ok((id, _)) => {
                sessions.close(&id);
                Response::json(200, &serde_json::json!({ "signed_out": true }))
                    .with_header("set-cookie", session::clear_cookie(secure))
            }
            Err(r) => refusal(r),
        },
        _ => Response::error(405, "use GET, POST or DELETE on /ui/session"),
    }
}

fn sign_in(app: &App, sessions: &Sessions, req: &Request) -> Result<Principal, ApiError> {
    let b: SignIn =
        serde_json::from_slice(&req.body).map_err(|e| ApiError::Invalid(format!("bad sign-in body: {e}")))?;
    // Wiped when dropped: the token is a secret.
    let (token, code) = (b.token.map(Zeroizing::new), b.code.map(Zeroizing::new));
    match (token, code) {
        (Some(t), None) => auth::principal_of(app, t.trim()),
        (None, Some(c)) => sessions
            .redeem(c.trim(), now_ms())
            .filter(|p| auth::still_valid(app, p))
            .ok_or_else(|| ApiError::Unauthorized("unknown, used or expired sign-in code".into())),
        _ => Err(ApiError::Invalid("give a token or a code".into())),
    }
}

fn api(app: &Arc<App>, sessions: &Sessions, req: &Request, api_path: &str) -> Response {
    let (_, s) = match signed_in(app, sessions, req) {
        Ok(s) => s,
        Err(r) => return refusal(r),
    };
    let segs: Option<Vec<String>> = api_path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(crate::http::percent_decode)
        .collect();
    let Some(segs) = segs else {
        return ApiError::Invalid("bad percent-encoding in path".into()).into();
    };
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let actor = format!("{} (console)", s.principal.name);
    crate::admin_api::answer_as(app, req, &s.principal, &actor, &segs)
}

/// `POST /v1/console/sign-in` with a bearer token: a one-time code that
/// opens a console session as that token (with its scope), for a link
/// printed by the CLI or the demo. Answered as the admin API answers.
fn sign_in_code(app: &App, sessions: &Sessions, req: &Request) -> Response {
    let issued = (|| {
        let principal = auth::authenticate(app, req)?;
        auth::authorize(&principal, &req.method, &["v1", "console", "sign-in"])?;
        if req.method != "POST" {
            return Err(ApiError::MethodNotAllowed(format!("use POST on {SIGN_IN_CODES}")));
        }
        let (code, expires_ms) = sessions
            .issue_code(principal, now_ms())
            .map_err(ApiError::Unavailable)?;
        Ok(Response::json(
            201,
            &serde_json::json!({
                "path": format!("{}{code}", session::SIGN_IN_PATH),
                "expires_ms": expires_ms,
            }),
        ))
    })();
    issued
        .unwrap_or_else(Response::from)
        .with_header("cache-control", "no-store".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_paths_are_told_apart() {
        assert!(owns("/ui") && owns("/ui/") && owns("/ui/api/v1/tenants"));
        assert!(!owns("/uix") && !owns("/v1/tenants"));
        assert!(matches!(kind("/ui"), Kind::Asset));
        assert!(matches!(kind("/ui/assets/app.js"), Kind::Asset));
        assert!(matches!(kind("/ui/session"), Kind::Session));
        assert!(matches!(kind("/ui/api/v1/tenants"), Kind::Api("/v1/tenants")));
        assert!(matches!(kind("/ui/api/healthz"), Kind::Unknown));
        assert!(matches!(kind("/ui/other"), Kind::Unknown));
        assert!(owns("/v1/console/sign-in") && matches!(kind("/v1/console/sign-in"), Kind::SignInCode));
    }

    #[test]
    fn every_answer_is_framed_by_nothing_and_runs_no_inline_script() {
        let r = secured(Response::empty(200), true);
        let h = |n: &str| {
            r.headers
                .iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| v.clone())
                .unwrap()
        };
        let csp = h("content-security-policy");
        assert!(csp.starts_with("default-src 'self'"));
        assert!(csp.contains("frame-ancestors 'none'"));
        assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"));
        assert_eq!(h("x-frame-options"), "DENY");
        assert_eq!(h("cache-control"), "no-store");
    }

    #[test]
    fn the_page_and_its_assets_are_embedded() {
        for name in [
            "index.html",
            "app.js",
            "app.css",
            "vendor/uplot/uPlot.iife.min.js",
        ] {
            assert!(assets::find(name).is_some(), "{name}");
        }
        assert!(assets::find("../Cargo.toml").is_none());
    }
}
