//! Console sessions: an admin token (or a one-time sign-in code) exchanged
//! for a random session id in an HttpOnly, SameSite=Strict cookie.
//!
//! - Sessions live in this process's memory only: a restart signs everyone
//!   out, and nothing of them reaches the disk. The map is keyed by the
//!   SHA-256 of the id, so the ids themselves are not kept, and a look-up
//!   compares hashes, not the secret.
//! - A session ends after [`Config::idle_ms`] without a request, after
//!   [`MAX_AGE_MS`] in any case, on sign-out, or (checked by the caller) when
//!   the named admin token it was opened with is revoked.
//! - Each session has its own CSRF token. A state-changing request must carry
//!   it in [`CSRF_HEADER`] and come from the console's own origin
//!   ([`check_change`]); SameSite=Strict keeps the cookie off cross-site
//!   requests in the first place.
//! - Sign-in codes are for links printed by the CLI or the demo: 256 random
//!   bits, one use, [`CODE_TTL_MS`]; the code goes in the URL's fragment,
//!   which browsers never send to a server, so it lands in no access log.

use sluice_contract::crypto::{hex, random_bytes, sha256};
use std::collections::HashMap;
use std::sync::Mutex;

/// The session cookie's name.
pub(crate) const COOKIE: &str = "sluice_console";
/// The header that carries the session's CSRF token.
pub(crate) const CSRF_HEADER: &str = "x-sluice-csrf";
/// A session ends this long after sign-in, however busy.
pub(crate) const MAX_AGE_MS: u64 = 12 * 3_600_000;
/// A sign-in code is good for this long, once.
pub(crate) const CODE_TTL_MS: u64 = 10 * 60_000;
/// Most sessions held at once; the least recently used goes first.
const MAX_SESSIONS: usize = 4096;
/// Most sign-in codes outstanding.
const MAX_CODES: usize = 256;

/// How sessions behave.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Config {
    /// A session ends after this long without a request.
    pub(crate) idle_ms: u64,
    /// The admin listener has TLS: the cookie gets `Secure`, and the
    /// expected origin is `https://`.
    pub(crate) secure: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            idle_ms: 30 * 60_000,
            secure: false,
        }
    }
}

/// Where a sign-in code is redeemed: the console's page, with the code in
/// the fragment.
pub(crate) const SIGN_IN_PATH: &str = "/ui/#code=";

/// A signed-in browser; `P` is who signed in (the admin API's principal).
#[derive(Clone, Debug)]
pub(crate) struct Session<P> {
    /// Who signed in, with the token's scope.
    pub(crate) principal: P,
    /// The token state-changing requests must echo in [`CSRF_HEADER`].
    pub(crate) csrf: String,
    created_ms: u64,
    last_ms: u64,
}

struct Code<P> {
    principal: P,
    expires_ms: u64,
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// No session, or an unknown, idle or expired one (401).
    NoSession,
    /// Missing or wrong CSRF token (403).
    Csrf,
    /// Missing `Origin`, or another origin (403).
    Origin,
}

impl Refusal {
    /// The message the browser gets.
    pub(crate) fn message(self) -> &'static str {
        match self {
            Refusal::NoSession => "not signed in, or the session expired: sign in again",
            Refusal::Csrf => "missing or wrong CSRF token",
            Refusal::Origin => "cross-origin request refused",
        }
    }

    /// The HTTP status.
    pub(crate) fn status(self) -> u16 {
        match self {
            Refusal::NoSession => 401,
            Refusal::Csrf | Refusal::Origin => 403,
        }
    }
}

/// Every session and sign-in code of this process.
pub(crate) struct Sessions<P> {
    config: Config,
    sessions: Mutex<HashMap<[u8; 32], Session<P>>>,
    codes: Mutex<HashMap<[u8; 32], Code<P>>>,
}

/// Who a session belongs to: the name of the admin token it was opened with.
pub(crate) trait Named {
    /// The token's name.
    fn token_name(&self) -> &str;
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// 256 random bits from ring's SystemRandom, as hex.
fn random_hex() -> Result<String, String> {
    random_bytes::<32>()
        .map(|b| hex(&b[..]))
        .map_err(|e| e.to_string())
}

impl<P: Clone + Named> Sessions<P> {
    /// No sessions yet.
    pub(crate) fn new(config: Config) -> Sessions<P> {
        Sessions {
            config,
            sessions: Mutex::default(),
            codes: Mutex::default(),
        }
    }

    /// How sessions behave.
    pub(crate) fn config(&self) -> Config {
        self.config
    }

    /// Opens a session for `principal`; returns its id (for the cookie) and
    /// the session.
    pub(crate) fn open(&self, principal: P, now_ms: u64) -> Result<(String, Session<P>), String> {
        let id = random_hex()?;
        let session = Session {
            principal,
            csrf: random_hex()?,
            created_ms: now_ms,
            last_ms: now_ms,
        };
        let mut map = lock(&self.sessions);
        map.retain(|_, s| self.live(s, now_ms));
        if map.len() >= MAX_SESSIONS {
            if let Some(oldest) = map.iter().min_by_key(|(_, s)| s.last_ms).map(|(k, _)| *k) {
                map.remove(&oldest);
            }
        }
        map.insert(sha256(id.as_bytes()), session.clone());
        Ok((id, session))
    }

