//! Connecting a sink to NATS and making its JetStream stream ready.

use super::config::{stream_subject, Auth, SinkRow};
use async_nats::jetstream::{self, stream};
use async_nats::{ConnectOptions, HeaderMap, ServerAddr};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use zeroize::Zeroizing;

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a publish waits for JetStream's acknowledgment.
pub(crate) const ACK_TIMEOUT: Duration = Duration::from_secs(5);

/// A connection with the stream ready.
pub(crate) struct Session {
    /// The JetStream context (publishes).
    pub(crate) js: jetstream::Context,
    /// The stream.
    pub(crate) stream: stream::Stream,
}

/// Connects as `row` says, with `secret` (the opened creds, password or
/// token), and gets or creates the stream.
pub(crate) async fn connect(row: &SinkRow, secret: Option<Zeroizing<Vec<u8>>>) -> Result<Session, String> {
    let mut o = ConnectOptions::new()
        .name(format!("sluice-control sink {}", row.name))
        .connection_timeout(CONNECT_TIMEOUT);
    let text = |s: &Zeroizing<Vec<u8>>| {
        String::from_utf8(s.to_vec()).map_err(|_| format!("sink {}: its secret is not UTF-8", row.name))
    };
    match (row.auth, &secret) {
        (Auth::None, _) => {}
        (Auth::Creds, Some(s)) => {
            let creds = Zeroizing::new(text(s)?);
            o = o
                .credentials(&creds)
                .map_err(|e| format!("sink {}: bad creds file: {e}", row.name))?;
        }
        (Auth::Password, Some(s)) => {
            o = o.user_and_password(
                row.user.clone().unwrap_or_default(),
                text(s)?.trim_end().to_owned(),
            );
        }
        (Auth::Token, Some(s)) => o = o.token(text(s)?.trim().to_owned()),
        (_, None) => return Err(format!("sink {}: its secret is missing", row.name)),
    }
    if let Some(pem) = &row.tls_ca_pem {
        o = o.tls_client_config(tls_config(pem)?).require_tls(true);
    } else if row.tls {
        o = o.require_tls(true);
    }
    let addrs: Vec<ServerAddr> = row
        .url
        .split(',')
        .map(|s| s.trim().parse::<ServerAddr>())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("bad URL {:?}: {e}", row.url))?;
    let client = o
        .connect(addrs)
        .await
        .map_err(|e| format!("connecting to {}: {e}", row.url))?;
    let mut js = jetstream::new(client);
    js.set_timeout(ACK_TIMEOUT);
    let stream = js
        .get_or_create_stream(stream::Config {
            name: row.stream.clone(),
            subjects: vec![stream_subject(&row.subject)],
            duplicate_window: Duration::from_secs(row.duplicate_window_secs),
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await
        .map_err(|e| format!("stream {}: {e}", row.stream))?;
    Ok(Session { js, stream })
}

/// A rustls client config trusting exactly the certificates in `pem`.
fn tls_config(pem: &str) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        let cert = cert.map_err(|e| format!("--tls-ca: {e}"))?;
        roots.add(cert).map_err(|e| format!("--tls-ca: {e}"))?;
    }
    if roots.is_empty() {
        return Err("--tls-ca: no certificate found".into());
    }
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())
        .map(|b| b.with_root_certificates(roots).with_no_client_auth())
}

/// Checks that `pem` holds at least one certificate (at `sink add`).
pub(crate) fn check_ca(pem: &str) -> Result<(), String> {
    tls_config(pem).map(drop)
}

/// The message ids of the stream's last `n` messages: records acknowledged
/// before a crash or a lost connection, but not yet past the cursor, are
/// found here and not published again, whatever the duplicate window.
pub(crate) async fn tail_ids(session: &mut Session, n: u64) -> Result<HashSet<String>, String> {
    let info = session
        .stream
        .info()
        .await
        .map_err(|e| format!("stream info: {e}"))?;
    let (first, last) = (info.state.first_sequence, info.state.last_sequence);
    let mut out = HashSet::new();
    if last == 0 {
        return Ok(out);
    }
    let from = last.saturating_sub(n.saturating_sub(1)).max(first).max(1);
    for seq in from..=last {
        // A message deleted meanwhile is simply not there.
        if let Ok(m) = session.stream.get_raw_message(seq).await {
            if let Some(id) = m.headers.get(async_nats::header::NATS_MESSAGE_ID) {
                out.insert(id.to_string());
            }
        }
    }
    Ok(out)
}

/// Publishes one message with its id and waits for JetStream's
/// acknowledgment; `Ok(true)` when the engine dropped it as a duplicate.
pub(crate) async fn publish(
    session: &Session,
    subject: String,
    msg_id: &str,
    payload: Vec<u8>,
) -> Result<bool, String> {
    let mut headers = HeaderMap::new();
    headers.insert(async_nats::header::NATS_MESSAGE_ID, msg_id);
    let ack = session
        .js
        .publish_with_headers(subject, headers, payload.into())
        .await
        .map_err(|e| format!("publish {msg_id}: {e}"))?
        .await
        .map_err(|e| format!("ack of {msg_id}: {e}"))?;
    Ok(ack.duplicate)
}
