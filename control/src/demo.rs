//! `sluice-control demo`: the whole stack on one machine.
//!
//! A fresh data directory, `serve`, the mock provider and a data plane as
//! child processes (their logs in DATA/logs/), a demo tenant with a gateway
//! key, OpenAI-, Anthropic- and Gemini-dialect upstreams pointing at the
//! mock, routes for `gpt-4o-mini`, `claude-3-5-haiku`, `gemini-2.5-flash`
//! and the embeddings model `text-embedding-3-small`; then one streamed request printed
//! as it arrives, a short load test, the usage table, and lines to paste.
//! Runs until SIGINT or SIGTERM, then stops every child.

mod children;
mod stream;

use crate::cli::records::print_usage;
use crate::cli::{method, Client};
use crate::store::rows::{DataplaneInfo, UsageRow};
use anyhow::{anyhow, bail, Context};
use children::Children;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Options of `demo`.
#[derive(clap::Args, Debug)]
pub(crate) struct DemoArgs {
    /// Data directory; must be new or empty (default: a new temporary directory).
    #[arg(long)]
    pub(crate) data: Option<PathBuf>,
    /// First of five consecutive ports: sync, admin, mock, gateway, gateway
    /// admin (default: free ports).
    #[arg(long)]
    pub(crate) port_base: Option<u16>,
}

/// The demo tenant's gateway key id.
const TENANT: &str = "demo";

struct Ports {
    sync: u16,
    admin: u16,
    mock: u16,
    gateway: u16,
    gateway_admin: u16,
}

fn ports(base: Option<u16>) -> anyhow::Result<Ports> {
    let pick = |i: u16| -> anyhow::Result<u16> {
        match base {
            Some(b) => b
                .checked_add(i)
                .ok_or_else(|| anyhow!("--port-base {b} leaves no room for 5 ports")),
            // Bound and released: a small race with other processes, fine for a demo.
            None => Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port()),
        }
    };
    Ok(Ports {
        sync: pick(0)?,
        admin: pick(1)?,
        mock: pick(2)?,
        gateway: pick(3)?,
        gateway_admin: pick(4)?,
    })
}

fn fresh_dir(data: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let dir = match data {
        Some(d) => d,
        None => std::env::temp_dir().join(format!(
            "sluice-demo-{}-{}",
            std::process::id(),
            crate::clock::now_ms()
        )),
    };
    if dir.exists() && std::fs::read_dir(&dir)?.next().is_some() {
        bail!(
            "{} is not empty; the demo needs a fresh data directory",
            dir.display()
        );
    }
    crate::serve::ensure_data_dir(&dir)?;
    std::fs::create_dir_all(dir.join("logs"))?;
    Ok(dir)
}

/// A sibling binary of this executable.
fn sibling(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating this executable")?;
    let path = exe.with_file_name(name);
    if !path.exists() {
        bail!(
            "{} not found next to {}; build the workspace first (cargo build --workspace)",
            name,
            exe.display()
        );
    }
    Ok(path)
}

/// Waits until something accepts connections on `port`.
fn wait_port(port: u16, what: &str, children: &mut Children) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        children.check()?;
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("{what} did not start listening on 127.0.0.1:{port}")
}

