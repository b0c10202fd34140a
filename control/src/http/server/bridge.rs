//! The axum side: a middleware that admits a request on its head, and one
//! fallback route that reads its body under the route's limit and a total
//! deadline and runs the blocking handler (redb) on tokio's blocking pool.

use super::{Admit, Handler, Limits};
use crate::http::{Request, Response};
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use std::sync::Arc;

/// What one listener serves.
pub(super) struct Site {
    pub(super) limits: Limits,
    pub(super) admit: Admit,
    pub(super) handler: Handler,
}

/// The router of one listener. Layers, outermost first: admission on the
/// head (401, 413 against the route's limit; see [`admission`]), the
/// listener's hard cap on any body (tower-http), then [`answer`].
pub(super) fn router(site: Arc<Site>) -> axum::Router {
    let max_body = site.limits.max_body;
    axum::Router::new()
        .fallback(answer)
        .layer(tower_http::limit::RequestBodyLimitLayer::new(max_body))
        .layer(axum::middleware::from_fn_with_state(site.clone(), admission))
        .with_state(site)
}

/// A request admitted on its head: the head, and the most body bytes it may send.
#[derive(Clone)]
struct Admitted {
    head: Arc<Request>,
    max_body: usize,
}

impl IntoResponse for Response {
    fn into_response(self) -> axum::response::Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let no_body = status == StatusCode::NO_CONTENT;
        let mut out = if no_body {
            Body::empty().into_response()
        } else {
            Body::from(self.body).into_response()
        };
        *out.status_mut() = status;
        let headers = out.headers_mut();
        if !no_body {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(self.content_type));
        }
        for (name, value) in self.headers {
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(&value),
            ) {
                headers.append(n, v);
            }
        }
        out
    }
}

/// `resp`, ending the connection after it (as for every refused request:
/// what follows on the connection cannot be trusted to be a request).
fn closing(resp: Response) -> axum::response::Response {
    let mut out = resp.into_response();
    out.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    out
}

/// Admits a request (authenticated, and the route's limit known) before any
/// of its body is read: a refused request's body is never taken in, and no
/// `100 Continue` is sent for it.
async fn admission(
    State(site): State<Arc<Site>>,
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let head = {
        let (parts, body) = req.into_parts();
        let head = head_of(&parts);
        req = axum::extract::Request::from_parts(parts, body);
        match head {
            Ok(h) => h,
            Err(resp) => return closing(resp),
        }
    };
    let admit = site.admit.clone();
    let admitted = tokio::task::spawn_blocking(move || {
        let r = admit(&head);
        (head, r)
    })
    .await;
    let (head, max_body) = match admitted {
        Ok((head, Ok(n))) => (head, n.min(site.limits.max_body)),
        Ok((_, Err(resp))) => return closing(resp),
        Err(_) => return closing(Response::error(500, "admission failed")),
    };
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if announced.is_some_and(|n| n > max_body) {
        return closing(too_large(max_body));
    }
    req.extensions_mut().insert(Admitted {
        head: Arc::new(head),
        max_body,
    });
    next.run(req).await
}

fn too_large(max_body: usize) -> Response {
    Response::error(413, &format!("request body larger than {max_body} bytes"))
}

/// Reads the body of an admitted request under its limit and the total body
/// deadline, then runs the blocking handler on the blocking pool.
async fn answer(State(site): State<Arc<Site>>, req: axum::extract::Request) -> axum::response::Response {
    let (parts, body) = req.into_parts();
    let Some(Admitted { head, max_body }) = parts.extensions.get::<Admitted>().cloned() else {
        return closing(Response::error(500, "request was not admitted"));
    };
    let mut head = Arc::unwrap_or_clone(head);
    let read = Limited::new(body, max_body).collect();
    head.body = match tokio::time::timeout(site.limits.body_timeout, read).await {
        Err(_) => return closing(Response::error(408, "request body not received in time")),
        Ok(Err(e)) if over_limit(e.as_ref()) => return closing(too_large(max_body)),
        Ok(Err(e)) => return closing(Response::error(400, &format!("bad request body: {e}"))),
        Ok(Ok(collected)) => collected.to_bytes().to_vec(),
    };
    let handler = site.handler.clone();
    match tokio::task::spawn_blocking(move || handler(&head)).await {
        Ok(resp) => resp.into_response(),
        Err(e) => {
            tracing::error!(error = %e, "request handler failed");
            closing(Response::error(500, "request handler failed"))
        }
    }
}

/// Whether a body error is a length limit's, ours or the listener's cap's
/// (which reaches us wrapped).
fn over_limit(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut at = Some(e);
    while let Some(e) = at {
        if e.is::<LengthLimitError>() {
            return true;
        }
        at = e.source();
    }
    false
}

/// Our request type from the head hyper parsed; its body is still empty.
fn head_of(parts: &axum::http::request::Parts) -> Result<Request, Response> {
    let bad = |m: &str| Response::error(400, m);
    if parts.uri.scheme().is_some() || !parts.uri.path().starts_with('/') {
        return Err(bad("request target must be a path"));
    }
    let mut headers = Vec::with_capacity(parts.headers.len());
    for (name, value) in &parts.headers {
        let value = std::str::from_utf8(value.as_bytes()).map_err(|_| bad("header value is not UTF-8"))?;
        headers.push((name.as_str().to_owned(), value.trim().to_owned()));
    }
    Ok(Request {
        method: parts.method.as_str().to_owned(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers,
        body: Vec::new(),
    })
}
