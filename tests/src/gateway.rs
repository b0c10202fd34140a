//! The data plane under test, in standalone mode.

use crate::http::{self, Req};
use crate::proc::Proc;
use crate::records::Records;
use crate::snapshot::Snapshot;
use crate::tmp::TempDir;
use crate::{bins, WAIT};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

/// The I/O driver the data plane's workers run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Driver {
    /// monoio's FusionDriver: io_uring where the kernel offers it, else epoll.
    Uring,
    /// `MONOIO_FORCE_LEGACY_DRIVER=1`: epoll.
    Epoll,
}

/// How to start the data plane.
#[derive(Clone, Debug)]
pub struct GatewayOpts {
    /// `--workers`.
    pub workers: usize,
    /// Extra flags, as given.
    pub args: Vec<String>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// Contents of a `--config` file, if any.
    pub config: Option<String>,
    /// `RUST_LOG` for the process.
    pub log: String,
}

impl Default for GatewayOpts {
    fn default() -> Self {
        GatewayOpts {
            workers: 2,
            args: Vec::new(),
            env: Vec::new(),
            config: None,
            log: "info".into(),
        }
    }
}

impl GatewayOpts {
    /// Adds a flag (and its value, if any).
    pub fn arg(mut self, flag: &str, value: Option<&str>) -> GatewayOpts {
        self.args.push(flag.to_owned());
        if let Some(v) = value {
            self.args.push(v.to_owned());
        }
        self
    }

    /// Sets an environment variable.
    pub fn env(mut self, name: &str, value: &str) -> GatewayOpts {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }
}

/// A running data plane.
#[derive(Debug)]
pub struct Gateway {
    /// The process.
    pub proc: Proc,
    /// Client listener.
    pub addr: SocketAddr,
    /// Admin listener (`/metrics`).
    pub admin: SocketAddr,
    /// The driver it was asked to run on.
    pub driver: Driver,
    snapshot_path: PathBuf,
    records: Records,
    dir: TempDir,
}

fn command(driver: Driver, dir: &TempDir, snapshot: &str, opts: &GatewayOpts) -> (Command, PathBuf, PathBuf) {
    let snapshot_path = dir.join("snapshot.toml");
    let records_path = dir.join("records.jsonl");
    std::fs::write(&snapshot_path, snapshot).expect("writing the snapshot");
    let mut cmd = Command::new(bins::dataplane());
    cmd.arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--admin")
        .arg("127.0.0.1:0")
        .arg("--snapshot")
        .arg(&snapshot_path)
        .arg("--records")
        .arg(&records_path)
        .arg("--workers")
        .arg(opts.workers.to_string())
        .arg("--no-pin");
    if let Some(config) = &opts.config {
        let path = dir.join("config.toml");
        std::fs::write(&path, config).expect("writing the config");
        cmd.arg("--config").arg(path);
    }
    cmd.args(&opts.args);
    match driver {
        Driver::Uring => cmd.env_remove("MONOIO_FORCE_LEGACY_DRIVER"),
        Driver::Epoll => cmd.env("MONOIO_FORCE_LEGACY_DRIVER", "1"),
    };
    cmd.env("RUST_LOG", &opts.log).env_remove("RUST_BACKTRACE");
    for (k, v) in &opts.env {
        cmd.env(k, v);
    }
    (cmd, snapshot_path, records_path)
}

impl Gateway {
    /// Starts the data plane on `snapshot` and waits until both listeners are up.
    pub fn start(driver: Driver, snapshot: &Snapshot, opts: GatewayOpts) -> Gateway {
        Gateway::start_toml(driver, &snapshot.to_toml(), opts)
    }

    /// [`Gateway::start`] with the snapshot given as TOML text.
    pub fn start_toml(driver: Driver, snapshot: &str, opts: GatewayOpts) -> Gateway {
        let dir = TempDir::new("dataplane");
        let (cmd, snapshot_path, records_path) = command(driver, &dir, snapshot, &opts);
        let mut proc = Proc::spawn("sluice-dataplane", cmd, dir.join("dataplane.stderr"));
        let addr = parse_addr(&proc.wait_line("listening on ", WAIT));
        let admin = parse_addr(&proc.wait_line("admin on ", WAIT));
        Gateway {
            proc,
            addr,
            admin,
            driver,
            snapshot_path,
            records: Records::new(records_path),
            dir,
        }
    }

    /// Runs the data plane on `snapshot` expecting it to refuse to start;
    /// returns its exit status and stderr.
    pub fn run_to_exit(driver: Driver, snapshot: &str, opts: GatewayOpts) -> (ExitStatus, String) {
        let dir = TempDir::new("dataplane-bad");
        let (cmd, _, _) = command(driver, &dir, snapshot, &opts);
        let mut proc = Proc::spawn("sluice-dataplane", cmd, dir.join("dataplane.stderr"));
        let status = proc
            .wait_exit(WAIT)
            .unwrap_or_else(|| panic!("the data plane kept running; stderr:\n{}", proc.stderr_text()));
        (status, String::from_utf8_lossy(&proc.stderr()).into_owned())
    }

    /// The records file.
    pub fn records(&self) -> &Records {
        &self.records
    }

    /// The scratch directory (snapshot, records, stderr).
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// `GET /metrics` from the admin listener.
    pub fn metrics(&self) -> String {
        let r = http::request(self.admin, &Req::get("/metrics"));
        assert_eq!(r.status(), 200, "GET /metrics: {}", r.text());
        r.text()
    }

    /// The value of the sample whose name and labels are exactly `series`
    /// (e.g. `sluice_active_streams`), if present.
    pub fn metric(&self, series: &str) -> Option<f64> {
        sample(&self.metrics(), series)
    }

    /// Polls `/metrics` until `series` has `value`; panics after [`WAIT`].
    #[track_caller]
    pub fn wait_metric(&self, series: &str, value: f64) {
        let deadline = Instant::now() + WAIT;
        loop {
            let text = self.metrics();
            if sample(&text, series) == Some(value) {
                return;
            }
            if Instant::now() >= deadline {
                panic!("{series} never became {value} within {WAIT:?}; /metrics:\n{text}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Replaces the snapshot file (atomically) and sends SIGHUP.
    pub fn reload(&self, snapshot: &Snapshot) {
        let tmp = self.snapshot_path.with_extension("toml.new");
        std::fs::write(&tmp, snapshot.to_toml()).expect("writing the new snapshot");
        std::fs::rename(&tmp, &self.snapshot_path).expect("replacing the snapshot");
        self.proc.signal("HUP");
    }

    /// Sends a request on a fresh connection.
    pub fn request(&self, req: &Req) -> http::Response {
        http::request(self.addr, req)
    }

    /// Connects to the client listener.
    pub fn connect(&self) -> http::Conn {
        http::Conn::connect(self.addr)
    }

    /// Panics (with stderr) unless the process is still running.
    pub fn assert_alive(&mut self) {
        self.proc.assert_alive();
    }
}

fn parse_addr(url: &str) -> SocketAddr {
    url.rsplit("://")
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("the data plane printed an address that does not parse: {url:?}"))
}

/// The value of the Prometheus sample `series` (name plus exact label set)
/// in exposition `text`.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (name, value) = l.rsplit_once(' ')?;
        (name == series).then(|| value.parse().ok()).flatten()
    })
}
