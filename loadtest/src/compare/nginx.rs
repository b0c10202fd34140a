//! The nginx configuration, rendered from `benches/nginx/nginx.conf.tmpl`.

use std::path::Path;

const TEMPLATE: &str = include_str!("../../../benches/nginx/nginx.conf.tmpl");

/// The config for `workers` worker processes listening on `listen`,
/// proxying to `upstream` (`host:port`), with every file under `dir`.
pub(crate) fn render(workers: usize, listen: &str, upstream: &str, dir: &Path) -> String {
    TEMPLATE
        .replace("{{WORKERS}}", &workers.to_string())
        .replace("{{LISTEN}}", listen)
        .replace("{{UPSTREAM}}", upstream)
        .replace("{{DIR}}", &dir.display().to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_placeholder_is_filled() {
        let conf = super::render(2, "127.0.0.1:1", "127.0.0.1:2", std::path::Path::new("/tmp/x"));
        assert!(!conf.contains("{{"));
        assert!(conf.contains("worker_processes 2;"));
        assert!(conf.contains("server 127.0.0.1:2;"));
        assert!(conf.contains("proxy_buffering off;"));
        assert!(conf.contains("keepalive 256;"));
        assert!(conf.contains("proxy_set_header Connection \"\";"));
    }
}
