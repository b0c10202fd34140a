//! The control plane under test: `sluice-control serve`, its CLI, and data
//! planes in control mode (`--control URL --token-file F --spool-dir DIR`),
//! each killable and restartable on the same files and ports.
//!
//! Unlike [`crate::proc::Proc`], these processes write stdout *and* stderr to
//! files (one pair per start, never truncated by a restart), so a test can
//! scan every byte a process ever printed; the ports are read back from the
//! stdout file.
//!
//! [`Fleet`] is the usual setup, made the way an operator would make it,
//! with the CLI: a mock provider, `serve`, tenant `acme` with a gateway key,
//! an OpenAI and an Anthropic upstream, a provider key read from stdin, a
//! route per API, an enrolled data plane with its token in a file, and that
//! data plane running.

use crate::gateway::{sample, Driver};
use crate::http::{self, Conn, Req, Response};
use crate::mock::{Mock, MockOpts};
use crate::tmp::TempDir;
use crate::{bins, WAIT};
use serde_json::Value;
use std::collections::BTreeSet;
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The tenant [`Fleet`] creates.
pub const TENANT: &str = "acme";
/// Its gateway key's id.
pub const KEY_ID: &str = "k1";
/// The data plane id [`Fleet`] enrolls.
pub const DATAPLANE_ID: &str = "edge1";
/// The OpenAI route (upstream `mock`, kind openai).
pub const OPENAI_MODEL: &str = "gpt-4o-mini";
/// The Anthropic route (upstream `mock-anthropic`, kind anthropic).
pub const ANTHROPIC_MODEL: &str = "claude-sonnet-4-5";
/// The provider key's id in the control plane.
pub const PROVIDER_KEY_ID: &str = "pk";

/// `sluice-control`.
pub fn control_bin() -> PathBuf {
    bins::bin("sluice-control")
}

/// A string no process should ever print or store: `prefix` plus the pid and
/// `sluice-control ARGS --admin http://ADMIN --data DATA`, feeding `stdin`.
pub fn cli_at(admin: SocketAddr, data: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(control_bin())
        .args(args)
        .arg("--admin")
        .arg(format!("http://{admin}"))
        .arg("--data")
        .arg(data)
        .env_remove("SLUICE_ADMIN_TOKEN")
        .env_remove("SLUICE_ADMIN_URL")
        .env_remove("SLUICE_DATA")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running sluice-control {args:?}: {e}"));
    if let Some(mut input) = child.stdin.take() {
        // The CLI may exit without reading stdin; that is its business.
        let _ = input.write_all(stdin.unwrap_or("").as_bytes());
    }
    child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("waiting for sluice-control {args:?}: {e}"))
}