    fn live(&self, s: &Session<P>, now_ms: u64) -> bool {
        now_ms.saturating_sub(s.last_ms) < self.config.idle_ms
            && now_ms.saturating_sub(s.created_ms) < MAX_AGE_MS
    }

    /// The session with id `id`, its idle clock restarted; an idle or
    /// expired one is removed and refused.
    pub(crate) fn resume(&self, id: &str, now_ms: u64) -> Result<Session<P>, Refusal> {
        let key = sha256(id.as_bytes());
        let mut map = lock(&self.sessions);
        let Some(s) = map.get_mut(&key) else {
            return Err(Refusal::NoSession);
        };
        if !self.live(s, now_ms) {
            map.remove(&key);
            return Err(Refusal::NoSession);
        }
        s.last_ms = now_ms;
        Ok(s.clone())
    }

    /// Ends the session `id`, if any.
    pub(crate) fn close(&self, id: &str) {
        lock(&self.sessions).remove(&sha256(id.as_bytes()));
    }

    /// Ends every session opened under the admin token `name`.
    pub(crate) fn close_all_of(&self, name: &str) {
        lock(&self.sessions).retain(|_, s| s.principal.token_name() != name);
    }

    /// A one-time sign-in code for `principal`, good for [`CODE_TTL_MS`].
    pub(crate) fn issue_code(&self, principal: P, now_ms: u64) -> Result<(String, u64), String> {
        let code = random_hex()?;
        let expires_ms = now_ms.saturating_add(CODE_TTL_MS);
        let mut codes = lock(&self.codes);
        codes.retain(|_, c| c.expires_ms > now_ms);
        if codes.len() >= MAX_CODES {
            return Err(format!(
                "{MAX_CODES} sign-in codes are outstanding; wait for some to expire"
            ));
        }
        codes.insert(
            sha256(code.as_bytes()),
            Code {
                principal,
                expires_ms,
            },
        );
        Ok((code, expires_ms))
    }

    /// The principal a code was issued for; the code is used up either way.
    pub(crate) fn redeem(&self, code: &str, now_ms: u64) -> Option<P> {
        let c = lock(&self.codes).remove(&sha256(code.as_bytes()))?;
        (c.expires_ms > now_ms).then_some(c.principal)
    }
}

/// The `Set-Cookie` value that gives the browser session `id`: HttpOnly (no
/// script reads it), SameSite=Strict (no cross-site request carries it),
/// Secure under TLS, scoped to `/ui`, and a session cookie (no Max-Age: the
/// server's idle expiry governs).
pub(crate) fn set_cookie(id: &str, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}={id}; Path=/ui; HttpOnly; SameSite=Strict{secure}")
}

/// The `Set-Cookie` value that removes the session cookie.
pub(crate) fn clear_cookie(secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}=; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=0{secure}")
}

/// The session id in a request's `Cookie` headers (every one of them, as
/// HTTP/2 splits them; the first cookie of our name wins).
pub(crate) fn cookie_id<'a>(cookie_headers: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    cookie_headers
        .into_iter()
        .flat_map(|h| h.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Whether a method changes state (everything but GET, HEAD and OPTIONS).
pub(crate) fn changes_state(method: &str) -> bool {
    !matches!(method, "GET" | "HEAD" | "OPTIONS")
}

/// The origin a request to this listener must come from: the scheme of the
/// listener and the `Host` the browser addressed.
pub(crate) fn own_origin(host: Option<&str>, secure: bool) -> Option<String> {
    let host = host?.trim();
    if host.is_empty() || host.bytes().any(|b| b.is_ascii_whitespace() || b == b'/') {
        return None;
    }
    Some(format!(
        "{}://{}",
        if secure { "https" } else { "http" },
        host.to_ascii_lowercase()
    ))
}

/// Checks that a request comes from the console's own origin: `Origin` must
/// be present (browsers send it on every state-changing fetch) and equal to
/// ours; `Sec-Fetch-Site`, when sent, must be `same-origin`.
pub(crate) fn check_origin(
    origin: Option<&str>,
    fetch_site: Option<&str>,
    host: Option<&str>,
    secure: bool,
) -> Result<(), Refusal> {
    if fetch_site.is_some_and(|s| s != "same-origin") {
        return Err(Refusal::Origin);
    }
    match (origin, own_origin(host, secure)) {
        (Some(o), Some(own)) if o.eq_ignore_ascii_case(&own) => Ok(()),
        _ => Err(Refusal::Origin),
    }
}

/// Checks a state-changing request of `session`: same origin, and the
/// session's CSRF token in [`CSRF_HEADER`] (compared in constant time).
pub(crate) fn check_change<P>(session: &Session<P>, presented_csrf: Option<&str>) -> Result<(), Refusal> {
    let presented = presented_csrf.ok_or(Refusal::Csrf)?;
    // Hashes of equal length, compared without an early exit.
    let (a, b) = (sha256(presented.as_bytes()), sha256(session.csrf.as_bytes()));
    if a.iter().zip(&b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0 {
        Ok(())
    } else {
        Err(Refusal::Csrf)
    }
}

#[cfg(test)]
mod tests;
