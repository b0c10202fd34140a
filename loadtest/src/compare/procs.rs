//! The servers a comparison starts on loopback: the mock, Sluice (standalone
//! mode, generated snapshot) and nginx (generated config). Each is a child
//! process killed when its handle drops.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use super::cert::TlsFiles;
use crate::run::procstat;

/// The gateway key the load uses against Sluice.
pub(crate) const GATEWAY_KEY: &str = "sk-sluice-bench-3f9a1c0d2b7e4a6f8e5d1c2b3a4f5e6d";
/// The model the snapshot routes.
pub(crate) const MODEL: &str = "gpt-4o-mini";

/// A running server.
pub(crate) struct Server {
    pub(crate) name: String,
    child: Child,
    pub(crate) url: String,
    /// Its log (stderr), for the error message if it dies.
    log: Option<PathBuf>,
    /// Stop it with SIGTERM (and wait) rather than SIGKILL: nginx's master
    /// stops its workers on SIGTERM, while a SIGKILL of the master leaves the
    /// workers running, orphaned, still holding their connections.
    term_first: bool,
}

impl Server {
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU seconds of the process and its children (nginx's workers).
    pub(crate) fn cpu_s(&self) -> f64 {
        procstat::tree_cpu_seconds(self.pid()).unwrap_or(0.0)
    }

    /// RSS of the process and its children, KiB.
    pub(crate) fn rss_kib(&self) -> u64 {
        procstat::tree_rss_kib(self.pid()).unwrap_or(0)
    }

    /// Fails if the process has exited.
    pub(crate) fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{} exited ({status}){}", self.name, self.log_tail());
        }
        Ok(())
    }

    fn log_tail(&self) -> String {
        let Some(log) = &self.log else {
            return String::new();
        };
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        format!(
            "; last lines of {}:\n{}",
            log.display(),
            lines[lines.len().saturating_sub(15)..].join("\n")
        )
    }

    fn wait_ready(&mut self, addr: SocketAddr) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            self.check_alive()?;
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!(
            "{} did not listen on {addr} within 15 s{}",
            self.name,
            self.log_tail()
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.term_first && matches!(self.child.try_wait(), Ok(None)) {
            let sent = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            let deadline = Instant::now() + Duration::from_secs(5);
            while sent && Instant::now() < deadline {
                if !matches!(self.child.try_wait(), Ok(None)) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free loopback port (bound, then released: a small race we accept).
pub(crate) fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// `sluice-loadtest mock` (this very binary).
pub(crate) fn start_mock(workers: usize, dir: &Path) -> anyhow::Result<Server> {
    let exe = std::env::current_exe().context("finding this binary")?;
    let log = dir.join("mock.log");
    let mut child = Command::new(exe)
        .args([
            "mock",
            "--listen",
            "127.0.0.1:0",
            "--workers",
            &workers.to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log)?)
        .spawn()
        .context("starting the mock")?;
    let mut out = BufReader::new(child.stdout.take().context("mock stdout")?);
    let mut line = String::new();
    out.read_line(&mut line)?;
    // Keep reading its stdout so that it never blocks on a full pipe.
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    let mut server = Server {
        name: "mock".into(),
        child,
        url: String::new(),
        log: Some(log),
        term_first: false,
    };
    let url = line.trim().strip_prefix("listening on ").map(str::to_string);
    match url {
        Some(url) => server.url = url,
        None => {
            server.check_alive()?;
            bail!("the mock printed {line:?}, not 'listening on URL'");
        }
    }
    Ok(server)
}

/// `sluice-dataplane` in standalone mode in front of the mock.
pub(crate) fn start_sluice(
    bin: &Path,
    mock_url: &str,
    workers: usize,
    dir: &Path,
    epoll: bool,
    tls: Option<&TlsFiles>,
) -> anyhow::Result<Server> {
    let tag = if epoll { "sluice-epoll" } else { "sluice" };
    let snapshot = dir.join(format!("{tag}-snapshot.toml"));
    std::fs::write(&snapshot, snapshot_toml(mock_url))?;
    let port = free_port()?;
    let admin = free_port()?;
    let log = dir.join(format!("{tag}.log"));
    let mut cmd = Command::new(bin);
    cmd.arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--admin")
        .arg(format!("127.0.0.1:{admin}"))
        .arg("--snapshot")
        .arg(&snapshot)
        .arg("--records")
        .arg(dir.join(format!("{tag}-records.jsonl")))
        .arg("--workers")
        .arg(workers.to_string())
        .env("SLUICE_BENCH_PROVIDER_KEY", "sk-mock-provider-key")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?);
    // Pin nothing: the load and the other servers share these cores.
    if supports_flag(bin, "--no-pin") {
        cmd.arg("--no-pin");
    }
    if epoll {
        cmd.env("MONOIO_FORCE_LEGACY_DRIVER", "1");
    }
    // With TLS the clients use the TLS listener only.
    let (url, ready) = match tls {
        None => (format!("http://127.0.0.1:{port}"), port),
        Some(files) => {
            let tls_port = free_port()?;
            cmd.arg("--listen-tls")
                .arg(format!("127.0.0.1:{tls_port}"))
                .arg("--tls-cert")
                .arg(&files.cert)
                .arg("--tls-key")
                .arg(&files.key);
            (format!("https://localhost:{tls_port}"), tls_port)
        }
    };
    let child = cmd
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let mut server = Server {
        name: tag.into(),
        child,
        url,
        log: Some(log),
        term_first: false,
    };
    server.wait_ready(SocketAddr::from(([127, 0, 0, 1], ready)))?;
    Ok(server)
}

fn supports_flag(bin: &Path, flag: &str) -> bool {
    Command::new(bin)
        .arg("--help")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(flag))
}

/// The standalone snapshot: one tenant, one gateway key, the mock as an
/// OpenAI, an Anthropic and a Gemini upstream, a route for each API's
/// default model (see `--api`).
pub(crate) fn snapshot_toml(mock_url: &str) -> String {
    let sha = sluice_contract::crypto::hex(&sluice_contract::crypto::sha256(GATEWAY_KEY.as_bytes()));
    format!(
        r#"[[tenants]]
id = "bench"

[[api_keys]]
id = "k1"
tenant = "bench"
sha256 = "{sha}"

[[upstreams]]
name = "mock"
kind = "openai"
base_url = "{mock_url}"

[[upstreams]]
name = "mock-anthropic"
kind = "anthropic"
base_url = "{mock_url}"

[[upstreams]]
name = "mock-gemini"
kind = "gemini"
base_url = "{mock_url}"

[[provider_keys]]
id = "mockkey"
tenant = "bench"
api_key_env = "SLUICE_BENCH_PROVIDER_KEY"

[[routes]]
tenant = "bench"
model = "{MODEL}"
targets = [{{ upstream = "mock", provider_key = "mockkey" }}]

[[routes]]
tenant = "bench"
model = "claude-3-5-haiku-latest"
targets = [{{ upstream = "mock-anthropic", provider_key = "mockkey" }}]

[[routes]]
tenant = "bench"
model = "gemini-2.5-flash"
targets = [{{ upstream = "mock-gemini", provider_key = "mockkey" }}]
"#
    )
}

/// The nginx binary, if installed (or installed now, with `install`).
pub(crate) fn find_nginx(explicit: Option<&Path>, install: bool) -> anyhow::Result<Option<PathBuf>> {
    if let Some(p) = explicit {
        return Ok(Some(p.to_path_buf()));
    }
    let found = || {
        std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
            .map(|d| d.join("nginx"))
            .find(|p| p.is_file())
    };
    if let Some(p) = found() {
        return Ok(Some(p));
    }
    if !install {
        eprintln!("nginx not found: install it with `apt-get install -y nginx-light` (or pass --install-nginx); skipping nginx");
        return Ok(None);
    }
    eprintln!("installing nginx: apt-get update && apt-get install -y nginx-light");
    let ok = Command::new("apt-get")
        .arg("update")
        .status()
        .is_ok_and(|s| s.success())
        && Command::new("apt-get")
            .args(["install", "-y", "nginx-light"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success());
    if !ok {
        bail!("apt-get install -y nginx-light failed");
    }
    found()
        .map(Some)
        .context("nginx still not found after installing nginx-light")
}

/// nginx in front of the mock, with the config from `benches/nginx/`.
pub(crate) fn start_nginx(
    bin: &Path,
    mock_url: &str,
    workers: usize,
    dir: &Path,
    tls: Option<&TlsFiles>,
) -> anyhow::Result<Server> {
    let upstream = mock_url
        .strip_prefix("http://")
        .context("the mock URL is not http://")?;
    let port = free_port()?;
    let ngx_dir = dir.join("nginx");
    std::fs::create_dir_all(&ngx_dir)?;
    let conf = ngx_dir.join("nginx.conf");
    std::fs::write(
        &conf,
        super::nginx::render(workers, &format!("127.0.0.1:{port}"), upstream, &ngx_dir, tls),
    )?;
    let log = ngx_dir.join("error.log");
    let child = Command::new(bin)
        .arg("-p")
        .arg(&ngx_dir)
        .arg("-c")
        .arg(&conf)
        .arg("-e")
        .arg(&log)
        .args(["-g", "daemon off;"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let mut server = Server {
        name: "nginx".into(),
        child,
        url: match tls {
            None => format!("http://127.0.0.1:{port}"),
            Some(_) => format!("https://localhost:{port}"),
        },
        log: Some(log),
        term_first: true,
    };
    server.wait_ready(SocketAddr::from(([127, 0, 0, 1], port)))?;
    Ok(server)
}

/// `sluice-dataplane` next to this binary (the same `target/` profile).
pub(crate) fn sluice_bin(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    let exe = std::env::current_exe()?;
    let bin = exe.with_file_name("sluice-dataplane");
    if !bin.is_file() {
        bail!(
            "{} not found: build it (cargo build --release -p sluice-dataplane) or pass --sluice PATH",
            bin.display()
        );
    }
    Ok(bin)
}