/// the clock, so a hit cannot come from another test.
pub fn canary(prefix: &str) -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{prefix}{}x{nanos:x}x{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

/// A child process whose stdout and stderr go to files; killed on drop.
#[derive(Debug)]
pub struct Logged {
    name: String,
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Logged {
    /// Starts `cmd` with stdin closed, stdout to `dir/NAME-N.stdout` and
    /// stderr to `dir/NAME-N.stderr` (N counts starts, so a restart keeps
    /// the earlier logs).
    pub fn spawn(name: &str, mut cmd: Command, dir: &Path) -> Logged {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let stdout = dir.join(format!("{name}-{n}.stdout"));
        let stderr = dir.join(format!("{name}-{n}.stderr"));
        let open =
            |p: &Path| std::fs::File::create(p).unwrap_or_else(|e| panic!("creating {}: {e}", p.display()));
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(open(&stdout)))
            .stderr(Stdio::from(open(&stderr)));
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name} ({cmd:?}): {e}"));
        Logged {
            name: name.to_owned(),
            child,
            stdout,
            stderr,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for a whole stdout line that starts with `prefix` and returns
    /// the rest of it, trimmed. Panics (showing stderr) if the process exits
    /// first or `timeout` passes.
    pub fn wait_line(&mut self, prefix: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let text = String::from_utf8_lossy(&std::fs::read(&self.stdout).unwrap_or_default()).into_owned();
            let complete = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
            if let Some(rest) = complete.lines().find_map(|l| l.strip_prefix(prefix)) {
                return rest.trim().to_owned();
            }
            if let Some(status) = self.try_status() {
                panic!(
                    "{} exited ({status}) before printing {prefix:?}; stdout:\n{text}\nstderr:\n{}",
                    self.name,
                    self.stderr_text()
                );
            }
            if Instant::now() >= deadline {
                panic!(
                    "{}: no stdout line {prefix:?} within {timeout:?}; stderr:\n{}",
                    self.name,
                    self.stderr_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The exit status, if the process has exited.
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        self.child
            .try_wait()
            .unwrap_or_else(|e| panic!("{}: wait: {e}", self.name))
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_status() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `kill -9`, and waits for it to be gone.
    pub fn kill(&mut self) {
        if self.try_status().is_none() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }

    /// SIGTERM; waits for the exit (panics after [`WAIT`]) and returns it.
    pub fn term(&mut self) -> ExitStatus {
        if let Some(status) = self.try_status() {
            return status;
        }
        let ok = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -TERM {} failed", self.pid());
        self.wait_exit(WAIT).unwrap_or_else(|| {
            panic!(
                "{} still running {WAIT:?} after SIGTERM; stderr:\n{}",
                self.name,
                self.stderr_text()
            )
        })
    }

    /// Panics (showing stderr) unless the process is still running.
    pub fn assert_alive(&mut self) {
        if let Some(status) = self.try_status() {
            panic!("{} exited ({status}); stderr:\n{}", self.name, self.stderr_text());
        }
    }

    /// The stdout and stderr files.
    pub fn log_files(&self) -> [&Path; 2] {
        [&self.stdout, &self.stderr]
    }

    /// Everything written to stderr so far.
    pub fn stderr(&self) -> Vec<u8> {
        std::fs::read(&self.stderr).unwrap_or_default()
    }

    /// The tail of stderr as text, for failure messages.
    pub fn stderr_text(&self) -> String {
        let bytes = self.stderr();
        let from = bytes.len().saturating_sub(16 * 1024);
        String::from_utf8_lossy(&bytes[from..]).into_owned()
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The address in a line like `127.0.0.1:7070`, `http://127.0.0.1:8080` or
/// `127.0.0.1:7070 (TLS)`.
fn parse_addr(what: &str, text: &str) -> SocketAddr {
    text.split_whitespace()
        .next()
        .and_then(|a| a.rsplit("://").next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("{what} printed an address that does not parse: {text:?}"))
}

/// A running `sluice-control serve`.
#[derive(Debug)]
pub struct Control {
    /// The process.
    pub proc: Logged,
    /// Admin API (the CLI's).
    pub admin: SocketAddr,
    /// Sync API (the data planes').
    pub sync: SocketAddr,
    data: PathBuf,
    logs: PathBuf,
    log: String,
}

impl Control {
    /// Starts `serve` on data directory `data`, both APIs on port 0, with
    /// `RUST_LOG=log`; its stdout and stderr go to files in `logs`.
    pub fn start(data: &Path, logs: &Path, log: &str) -> Control {
        Control::start_at(data, logs, log, None)
    }

    /// [`Control::start`] with the sync API on `sync` (a restart keeps the
    /// address the data planes know) when given.
    pub fn start_at(data: &Path, logs: &Path, log: &str, sync: Option<SocketAddr>) -> Control {
        let sync_arg = sync.map_or_else(|| "127.0.0.1:0".to_owned(), |a| a.to_string());
        let mut cmd = Command::new(control_bin());
        cmd.args(["serve", "--admin", "127.0.0.1:0", "--sync", &sync_arg, "--data"])
            .arg(data)
            .env_remove("SLUICE_MASTER_KEY")
            .env_remove("SLUICE_DATA")
            .env("RUST_LOG", log)
            .env_remove("RUST_BACKTRACE");
        let mut proc = Logged::spawn("control", cmd, logs);
        let admin = parse_addr("serve", &proc.wait_line("admin listening on ", WAIT));
        let sync = parse_addr("serve", &proc.wait_line("sync listening on ", WAIT));
        Control {
            proc,
            admin,
            sync,
            data: data.to_owned(),
            logs: logs.to_owned(),
            log: log.to_owned(),
        }
    }

    /// Starts `serve` again on the same data directory and sync address,
    /// after this one was killed or stopped (kills it first if it was not).
    pub fn restart(&mut self) {
        self.proc.kill();
        *self = Control::start_at(&self.data, &self.logs, &self.log, Some(self.sync));
    }

    /// The data directory.
    pub fn data(&self) -> &Path {
        &self.data
    }

    /// `http://SYNC`, for `--control`.
    pub fn sync_url(&self) -> String {
        format!("http://{}", self.sync)
    }

    /// `http://ADMIN`, for the CLI's `--admin`.
    pub fn admin_url(&self) -> String {
        format!("http://{}", self.admin)
    }

    /// The admin token `serve` wrote into the data directory.
    pub fn admin_token(&self) -> String {
        let path = self.data.join("admin.token");
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
            .trim()
            .to_owned()
    }

    /// Runs the CLI (`sluice-control ARGS --admin URL --data DIR`), feeding
    /// `stdin`.
    pub fn cli(&self, args: &[&str], stdin: Option<&str>) -> Output {
        cli_at(self.admin, &self.data, args, stdin)
    }

    /// Runs the CLI and insists that it succeeds; returns stdout.
    #[track_caller]
    pub fn ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.cli(args, stdin);
        assert!(
            out.status.success(),
            "sluice-control {args:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("CLI stdout is UTF-8")
    }

    /// Runs the CLI and insists that it fails; returns the output.
    #[track_caller]
    pub fn fails(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let out = self.cli(args, stdin);
        assert!(
            !out.status.success(),
            "sluice-control {args:?} succeeded: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        out
    }

    /// Runs a CLI listing with `--json` and parses its stdout.
    #[track_caller]
    pub fn json(&self, args: &[&str]) -> Value {
        let mut all: Vec<&str> = args.to_vec();
        all.push("--json");
        let out = self.ok(&all, None);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?} --json printed no JSON ({e}): {out}"))
    }

    /// `logs --tenant T --limit 10000 --json`: entries `{dataplane, seq, record}`.
    pub fn logs(&self, tenant: &str) -> Vec<Value> {
        match self.json(&["logs", "--tenant", tenant, "--limit", "10000"]) {
            Value::Array(list) => list,
            other => panic!("logs --json is not a list: {other}"),
        }
    }

    /// Polls `logs` until it lists at least `n` records; returns them.
    /// Panics after [`WAIT`] showing what arrived.
    #[track_caller]
    pub fn wait_logs(&self, tenant: &str, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + WAIT;
        loop {
            let list = self.logs(tenant);
            if list.len() >= n {
                return list;
            }
            if Instant::now() >= deadline {
                panic!(
                    "expected {n} records of {tenant} within {WAIT:?}, got {}:\n{}",
                    list.len(),
                    serde_json::to_string_pretty(&list).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `usage --tenant T --json`: rows `{day, model, requests, input_tokens, output_tokens}`.
    pub fn usage(&self, tenant: &str) -> Vec<Value> {
        match self.json(&["usage", "--tenant", tenant]) {
            Value::Array(list) => list,
            other => panic!("usage --json is not a list: {other}"),
        }
    }

    /// The current snapshot version as the sync API reports it to the data
    /// plane holding `dp_token` (`x-sluice-version` of `GET /v1/snapshot`).
    pub fn snapshot_version(&self, dp_token: &str) -> u64 {
        let r = http::request(self.sync, &Req::get("/v1/snapshot").bearer(&bearer(dp_token)));
        assert_eq!(r.status(), 200, "GET /v1/snapshot: {}", r.text());
        let v = r
            .header("x-sluice-version")
            .unwrap_or_else(|| panic!("no x-sluice-version on GET /v1/snapshot"));
        v.parse().unwrap_or_else(|_| panic!("x-sluice-version {v:?}"))
    }

    /// SIGKILL, and waits for it to be gone.
    pub fn kill(&mut self) {
        self.proc.kill();
    }

    /// SIGTERM; returns the exit status.
    pub fn stop(&mut self) -> ExitStatus {
        self.proc.term()
    }
}

/// A running data plane in control mode.
#[derive(Debug)]
pub struct Dataplane {
    /// The process.
    pub proc: Logged,
    /// Client listener.
    pub addr: SocketAddr,
    /// Admin listener (`/metrics`).
    pub admin: SocketAddr,
    /// The driver it runs on.
    pub driver: Driver,
}

/// How to start a data plane in control mode.
#[derive(Clone, Debug)]
pub struct DataplaneOpts {
    /// `--control`.
    pub control_url: String,
    /// `--token-file`.
    pub token_file: PathBuf,
    /// `--spool-dir`.
    pub spool_dir: PathBuf,
    /// Where its stdout and stderr files go.
    pub logs: PathBuf,
    /// `RUST_LOG`.
    pub log: String,
    /// More arguments, e.g. `--max-snapshot-age-secs N`.
    pub extra_args: Vec<String>,
}

impl Dataplane {
    fn command(driver: Driver, o: &DataplaneOpts) -> Command {
        let mut cmd = Command::new(bins::dataplane());
        cmd.args(["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
            .arg("--control")
            .arg(&o.control_url)
            .arg("--token-file")
            .arg(&o.token_file)
            .arg("--spool-dir")
            .arg(&o.spool_dir)
            .args(["--workers", "2", "--no-pin"])
            .args(&o.extra_args);
        match driver {
            Driver::Uring => cmd.env_remove("MONOIO_FORCE_LEGACY_DRIVER"),
            Driver::Epoll => cmd.env("MONOIO_FORCE_LEGACY_DRIVER", "1"),
        };
        cmd.env("RUST_LOG", &o.log).env_remove("RUST_BACKTRACE");
        cmd
    }

    /// Starts it and waits until both listeners are up.
    pub fn start(driver: Driver, o: &DataplaneOpts) -> Dataplane {
        let mut proc = Logged::spawn("dataplane", Dataplane::command(driver, o), &o.logs);
        let addr = parse_addr("the data plane", &proc.wait_line("listening on ", WAIT));
        let admin = parse_addr("the data plane", &proc.wait_line("admin on ", WAIT));
        Dataplane {
            proc,
            addr,
            admin,
            driver,
        }
    }

    /// Runs it expecting it to refuse to start; returns its exit status and stderr.
    pub fn run_to_exit(driver: Driver, o: &DataplaneOpts) -> (ExitStatus, String) {
        let mut proc = Logged::spawn("dataplane", Dataplane::command(driver, o), &o.logs);
        let status = proc
            .wait_exit(WAIT)
            .unwrap_or_else(|| panic!("the data plane kept running; stderr:\n{}", proc.stderr_text()));
        (status, String::from_utf8_lossy(&proc.stderr()).into_owned())
    }

    /// Sends a request on a fresh connection.
    pub fn request(&self, req: &Req) -> Response {
        http::request(self.addr, req)
    }

    /// Connects to the client listener.
    pub fn connect(&self) -> Conn {
        Conn::connect(self.addr)
    }

    /// `GET /metrics` from the admin listener.
    pub fn metrics(&self) -> String {
        let r = http::request(self.admin, &Req::get("/metrics"));
        assert_eq!(r.status(), 200, "GET /metrics: {}", r.text());
        r.text()
    }

    /// The value of sample `series` (name and exact labels), if present.
    pub fn metric(&self, series: &str) -> Option<f64> {
        sample(&self.metrics(), series)
    }

    /// Polls `/metrics` until `series` satisfies `pred`; returns its value.
    /// Panics after [`WAIT`] with the last exposition.
    #[track_caller]
    pub fn wait_metric(&self, series: &str, what: &str, pred: impl Fn(f64) -> bool) -> f64 {
        let deadline = Instant::now() + WAIT;
        loop {
            let text = self.metrics();
            if let Some(v) = sample(&text, series).filter(|v| pred(*v)) {
                return v;
            }
            if Instant::now() >= deadline {
                panic!("{series} never became {what} within {WAIT:?}; /metrics:\n{text}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `kill -9`.
    pub fn kill(&mut self) {
        self.proc.kill();
    }

    /// Panics (with stderr) unless it is still running.
    pub fn assert_alive(&mut self) {
        self.proc.assert_alive();
    }
}

/// The whole stack, configured through the CLI (see the module docs).
#[derive(Debug)]
pub struct Fleet {
    /// The mock provider (requires [`Fleet::provider_key`]).
    pub mock: Mock,
    /// `serve`.
    pub control: Control,
    /// The data plane.
    pub dp: Dataplane,
    /// The gateway key `apikey create` printed.
    pub key: String,
    /// The provider key given to `provider-key add` on stdin.
    pub provider_key: String,
    /// The enrollment token `dataplane enroll` printed.
    pub dp_token: String,
    opts: DataplaneOpts,
    // Last, so it is removed after the processes are gone.
    dir: TempDir,
}

impl Fleet {
    /// The usual fleet, logging at `RUST_LOG=info`, data plane on `driver`.
    pub fn start(driver: Driver) -> Fleet {
        Fleet::start_with(driver, "info")
    }

    /// The usual fleet with `RUST_LOG=log` for `serve` and the data plane.
    pub fn start_with(driver: Driver, log: &str) -> Fleet {
        let dir = TempDir::new("fleet");
        let provider_key = canary("sk-provider-canary-");
        let mock = Mock::start(MockOpts {
            require_key: Some(provider_key.clone()),
            ..MockOpts::default()
        });
        let control = Control::start(&dir.join("control"), dir.path(), log);
        let key = configure(&control, &mock.url, &provider_key);
        let dp_token = enroll(&control, DATAPLANE_ID);
        let token_file = dir.join("dataplane.token");
        write_secret(&token_file, &format!("{dp_token}\n"));
        let opts = DataplaneOpts {
            control_url: control.sync_url(),
            token_file,
            spool_dir: dir.join("spool"),
            logs: dir.path().to_owned(),
            log: log.to_owned(),
            extra_args: Vec::new(),
        };
        let dp = Dataplane::start(driver, &opts);
        Fleet {
            mock,
            control,
            dp,
            key,
            provider_key,
            dp_token,
            opts,
            dir,
        }
    }

    /// Creates tenant `id` with gateway key `key_id`, a provider key and a route
    /// for [`OPENAI_MODEL`] to the mock; returns the gateway key.
    pub fn add_tenant(&self, id: &str, name: Option<&str>, key_id: &str) -> String {
        let c = &self.control;
        let mut args = vec!["tenant", "create", id];
        if let Some(n) = name {
            args.extend(["--name", n]);
        }
        c.ok(&args, None);
        let key = parse_key(
            &c.ok(&["apikey", "create", "--tenant", id, "--id", key_id], None),
            "sk-sluice-",
        );
        let pk = format!("pk-{key_id}");
        c.ok(
            &["provider-key", "add", "--tenant", id, &pk],
            Some(&self.provider_key),
        );
        let target = format!("upstream=mock,key={pk}");
        c.ok(
            &[
                "route",
                "set",
                "--tenant",
                id,
                "--model",
                OPENAI_MODEL,
                "--target",
                &target,
            ],
            None,
        );
        key
    }

    /// The scratch directory: `control/` (the data directory), `spool/`, the
    /// token file, and every process's stdout and stderr.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Asserts that no canary is anywhere under the fleet's directory:
    /// control's data directory (the redb file), the spool directory (spool,
    /// sequence file, snapshot cache) and every process's stdout and stderr.
    /// `spooled`: records are waiting in the spool, so it must exist too.
    /// First it checks that the scan can find things: the files it must see
    /// are there and not empty, and the token file holds the token.
    #[track_caller]
    pub fn assert_no_plaintext(&self, canaries: &[(&str, String)], when: &str, spooled: bool) {
        let files = files_under(self.dir());
        let mut must = vec!["control/control.redb", "spool/snapshot.cache", "spool/seq"];
        if spooled {
            must.push("spool/spool.jsonl");
        }
        for must in must {
            let p = self.dir().join(must);
            assert!(
                std::fs::metadata(&p).is_ok_and(|m| m.len() > 0),
                "{when}: {} missing or empty",
                p.display()
            );
        }
        let logs: Vec<_> = files
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "stdout" || e == "stderr"))
            .collect();
        assert!(logs.len() >= 4, "{when}: process logs: {logs:?}");
        assert!(
            logs.iter()
                .any(|p| std::fs::metadata(p).is_ok_and(|m| m.len() > 0)),
            "{when}: every log is empty"
        );
        assert_eq!(
            files_containing(&files, &self.dp_token),
            vec![self.dir().join("dataplane.token")],
            "{when}"
        );
        // The key secret its snapshots are sealed to is nowhere else either:
        // not in control's file (sealed there), not in a log, not in the cache.
        let key_secret = self.dp_token.rsplit('-').next().unwrap_or_default();
        assert_eq!(
            files_containing(&files, key_secret),
            vec![self.dir().join("dataplane.token")],
            "{when}"
        );
        for (what, canary) in canaries {
            let hits = files_containing(&files, canary);
            assert!(
                hits.is_empty(),
                "{when}: {what} ({canary}) in plaintext in {hits:?}"
            );
        }
    }

    /// The data plane's spool directory.
    pub fn spool_dir(&self) -> &Path {
        &self.opts.spool_dir
    }

    /// How the data plane is started (to start another, or with a change).
    pub fn dataplane_opts(&self) -> &DataplaneOpts {
        &self.opts
    }

    /// Kills the data plane (if it still runs) and starts it again with the
    /// same spool directory and token, on the same driver.
    pub fn restart_dataplane(&mut self) {
        self.dp.kill();
        self.dp = Dataplane::start(self.dp.driver, &self.opts);
    }

    /// `POST /v1/chat/completions` through the gateway with the tenant's key
    /// and `x-mock-tokens: tokens`.
    pub fn chat(&self, stream: bool, tokens: u32) -> Response {
        self.dp.request(&chat_req(&self.key, stream, tokens))
    }

    /// The records of [`TENANT`] as `logs --json` lists them, once exactly
    /// `n` are there: polls until at least `n` arrived and the data plane's
    /// spool is empty, then insists on exactly `n`, each `(dataplane, seq)`
    /// once. Returns them.
    #[track_caller]
    pub fn expect_records_exactly(&self, n: usize) -> Vec<Value> {
        self.control.wait_logs(TENANT, n);
        self.dp.wait_metric("sluice_spool_pending", "0", |v| v == 0.0);
        let list = self.control.logs(TENANT);
        assert_exactly_once(&list, n);
        list
    }
}

/// A chat completions request with `key` and `x-mock-tokens: tokens`.
pub fn chat_req(key: &str, stream: bool, tokens: u32) -> Req {
    Req::chat(key, &crate::stack::openai_body(OPENAI_MODEL, stream))
        .header("x-mock-tokens", &tokens.to_string())
}

/// Asserts that `logs` (from `logs --json`) holds exactly `n` entries and no
/// `(dataplane, seq)` twice.
#[track_caller]
pub fn assert_exactly_once(logs: &[Value], n: usize) {
    let dump = || serde_json::to_string_pretty(logs).unwrap_or_default();
    let keys: BTreeSet<(String, u64)> = logs
        .iter()
        .map(|e| {
            let dp = e["dataplane"]
                .as_str()
                .unwrap_or_else(|| panic!("entry without dataplane: {e}"));
            let seq = e["seq"]
                .as_u64()
                .unwrap_or_else(|| panic!("entry without seq: {e}"));
            (dp.to_owned(), seq)
        })
        .collect();
    assert_eq!(
        keys.len(),
        logs.len(),
        "a (dataplane, seq) listed twice:\n{}",
        dump()
    );
    assert_eq!(logs.len(), n, "expected exactly {n} records:\n{}", dump());
}

/// Writes a secret file, mode 0600.
pub fn write_secret(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
    f.write_all(text.as_bytes())
        .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

/// Creates, with the CLI: tenant [`TENANT`], gateway key [`KEY_ID`],
/// upstreams `mock` (openai) and `mock-anthropic` at `mock_url`, provider key
/// [`PROVIDER_KEY_ID`] = `provider_key` (on stdin), and routes
/// [`OPENAI_MODEL`] and [`ANTHROPIC_MODEL`]. Returns the gateway key.
pub fn configure(c: &Control, mock_url: &str, provider_key: &str) -> String {
    let out = c.ok(&["tenant", "create", TENANT, "--name", "Acme"], None);
    assert!(out.contains("created tenant acme"), "{out}");
    let out = c.ok(&["apikey", "create", "--tenant", TENANT, "--id", KEY_ID], None);
    let key = parse_key(&out, "sk-sluice-");
    for (name, kind) in [("mock", "openai"), ("mock-anthropic", "anthropic")] {
        c.ok(
            &["upstream", "add", name, "--kind", kind, "--base-url", mock_url],
            None,
        );
    }
    c.ok(
        &["provider-key", "add", "--tenant", TENANT, PROVIDER_KEY_ID],
        Some(provider_key),
    );
    for (model, upstream) in [(OPENAI_MODEL, "mock"), (ANTHROPIC_MODEL, "mock-anthropic")] {
        let target = format!("upstream={upstream},key={PROVIDER_KEY_ID}");
        c.ok(
            &[
                "route", "set", "--tenant", TENANT, "--model", model, "--target", &target,
            ],
            None,
        );
    }
    key
}

/// The bearer part of an enrollment token (`sdp-ID-BEARER-KEY` →
/// `sdp-ID-BEARER`): what a data plane presents; the key part never leaves it.
pub fn bearer(token: &str) -> String {
    token
        .rsplit_once('-')
        .map(|(b, _)| b.to_owned())
        .unwrap_or_default()
}

/// `dataplane enroll ID`; returns the whole token it printed (the token file).
pub fn enroll(c: &Control, id: &str) -> String {
    parse_key(&c.ok(&["dataplane", "enroll", id], None), "sdp-")
}

/// The one stdout line that starts with `prefix` (a key printed once).
#[track_caller]
pub fn parse_key(stdout: &str, prefix: &str) -> String {
    let lines: Vec<&str> = stdout.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    match lines.as_slice() {
        [line] if line.starts_with(prefix) => (*line).to_owned(),
        _ => panic!("expected one line {prefix}... on stdout, got {stdout:?}"),
    }
}

/// Every file under `dir` (recursively).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The files among `files` whose raw bytes contain `needle`.
pub fn files_containing(files: &[PathBuf], needle: &str) -> Vec<PathBuf> {
    files
        .iter()
        .filter(|p| {
            let bytes = std::fs::read(p).unwrap_or_default();
            bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
        })
        .cloned()
        .collect()
}
