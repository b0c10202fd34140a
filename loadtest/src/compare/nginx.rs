//! The nginx configuration, rendered from `benches/nginx/nginx.conf.tmpl`.

use std::path::Path;

use super::cert::TlsFiles;

const TEMPLATE: &str = include_str!("../../../benches/nginx/nginx.conf.tmpl");

/// The config for `workers` worker processes listening on `listen` (over
/// TLS with `tls`), proxying to `upstream` (`host:port`), with every file
/// under `dir`.
pub(crate) fn render(
    workers: usize,
    listen: &str,
    upstream: &str,
    dir: &Path,
    tls: Option<&TlsFiles>,
) -> String {
    let mut conf = TEMPLATE.to_owned();
    if let Some(files) = tls {
        // The template's listener, made a TLS one with its certificate.
        conf = conf.replace(
            LISTEN_LINE,
            &format!(
                "listen {{{{LISTEN}}}} ssl reuseport backlog=4096;\n        ssl_certificate {};\n        \
                 ssl_certificate_key {};\n        ssl_protocols TLSv1.2 TLSv1.3;\n        \
                 ssl_session_cache shared:SSL:10m;",
                files.cert.display(),
                files.key.display()
            ),
        );
    }
    conf.replace("{{WORKERS}}", &workers.to_string())
        .replace("{{LISTEN}}", listen)
        .replace("{{UPSTREAM}}", upstream)
        .replace("{{DIR}}", &dir.display().to_string())
}

/// The template's listener line.
const LISTEN_LINE: &str = "listen {{LISTEN}} reuseport backlog=4096;";

#[cfg(test)]
mod tests {
    #[test]
    fn every_placeholder_is_filled() {
        let conf = super::render(
            2,
            "127.0.0.1:1",
            "127.0.0.1:2",
            std::path::Path::new("/tmp/x"),
            None,
        );
        assert!(!conf.contains("{{"));
        assert!(conf.contains("worker_processes 2;"));
        assert!(conf.contains("server 127.0.0.1:2;"));
        assert!(conf.contains("proxy_buffering off;"));
        assert!(conf.contains("keepalive 256;"));
        assert!(conf.contains("proxy_set_header Connection \"\";"));
        assert!(!conf.contains("ssl"));
    }

    #[test]
    fn tls_makes_the_listener_a_tls_one() {
        let files = super::TlsFiles {
            cert: "/tmp/x/c.pem".into(),
            key: "/tmp/x/k.pem".into(),
        };
        let dir = std::path::Path::new("/tmp/x");
        let conf = super::render(1, "127.0.0.1:1", "127.0.0.1:2", dir, Some(&files));
        assert!(!conf.contains("{{"));
        assert!(conf.contains("listen 127.0.0.1:1 ssl reuseport backlog=4096;"));
        assert!(conf.contains("ssl_certificate /tmp/x/c.pem;"));
        assert!(conf.contains("ssl_certificate_key /tmp/x/k.pem;"));
    }
}