/// Runs the demo.
pub(crate) fn main(args: DemoArgs) -> anyhow::Result<()> {
    let dir = fresh_dir(args.data)?;
    let p = ports(args.port_base)?;
    let me = std::env::current_exe().context("locating this executable")?;
    let dataplane_bin = sibling("sluice-dataplane")?;
    let loadtest_bin = sibling("sluice-loadtest")?;
    let mut children = Children::new(dir.join("logs"));

    println!("== Sluice demo: data in {}", dir.display());
    let mut serve = Command::new(&me);
    serve
        .args([
            "serve",
            "--admin",
            &format!("127.0.0.1:{}", p.admin),
            "--sync",
            &format!("127.0.0.1:{}", p.sync),
        ])
        .arg("--data")
        .arg(&dir);
    let out = children.spawn("control", serve, true)?;
    if let Some(out) = out {
        // Wait for the two "listening" lines, then let the rest drain.
        let mut lines = BufReader::new(out).lines();
        for _ in 0..2 {
            let line = lines.next().ok_or_else(|| {
                anyhow!(
                    "control exited early; see {}",
                    dir.join("logs/control.log").display()
                )
            })??;
            println!("   control {line}");
        }
        std::thread::spawn(move || lines.for_each(drop));
    }
    let admin_url = format!("http://127.0.0.1:{}", p.admin);
    let token =
        crate::secret_file::read(&dir.join(crate::serve::ADMIN_TOKEN_FILE)).map_err(|e| anyhow!(e))?;
    let endpoint = crate::http::client::Endpoint::parse(&admin_url, None).map_err(|e| anyhow!(e))?;
    let c = Client::with_token(endpoint, token);

    let mut mock = Command::new(&loadtest_bin);
    mock.args(["mock", "--listen", &format!("127.0.0.1:{}", p.mock)]);
    children.spawn("mock", mock, false)?;
    wait_port(p.mock, "the mock provider", &mut children)?;
    println!("   mock provider on 127.0.0.1:{}", p.mock);

    let key = configure(&c, p.mock)?;
    let enrolled: Value = c.json(method::POST, "/v1/dataplanes", Some(&json!({ "id": TENANT })))?;
    let token_file = dir.join("dataplane.token");
    let dp_token = enrolled["token"]
        .as_str()
        .ok_or_else(|| anyhow!("enrollment returned no token"))?;
    crate::secret_file::write_atomic(&token_file, format!("{dp_token}\n").as_bytes())?;

    let mut dp = Command::new(&dataplane_bin);
    dp.args(["--listen", &format!("127.0.0.1:{}", p.gateway)])
        .args(["--control", &format!("http://127.0.0.1:{}", p.sync)])
        .arg("--token-file")
        .arg(&token_file)
        .arg("--spool-dir")
        .arg(dir.join("spool"))
        .args([
            "--workers",
            "2",
            "--admin",
            &format!("127.0.0.1:{}", p.gateway_admin),
        ]);
    children.spawn("dataplane", dp, false)?;
    wait_port(p.gateway, "the data plane", &mut children)?;
    wait_synced(&c, &mut children)?;
    println!(
        "   data plane (gateway) on 127.0.0.1:{}, synced with control",
        p.gateway
    );

    println!("\n== A streamed request through the gateway (gpt-4o-mini):");
    match stream::chat(
        p.gateway,
        &key,
        "gpt-4o-mini",
        "Say hello to Sluice in five words.",
    ) {
        Ok(()) => {}
        Err(e) => println!("   (request failed: {e:#})"),
    }

    println!("\n== Load: sluice-loadtest run --rate 50 --duration 3s --stream");
    let status = Command::new(&loadtest_bin)
        .args([
            "run",
            "--url",
            &format!("http://127.0.0.1:{}", p.gateway),
            "--api-key",
            &key,
        ])
        .args([
            "--rate",
            "50",
            "--duration",
            "3s",
            "--stream",
            "--model",
            "gpt-4o-mini",
        ])
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => println!("   (load test failed: {s}; continuing)"),
        Err(e) => println!("   (load test could not start: {e}; continuing)"),
    }

    println!("\n== Usage of tenant {TENANT}, read back from the store:");
    let usage = wait_usage(&c, &mut children)?;
    print_usage(&usage);

    print_exports(&dir, &p, &key);
    print_console(&c, &admin_url);
    println!("\nRunning; Ctrl-C stops everything.");
    children.wait_for_signal()?;
    children.stop_all();
    Ok(())
}

/// Creates the demo tenant, key, upstreams, provider key and routes; returns the gateway key.
/// The Gemini model the demo routes (to the mock's Gemini API).
const GEMINI_MODEL: &str = "gemini-2.5-flash";

fn configure(c: &Client, mock_port: u16) -> anyhow::Result<String> {
    let base = format!("http://127.0.0.1:{mock_port}");
    let _: Value = c.json(
        method::POST,
        "/v1/tenants",
        Some(&json!({ "id": TENANT, "name": "Sluice demo" })),
    )?;
    let created: Value = c.json(
        method::POST,
        &format!("/v1/tenants/{TENANT}/api-keys"),
        Some(&json!({ "id": "demo" })),
    )?;
    let key = created["key"]
        .as_str()
        .ok_or_else(|| anyhow!("no key in reply"))?
        .to_owned();
    let _: Value = c.json(
        method::POST,
        "/v1/upstreams",
        Some(&json!({ "name": "mock-openai", "kind": "openai", "base_url": base })),
    )?;
    let _: Value = c.json(
        method::POST,
        "/v1/upstreams",
        Some(&json!({ "name": "mock-anthropic", "kind": "anthropic", "base_url": base })),
    )?;
    let _: Value = c.json(
        method::POST,
        "/v1/upstreams",
        Some(&json!({ "name": "mock-gemini", "kind": "gemini", "base_url": base })),
    )?;
    let _: Value = c.json(
        method::POST,
        &format!("/v1/tenants/{TENANT}/provider-keys"),
        Some(&json!({ "id": "mock-key", "secret": "sk-mock-demo" })),
    )?;
    for (model, upstream) in [
        ("gpt-4o-mini", "mock-openai"),
        ("claude-3-5-haiku", "mock-anthropic"),
        ("text-embedding-3-small", "mock-openai"),
        (GEMINI_MODEL, "mock-gemini"),
    ] {
        let _: Value = c.json(
            method::PUT,
            &format!("/v1/tenants/{TENANT}/routes"),
            Some(
                &json!({ "model": model, "targets": [{ "upstream": upstream, "provider_key": "mock-key" }] }),
            ),
        )?;
    }
    println!("   tenant {TENANT}, gateway key, upstreams mock-openai, mock-anthropic and mock-gemini, routes gpt-4o-mini, claude-3-5-haiku, {GEMINI_MODEL} and text-embedding-3-small");
    Ok(key)
}

/// Waits until the data plane has been served the current snapshot.
fn wait_synced(c: &Client, children: &mut Children) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let list: Vec<DataplaneInfo> = c.get("/v1/dataplanes")?;
        if list
            .iter()
            .any(|d| d.id == TENANT && d.snapshot_version.is_some_and(|v| v > 1))
        {
            return Ok(());
        }
        children.check()?;
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("the data plane did not fetch a snapshot within 20 s; see its log")
}

/// Reads the usage table, waiting a little for the data plane to ship records.
fn wait_usage(c: &Client, children: &mut Children) -> anyhow::Result<Vec<UsageRow>> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut last = Vec::new();
    while Instant::now() < deadline {
        last = c.get(&format!("/v1/tenants/{TENANT}/usage"))?;
        if !last.is_empty() {
            // Give stragglers one batch interval more.
            std::thread::sleep(Duration::from_millis(500));
            return c.get(&format!("/v1/tenants/{TENANT}/usage"));
        }
        children.check()?;
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(last)
}

/// The console's URL and a one-time sign-in link (a short-lived code in the
/// URL's fragment, which the browser never sends to a server: the admin
/// token itself never goes into a URL).
fn print_console(c: &Client, admin_url: &str) {
    println!("\n== The web console:");
    println!("{admin_url}/ui/  (sign in with the token in $SLUICE_DATA/admin.token)");
    match crate::cli::console::sign_in_link(c, admin_url) {
        Ok((link, minutes)) => {
            println!("sign-in link (one use, expires in {minutes} minutes; `sluice-control console link` makes another):");
            println!("{link}");
        }
        Err(e) => println!("   (no sign-in link: {e:#})"),
    }
}

fn print_exports(dir: &Path, p: &Ports, key: &str) {
    println!("\n== Use it (paste into a shell):");
    println!("export SLUICE_BASE_URL=http://127.0.0.1:{}/v1", p.gateway);
    println!("export SLUICE_API_KEY={key}");
    println!("export SLUICE_MODEL=gpt-4o-mini");
    println!("export SLUICE_EMBED_MODEL=text-embedding-3-small");
    println!("export SLUICE_GEMINI_MODEL={GEMINI_MODEL}");
    println!("export SLUICE_DATA={}", dir.display());
    println!("export SLUICE_ADMIN_URL=http://127.0.0.1:{}", p.admin);
    println!("\n# OpenAI SDK (python):");
    println!("from openai import OpenAI; import os");
    println!("c = OpenAI(base_url=os.environ['SLUICE_BASE_URL'], api_key=os.environ['SLUICE_API_KEY'])");
    println!("print(c.chat.completions.create(model='gpt-4o-mini', messages=[{{'role': 'user', 'content': 'hi'}}]).choices[0].message.content)");
    println!("print(c.responses.create(model='gpt-4o-mini', input='hi').output_text)");
    println!("print(len(c.embeddings.create(model=os.environ['SLUICE_EMBED_MODEL'], input='hi').data[0].embedding))");
    println!("\n# Anthropic SDK (python):");
    println!("from anthropic import Anthropic; import os");
    println!("c = Anthropic(base_url=os.environ['SLUICE_BASE_URL'].removesuffix('/v1'), api_key=os.environ['SLUICE_API_KEY'])");
    println!("print(c.messages.create(model='claude-3-5-haiku', max_tokens=64, messages=[{{'role': 'user', 'content': 'hi'}}]).content[0].text)");
    println!("\n# Google Gen AI SDK (python, google-genai):");
    println!("from google import genai; import os");
    println!("c = genai.Client(api_key=os.environ['SLUICE_API_KEY'], http_options={{'base_url': os.environ['SLUICE_BASE_URL'].removesuffix('/v1')}})");
    println!("print(c.models.generate_content(model=os.environ['SLUICE_GEMINI_MODEL'], contents='hi').text)");
    println!("\n# The CLI (SLUICE_ADMIN_URL and SLUICE_DATA find control and its admin token):");
    println!("sluice-control logs --tenant {TENANT} --limit 5 && sluice-control usage --tenant {TENANT}");
}
