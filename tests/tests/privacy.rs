//! The privacy promises of PRIVACY.md, as real processes: `sluice-control
//! serve`, a data plane in control mode, the mock provider (and a scripted
//! upstream whose completions are canaries), configured with the CLI. Each
//! test fails if its promise breaks: the byte scans read the real redb file,
//! the spool, the snapshot cache and every process's stdout and stderr.
//!
//! Waits poll under generous deadlines; no assertion is about how long
//! something took.

// Test code: a failed unwrap is a failed test. (clippy.toml's test allowances
// cover #[test] functions only, not the per-case functions they call.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use redb::{ReadableDatabase, TableDefinition};
use serde_json::{json, Value};
use sluice_tests::control::{
    canary, chat_req, configure, parse_key, Control, Fleet, ANTHROPIC_MODEL, KEY_ID, OPENAI_MODEL, TENANT,
};
use sluice_tests::http::{Req, Response};
use sluice_tests::privacy::{bytes, contains, occurrences, sha256_hex, Clocked, Scripted, SCRIPT_HEADER};
use sluice_tests::stack::{anthropic_body, openai_body};
use sluice_tests::tmp::TempDir;
use sluice_tests::{both_drivers, Driver, WAIT};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

both_drivers!(no_content_or_secret_at_rest_by_default);

/// The model routed to the [`Scripted`] upstream.
const SCRIPTED_MODEL: &str = "scripted-model";
/// A policy that blocks prompts naming a topic (the topic is no canary: the
/// policy text itself is stored).
const BLOCK_POLICY: &str = r#"
[[rules]]
id = "no-zeta"
action = "block"
when.prompt_contains = ["forbidden-topic-zeta"]
"#;

// ---- helpers -----------------------------------------------------------------

/// Waits until the data plane serves the snapshot version control has now.
fn sync_dp(f: &Fleet) {
    let v = f.control.snapshot_version(&f.dp_token) as f64;
    f.dp.wait_metric("sluice_snapshot_version", "control's version", |x| x >= v);
}

/// Records control holds from all data planes (`dataplane list`).
fn stored(c: &Control) -> u64 {
    let list = c.json(&["dataplane", "list"]);
    list.as_array()
        .unwrap_or_else(|| panic!("dataplane list: {list}"))
        .iter()
        .map(|d| d["records"].as_u64().unwrap_or(0))
        .sum()
}

/// Waits until control holds at least `n` records and the spool is empty.
#[track_caller]
fn wait_stored(f: &Fleet, n: u64) {
    let deadline = Instant::now() + WAIT;
    loop {
        let have = stored(&f.control);
        if have >= n {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "control holds {have} records, expected {n}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    f.dp.wait_metric("sluice_spool_pending", "0", |v| v == 0.0);
}

/// Adds upstream `scripted` at `url` and routes [`SCRIPTED_MODEL`] of the tenant to it.
fn add_scripted(c: &Control, url: &str) {
    c.ok(
        &[
            "upstream",
            "add",
            "scripted",
            "--kind",
            "openai",
            "--base-url",
            url,
        ],
        None,
    );
    c.ok(
        &[
            "route",
            "set",
            "--tenant",
            TENANT,
            "--model",
            SCRIPTED_MODEL,
            "--target",
            "upstream=scripted,key=pk",
        ],
        None,
    );
}

/// An OpenAI chat body for `model` whose user message holds `prompt`.
fn chat_body(model: &str, stream: bool, prompt: &str) -> Value {
    let mut b = openai_body(model, stream);
    b["messages"][0]["content"] = json!(format!("Please consider this: {prompt}"));
    b
}

/// An Anthropic messages body whose user message holds `prompt`.
fn messages_body(stream: bool, prompt: &str) -> Value {
    let mut b = anthropic_body(ANTHROPIC_MODEL, stream);
    b["messages"][0]["content"] = json!(format!("Please consider this: {prompt}"));
    b
}

/// The data directory's store file.
fn db_path(c: &Control) -> PathBuf {
    c.data().join("control.redb")
}

/// Asserts that the tenant's records carry a client IP hash and no raw
/// address, and that the only `127.0.0.1` in the store file is in an
/// upstream's URL (`127.0.0.1:PORT` of one of `upstream_ports`).
#[track_caller]
fn assert_ips_hashed(f: &Fleet, upstream_ports: &[u16]) {
    let logs = f.control.logs(TENANT);
    assert!(!logs.is_empty());
    for e in &logs {
        let h = e["record"]["client_ip_hash"]
            .as_str()
            .unwrap_or_else(|| panic!("no client_ip_hash: {e}"));
        assert!(
            h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()),
            "client_ip_hash is not an HMAC-SHA256: {e}"
        );
    }
    let text = serde_json::to_string(&logs).unwrap();
    assert!(!text.contains("127.0.0.1"), "a raw client IP in a record: {text}");
    let db = bytes(&db_path(&f.control));
    let hits = occurrences(&db, b"127.0.0.1");
    for at in hits {
        let rest = &db[at + "127.0.0.1".len()..];
        assert!(
            upstream_ports
                .iter()
                .any(|p| rest.starts_with(format!(":{p}").as_bytes())),
            "a raw 127.0.0.1 that is no upstream URL in the store file: {:?}",
            String::from_utf8_lossy(&db[at.saturating_sub(60)..(at + 60).min(db.len())])
        );
    }
}

/// Sends `req` to the data plane, counting it.
fn send(f: &Fleet, sent: &mut u64, req: Req) -> Response {
    *sent += 1;
    f.dp.request(&req)
}

/// Asserts that a response the gateway made itself does not echo `prompt`.
#[track_caller]
fn no_echo(r: &Response, prompt: &str, what: &str) {
    assert!(
        !r.text().contains(prompt),
        "{what}: the error body echoes the prompt: {}",
        r.text()
    );
}

// ---- 1. no content, no secret at rest, by default -----------------------------

fn no_content_or_secret_at_rest_by_default(d: Driver) {
    // The promise is about logs up to info; debug logs all of that and more.
    let mut f = Fleet::start_with(d, "debug");
    let prompt = canary("prompt-canary-");
    let completion = canary("completion-canary-");
    let scripted = Scripted::start(&completion);
    add_scripted(&f.control, &scripted.url());
    let policy = f.dir().join("policy.toml");
    std::fs::write(&policy, BLOCK_POLICY).unwrap();
    f.control.ok(
        &[
            "policy",
            "set",
            "--tenant",
            TENANT,
            "--file",
            policy.to_str().unwrap(),
        ],
        None,
    );
    sync_dp(&f);
    let wrong = canary("sk-sluice-k1-");
    let mut sent = 0u64;

    // Served: OpenAI and Anthropic, streamed and not.
    for stream in [false, true] {
        let r = send(
            &f,
            &mut sent,
            Req::chat(&f.key, &chat_body(OPENAI_MODEL, stream, &prompt)).header("x-mock-tokens", "4"),
        );
        assert_eq!(r.status(), 200, "{}", r.text());
        let r = send(
            &f,
            &mut sent,
            Req::messages(&f.key, &messages_body(stream, &prompt)).header("x-mock-tokens", "4"),
        );
        assert_eq!(r.status(), 200, "{}", r.text());
    }
    // A completion that is a canary, whole and as a stream cut short.
    let r = send(
        &f,
        &mut sent,
        Req::chat(&f.key, &chat_body(SCRIPTED_MODEL, false, &prompt)),
    );
    assert_eq!(r.status(), 200, "{}", r.text());
    assert!(r.text().contains(&completion), "{}", r.text());
    let r = send(
        &f,
        &mut sent,
        Req::chat(&f.key, &chat_body(SCRIPTED_MODEL, true, &prompt)).header(SCRIPT_HEADER, "sse-cut"),
    );
    assert!(r.text().contains(&completion), "{}", r.text());
    assert!(!r.complete || !r.text().contains("[DONE]"), "{}", r.text());
    // Upstream 401s: one echoing the provider key and a completion canary.
    let r = send(
        &f,
        &mut sent,
        Req::chat(&f.key, &chat_body(SCRIPTED_MODEL, false, &prompt)).header(SCRIPT_HEADER, "401"),
    );
    assert!(r.status() >= 400, "{}", r.text());
    let r = send(
        &f,
        &mut sent,
        Req::chat(&f.key, &chat_body(OPENAI_MODEL, false, &prompt)).header("x-mock-status", "401"),
    );
    assert!(r.status() >= 400, "{}", r.text());
    // A truncated upstream stream.
    let r = send(
        &f,
        &mut sent,
        Req::chat(&f.key, &chat_body(OPENAI_MODEL, true, &prompt))
            .header("x-mock-tokens", "30")
            .header("x-mock-truncate-after", "200"),
    );
    assert!(!r.complete || !r.text().contains("[DONE]"), "{}", r.text());
    // Refused by the gateway: a bad key (both dialects), a malformed body,
    // a policy block. Their error bodies do not echo the prompt either.
    let r = send(
        &f,
        &mut sent,
        Req::chat(&wrong, &chat_body(OPENAI_MODEL, false, &prompt)),
    );
    r.assert_openai_error(401);
    no_echo(&r, &prompt, "bad key");
    assert!(!r.text().contains(&wrong), "the bad key is echoed: {}", r.text());
    let r = send(
        &f,
        &mut sent,
        Req::messages(&wrong, &messages_body(false, &prompt)),
    );
    r.assert_anthropic_error(401);
    no_echo(&r, &prompt, "bad key (anthropic)");
    let malformed =
        format!("{{\"model\":\"{OPENAI_MODEL}\",\"messages\":[{{\"role\":\"user\",\"content\":\"{prompt}");
    let r = send(&f, &mut sent, Req::chat(&f.key, &json!({})).body(malformed));
    r.assert_openai_error(400);
    no_echo(&r, &prompt, "malformed body");
    let blocked = format!("{prompt} forbidden-topic-zeta");
    let r = send(
        &f,
        &mut sent,
        Req::chat(&f.key, &chat_body(OPENAI_MODEL, false, &blocked)),
    );
    let e = r.assert_openai_error(403);
    assert_eq!(e["code"], "policy_blocked", "{e}");
    no_echo(&r, &prompt, "policy block");
    wait_stored(&f, sent);

    // Spooled while control is down.
    f.control.kill();
    let r = send(
        &f,
        &mut sent,
        Req::chat(&f.key, &chat_body(OPENAI_MODEL, false, &prompt)),
    );
    assert_eq!(r.status(), 200, "{}", r.text());
    let r = send(
        &f,
        &mut sent,
        Req::chat(&f.key, &chat_body(SCRIPTED_MODEL, false, &prompt)),
    );
    assert_eq!(r.status(), 200, "{}", r.text());
    send(
        &f,
        &mut sent,
        Req::chat(&wrong, &chat_body(OPENAI_MODEL, false, &prompt)),
    )
    .assert_openai_error(401);
    f.dp.wait_metric("sluice_spool_pending", ">= 3", |v| v >= 3.0);

    let secret = f.key.rsplit('-').next().unwrap().to_owned();
    assert!(
        secret.len() >= 32,
        "gateway key secret too short to test: {}",
        f.key
    );
    let canaries = [
        ("the prompt", prompt.clone()),
        ("the completion", completion.clone()),
        ("the provider key", f.provider_key.clone()),
        ("the gateway key", f.key.clone()),
        ("the gateway key's secret", secret),
        ("a refused gateway key", wrong.clone()),
    ];
    f.assert_no_plaintext(&canaries, "with records spooled", true);
    let spool = bytes(&f.spool_dir().join("spool.jsonl"));
    assert!(contains(&spool, "client_ip_hash"), "no record in the spool");
    assert!(!contains(&spool, "127.0.0.1"), "a raw client IP in the spool");

    // Replayed into the store: still nothing; every record has its IP hashed.
    f.control.restart();
    wait_stored(&f, sent);
    f.assert_no_plaintext(&canaries, "after the replay", false);
    assert_ips_hashed(&f, &[f.mock.addr.port(), scripted.addr.port()]);
}

// ---- 2. opt-in content: sealed at rest, opened for the admin -----------------

#[test]
fn opted_in_content_is_sealed_at_rest_and_opens_for_the_admin() {
    let mut f = Fleet::start(Driver::Uring);
    let prompt = canary("optin-prompt-");
    let completion = canary("optin-completion-");
    let scripted = Scripted::start(&completion);
    add_scripted(&f.control, &scripted.url());
    let out = f
        .control
        .ok(&["tenant", "update", TENANT, "--log-content", "on"], None);
    assert!(out.contains("content logging on"), "{out}");
    sync_dp(&f);

    let r =
        f.dp.request(&Req::chat(&f.key, &chat_body(OPENAI_MODEL, false, &prompt)));
    assert_eq!(r.status(), 200, "{}", r.text());
    let r =
        f.dp.request(&Req::chat(&f.key, &chat_body(SCRIPTED_MODEL, false, &prompt)));
    assert_eq!(r.status(), 200, "{}", r.text());
    let logs = f.expect_records_exactly(2);
    for e in &logs {
        let sealed = e["record"]["content_sealed"]
            .as_str()
            .unwrap_or_else(|| panic!("no sealed content: {e}"));
        assert!(sealed.len() > 64 && !sealed.contains(&prompt), "{e}");
    }
    let db = bytes(&db_path(&f.control));
    for (what, c) in [("prompt", &prompt), ("completion", &completion)] {
        assert!(!contains(&db, c), "the {what} is in the store file in plaintext");
    }

    // A spooled copy is sealed too.
    f.control.kill();
    let r =
        f.dp.request(&Req::chat(&f.key, &chat_body(SCRIPTED_MODEL, true, &prompt)));
    assert_eq!(r.status(), 200, "{}", r.text());
    f.dp.wait_metric("sluice_spool_pending", ">= 1", |v| v >= 1.0);
    let spool = bytes(&f.spool_dir().join("spool.jsonl"));
    assert!(
        contains(&spool, "content_sealed"),
        "no sealed content in the spool"
    );
    assert!(!contains(&spool, &prompt) && !contains(&spool, &completion));
    f.control.restart();
    f.expect_records_exactly(3);

    // The admin opens it: `logs --content`.
    let out = f.control.ok(&["logs", "--tenant", TENANT, "--content"], None);
    assert!(out.contains(&prompt), "logs --content lacks the prompt:\n{out}");
    assert!(
        out.contains(&completion),
        "logs --content lacks the completion:\n{out}"
    );
    let list = f.control.json(&["logs", "--tenant", TENANT, "--content"]);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 3, "{list:?}");
    for e in list {
        assert_eq!(e["content"]["state"], "opened", "{e}");
        assert!(e["content"]["request"].as_str().unwrap().contains(&prompt), "{e}");
        assert!(e["record"].get("content_sealed").is_none(), "{e}");
    }
    let streamed = list.iter().find(|e| e["record"]["stream"] == true).unwrap();
    assert!(
        streamed["content"]["response"]
            .as_str()
            .unwrap()
            .contains(&completion),
        "{streamed}"
    );
    // The reading is in the audit trail.
    let audit = f.control.json(&["audit", "list"]);
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "content.read"),
        "{audit}"
    );
    // And the export opens it.
    let out_dir = TempDir::new("export-content");
    let file = out_dir.join("acme.json");
    f.control.ok(
        &["export", "--tenant", TENANT, "--out", file.to_str().unwrap()],
        None,
    );
    let doc: Value = serde_json::from_slice(&bytes(&file)).unwrap();
    let opened = doc["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["content"]["state"] == "opened")
        .count();
    assert_eq!(opened, 3, "{doc}");
    assert!(contains(&bytes(&file), &completion));

    // Still nothing in plaintext at rest or in a log.
    let canaries = [
        ("the prompt", prompt.clone()),
        ("the completion", completion.clone()),
        ("the provider key", f.provider_key.clone()),
        ("the gateway key", f.key.clone()),
    ];
    f.assert_no_plaintext(&canaries, "with content logging on", false);
}

// ---- 3. deletion --------------------------------------------------------------

#[test]
fn a_deleted_tenant_leaves_no_byte_in_the_store_file() {
    let f = Fleet::start(Driver::Uring);
    let c = &f.control;
    let doomed = canary("doomed-");
    let name = canary("Doomed Corp ");
    let key_id = canary("kd-");
    let pk_id = canary("pkd-");
    let model = canary("doomed-model-");
    let prompt = canary("doomed-prompt-");
    c.ok(&["tenant", "create", &doomed, "--name", &name], None);
    let key = parse_key(
        &c.ok(&["apikey", "create", "--tenant", &doomed, "--id", &key_id], None),
        "sk-sluice-",
    );
    c.ok(
        &["provider-key", "add", "--tenant", &doomed, &pk_id],
        Some(&f.provider_key),
    );
    let target = format!("upstream=mock,key={pk_id}");
    c.ok(
        &[
            "route", "set", "--tenant", &doomed, "--model", &model, "--target", &target,
        ],
        None,
    );
    c.ok(&["tenant", "update", &doomed, "--log-content", "on"], None);
    // A policy (its rule id a canary) and a rate limit of its own.
    let rule_id = canary("doomed-rule-");
    let policy = f.dir().join("doomed-policy.toml");
    std::fs::write(
        &policy,
        format!(
            "[[rules]]\nid = \"{rule_id}\"\naction = \"block\"\nwhen.prompt_contains = [\"never-said\"]\n"
        ),
    )
    .unwrap();
    c.ok(
        &[
            "policy",
            "set",
            "--tenant",
            &doomed,
            "--file",
            policy.to_str().unwrap(),
        ],
        None,
    );
    std::fs::remove_file(&policy).unwrap();
    c.ok(
        &[
            "limit", "set", "--tenant", &doomed, "--key", &key_id, "--rpm", "1000",
        ],
        None,
    );
    sync_dp(&f);
    for stream in [false, true, false] {
        let r =
            f.dp.request(&Req::chat(&key, &chat_body(&model, stream, &prompt)).header("x-mock-tokens", "3"));
        assert_eq!(r.status(), 200, "{}", r.text());
    }
    for _ in 0..2 {
        assert_eq!(f.chat(false, 2).status(), 200);
    }
    c.wait_logs(&doomed, 3);
    let acme_before = f.expect_records_exactly(2);
    let usage_before = c.usage(TENANT);
    let doomed_logs = c.logs(&doomed);
    let sealed: Vec<String> = doomed_logs
        .iter()
        .map(|e| {
            e["record"]["content_sealed"]
                .as_str()
                .unwrap_or_else(|| panic!("no sealed content: {e}"))
                .to_owned()
        })
        .collect();

    // Prepaid credit, added last (its model has no price).
    c.ok(
        &[
            "tenant", "credit", "add", "--tenant", &doomed, "--micros", "5000000",
        ],
        None,
    );
    let db = db_path(c);
    let mut needles = vec![
        ("its policy's rule id", rule_id.clone()),
        ("its id", doomed.clone()),
        ("its name", name.clone()),
        ("its gateway key id", key_id.clone()),
        ("its provider key id", pk_id.clone()),
        ("its model", model.clone()),
    ];
    for (i, s) in sealed.iter().enumerate() {
        needles.push((
            ["sealed content 1", "sealed content 2", "sealed content 3"][i],
            s[..64].to_owned(),
        ));
    }
    // The scan can fail: all of it is in the file now.
    let before = bytes(&db);
    for (what, n) in &needles {
        assert!(
            contains(&before, n),
            "{what} ({n}) is not in the file before the deletion"
        );
    }

    let out = c.ok(&["tenant", "delete", &doomed], None);
    assert!(out.contains(&doomed), "{out}");
    needles.push(("its gateway key", key.clone()));
    needles.push(("the prompt", prompt.clone()));
    let after = bytes(&db);
    for (what, n) in &needles {
        assert!(
            !contains(&after, n),
            "{what} ({n}) is still in the store file after `tenant delete`"
        );
    }
    // Nothing of it is listed; the other tenant is intact.
    assert!(c.cli(&["logs", "--tenant", &doomed], None).status.code() != Some(0));
    let tenants = c.json(&["tenant", "list"]);
    assert_eq!(tenants.as_array().map(Vec::len), Some(1), "{tenants}");
    assert_eq!(tenants[0]["id"], TENANT, "{tenants}");
    assert_eq!(c.logs(TENANT), acme_before);
    assert_eq!(c.usage(TENANT), usage_before);
    assert!(contains(&after, "Acme"), "the other tenant's name is gone");
    // The deletion is in the audit trail, without the tenant's name, and the
    // trail still verifies.
    let audit = c.json(&["audit", "list", "--limit", "1000"]);
    let del = audit
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "tenant.delete")
        .unwrap_or_else(|| panic!("no tenant.delete entry: {audit}"));
    assert_eq!(del["outcome"], "ok", "{del}");
    assert_eq!(del["erased"], true, "{del}");
    assert!(!audit.to_string().contains(&doomed), "{audit}");
    assert!(c.ok(&["audit", "verify"], None).contains("intact"));
    // Its key stops working, and the data plane's cached snapshot forgets it.
    sync_dp(&f);
    f.dp.request(&chat_req(&key, false, 1)).assert_openai_error(401);
    let cache = bytes(&f.spool_dir().join("snapshot.cache"));
    assert!(!contains(&cache, &doomed) && !contains(&cache, &key_id));
}

// ---- 4. the audit trail -------------------------------------------------------

const AUDIT: TableDefinition<[u8; 8], &[u8]> = TableDefinition::new("audit");
const PRIVACY_META: TableDefinition<&str, &[u8]> = TableDefinition::new("privacy_meta");

/// The trail's head record (count, last hash, MAC), read straight from the file.
fn read_head(db: &Path) -> Vec<u8> {
    let db = redb::Database::open(db).unwrap();
    let r = db.begin_read().unwrap();
    let t = r.open_table(PRIVACY_META).unwrap();
    let v = t.get("audit_head").unwrap();
    v.unwrap().value().to_vec()
}

/// Writes the head record (`None` removes it), and drops the whole trail
/// table when `drop_table`.
fn write_head(db: &Path, head: Option<&[u8]>, drop_table: bool) {
    let db = redb::Database::open(db).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let mut t = txn.open_table(PRIVACY_META).unwrap();
        match head {
            Some(h) => t.insert("audit_head", h).unwrap(),
            None => t.remove("audit_head").unwrap(),
        };
    }
    if drop_table {
        txn.delete_table(AUDIT).unwrap();
    }
    txn.commit().unwrap();
}

/// Reads entry `seq` of the trail straight from the file.
fn read_entry(db: &Path, seq: u64) -> Vec<u8> {
    let db = redb::Database::open(db).unwrap();
    let r = db.begin_read().unwrap();
    let t = r.open_table(AUDIT).unwrap();
    let v = t.get(seq.to_be_bytes()).unwrap();
    v.unwrap_or_else(|| panic!("no audit entry {seq}"))
        .value()
        .to_vec()
}

/// Writes entry `seq` (`None` removes it) with a raw redb write.
fn write_entry(db: &Path, seq: u64, value: Option<&[u8]>) {
    let db = redb::Database::open(db).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let mut t = txn.open_table(AUDIT).unwrap();
        match value {
            Some(v) => {
                t.insert(seq.to_be_bytes(), v).unwrap();
            }
            None => {
                t.remove(seq.to_be_bytes()).unwrap();
            }
        }
    }
    txn.commit().unwrap();
}

/// `audit verify` must fail naming entry `seq`, with `problem` in its message.
#[track_caller]
fn verify_names(c: &Control, seq: u64, problem: &str) {
    let out = c.fails(&["audit", "verify"], None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("audit trail broken at entry {seq}:")) && stderr.contains(problem),
        "expected entry {seq} ({problem}): {stderr}"
    );
    let out = c.cli(&["audit", "verify", "--json"], None);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["ok"].as_bool(), v["first_bad"].as_u64()),
        (Some(false), Some(seq)),
        "{v}"
    );
}

#[track_caller]
fn verify_ok(c: &Control) {
    let out = c.ok(&["audit", "verify"], None);
    assert!(out.contains("audit trail intact"), "{out}");
}

#[test]
fn tampering_with_the_audit_trail_in_the_file_is_named_by_verify() {
    let dir = TempDir::new("audit");
    let mut c = Control::start(&dir.join("control"), dir.path(), "info");
    let provider_key = canary("sk-provider-audit-");
    let key = configure(&c, "http://127.0.0.1:9", &provider_key);
    c.ok(&["tenant", "create", "beta"], None);
    c.ok(&["tenant", "update", "beta", "--retention-days", "7"], None);
    let policy = dir.join("policy.toml");
    std::fs::write(&policy, BLOCK_POLICY).unwrap();
    c.ok(
        &[
            "policy",
            "set",
            "--tenant",
            "beta",
            "--file",
            policy.to_str().unwrap(),
        ],
        None,
    );
    // A refusal is an entry too.
    c.fails(&["tenant", "create", "beta"], None);
    let list = c.json(&["audit", "list"]);
    let entries = list.as_array().unwrap();
    assert!(entries.len() >= 8, "{list}");
    let actions: Vec<&str> = entries.iter().map(|e| e["action"].as_str().unwrap()).collect();
    for a in [
        "tenant.create",
        "apikey.create",
        "provider_key.create",
        "route.set",
        "tenant.privacy",
    ] {
        assert!(actions.contains(&a), "{a} not in {actions:?}");
    }
    let last = entries.last().unwrap();
    assert_eq!(last["outcome"], "refused: conflict", "{last}");
    assert_eq!(last["target"], "tenant beta", "{last}");
    // Who (a hash of the admin token), what, when, to what, with what outcome.
    let find = |action: &str| {
        entries
            .iter()
            .find(|e| e["action"] == action)
            .unwrap_or_else(|| panic!("no {action}: {list}"))
    };
    let privacy = find("tenant.privacy");
    assert_eq!(privacy["target"], "tenant beta", "{privacy}");
    assert_eq!(privacy["detail"], "retention_days=7", "{privacy}");
    let policy_set = find("policy.set");
    assert_eq!(policy_set["target"], "policy beta", "{policy_set}");
    assert!(
        !list.to_string().contains("forbidden-topic-zeta"),
        "policy text in the trail"
    );
    // The acting token by name: DATA/admin.token is `root` (named tokens
    // are in control/tests/control/tokens.rs); never the token or its hash.
    let admin = sha256_hex(&c.admin_token());
    for e in entries {
        assert_eq!(e["admin"].as_str(), Some("root"), "{e}");
        assert!(!e.to_string().contains(&admin[..16]), "{e}");
        assert!(e["ts_ms"].as_u64().is_some_and(|t| t > 0), "{e}");
    }
    // Entries hold no secret.
    let text = list.to_string();
    assert!(!text.contains(&provider_key) && !text.contains(&key) && !text.contains(&c.admin_token()));
    verify_ok(&c);

    let db = c.data().join("control.redb");
    c.kill();
    // Altered: entry 3 says it was refused.
    let original = read_entry(&db, 3);
    let mut e: Value = serde_json::from_slice(&original).unwrap();
    assert_eq!(e["seq"], 3);
    e["outcome"] = json!("refused: conflict");
    write_entry(&db, 3, Some(&serde_json::to_vec(&e).unwrap()));
    c.restart();
    verify_names(&c, 3, "altered");
    // Put back, it verifies: the failure was the change.
    c.kill();
    write_entry(&db, 3, Some(&original));
    c.restart();
    verify_ok(&c);

    // Removed: entry 4 is gone.
    c.kill();
    let fourth = read_entry(&db, 4);
    write_entry(&db, 4, None);
    c.restart();
    verify_names(&c, 4, "missing");
    c.kill();
    write_entry(&db, 4, Some(&fourth));

    // Reordered: entries 2 and 3 swapped.
    let second = read_entry(&db, 2);
    write_entry(&db, 2, Some(&original));
    write_entry(&db, 3, Some(&second));
    c.restart();
    verify_names(&c, 2, "holds entry 3");
    c.kill();
    write_entry(&db, 2, Some(&second));
    write_entry(&db, 3, Some(&original));
    c.restart();
    verify_ok(&c);

    // Cut from the end, with the head record put back as it was before:
    // inside the file everything agrees (and the head's MAC is genuine), but
    // the count kept outside it names the missing entries.
    c.kill();
    let old_head = read_head(&db);
    let n = u64::from_be_bytes(old_head[..8].try_into().unwrap());
    c.restart();
    c.ok(&["tenant", "create", "gamma"], None);
    c.ok(&["tenant", "create", "delta"], None);
    c.kill();
    write_entry(&db, n + 2, None);
    write_entry(&db, n + 1, None);
    write_head(&db, Some(&old_head), false);
    c.restart();
    verify_names(&c, n + 1, "are missing");
    // A head for the cut trail written without the key is named too.
    c.kill();
    let mut forged = old_head.clone();
    forged[40..].fill(0);
    write_head(&db, Some(&forged), false);
    c.restart();
    verify_names(&c, n, "not authentic");

    // The whole table and its head dropped.
    c.kill();
    write_head(&db, None, true);
    c.restart();
    verify_names(&c, 1, "are missing");
}

// ---- 5. retention ---------------------------------------------------------------

/// Creates tenant `id` with gateway key `key_id`, a provider key and a route
/// for [`OPENAI_MODEL`] to the mock; returns the gateway key.
fn second_tenant(f: &Fleet, id: &str, name: Option<&str>, key_id: &str) -> String {
    f.add_tenant(id, name, key_id)
}

fn requests_of(usage: &Value) -> u64 {
    usage
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["requests"].as_u64().unwrap())
        .sum()
}

#[test]
fn retention_purges_records_past_the_tenants_period_and_keeps_anonymous_rollups() {
    let mut f = Fleet::start(Driver::Uring);
    let keeper_key = second_tenant(&f, "keeper", None, "kk");
    let out = f
        .control
        .ok(&["tenant", "update", TENANT, "--retention-days", "2"], None);
    assert!(out.contains("records kept 2 days"), "{out}");
    sync_dp(&f);
    for stream in [false, true, false] {
        assert_eq!(f.chat(stream, 3).status(), 200);
    }
    for _ in 0..2 {
        let r = f.dp.request(&chat_req(&keeper_key, false, 2));
        assert_eq!(r.status(), 200, "{}", r.text());
    }
    f.expect_records_exactly(3);
    f.control.wait_logs("keeper", 2);
    let usage_before = f.control.json(&["usage", "--tenant", TENANT]);
    assert_eq!(requests_of(&usage_before), 3, "{usage_before}");
    let db = db_path(&f.control);
    // Only records carry `"key_id":"k1"`: the scan can tell they are there.
    let acme_records = format!("\"key_id\":\"{KEY_ID}\"");
    let keeper_records = "\"key_id\":\"kk\"";
    assert!(contains(&bytes(&db), &acme_records));

    f.dp.kill();
    f.control.kill();
    let (data, sync) = (f.control.data().to_owned(), f.control.sync);
    // One day on, nothing is old enough.
    let mut s = Clocked::start(&data, f.dir(), sync, 1);
    s.ok(&["purge", "--now"]);
    let logs = s.json(&["logs", "--tenant", TENANT]);
    assert_eq!(logs.as_array().map(Vec::len), Some(3), "{logs}");
    s.kill();

    // Three days on: acme's records (2 days) go, keeper's (30 days) stay;
    // the rollups stay. Control's own timer purges when it starts (and
    // hourly after): nobody asks it to here.
    let mut s = Clocked::start(&data, f.dir(), sync, 3);
    let deadline = Instant::now() + WAIT;
    loop {
        let logs = s.json(&["logs", "--tenant", TENANT]);
        if logs.as_array().is_some_and(Vec::is_empty) {
            break;
        }
        assert!(Instant::now() < deadline, "the timer never purged: {logs}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let audit = s.json(&["audit", "list"]);
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "retention.purge"
                && e["admin"] == "system"
                && e["detail"].as_str().is_some_and(|d| d.contains("records=3"))),
        "no system purge of 3 records: {audit}"
    );
    // `purge --now` by an admin, rewriting the file.
    let report = s.json(&["purge", "--now", "--rewrite"]);
    assert_eq!(report["records"], 0, "{report}");
    let logs = s.json(&["logs", "--tenant", "keeper"]);
    assert_eq!(logs.as_array().map(Vec::len), Some(2), "{logs}");
    let usage = s.json(&["usage", "--tenant", TENANT]);
    assert_eq!(usage, usage_before, "the rollups changed");
    // A rollup names no key and no client: day, model and counters only.
    for row in usage.as_array().unwrap() {
        let fields: BTreeSet<&str> = row.as_object().unwrap().keys().map(String::as_str).collect();
        for f in &fields {
            assert!(
                [
                    "day",
                    "model",
                    "requests",
                    "input_tokens",
                    "output_tokens",
                    "cost_micros",
                    "cached_input_tokens",
                    "cache_creation_tokens",
                    "reasoning_tokens",
                    "cache_lookups",
                    "cache_hits",
                    "saved_micros",
                    "body_plain_bytes",
                    "body_sent_bytes",
                    "unpriced_requests"
                ]
                .contains(f),
                "rollup field {f:?}: {row}"
            );
        }
    }
    let after = bytes(&db);
    assert!(
        !contains(&after, &acme_records),
        "purged records are still in the file"
    );
    assert!(
        contains(&after, keeper_records),
        "keeper's records are gone from the file"
    );
    let audit = s.json(&["audit", "list"]);
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "retention.purge" && e["admin"] != "system"),
        "the admin's purge is not in the trail: {audit}"
    );
    s.kill();

    // Past the rollup period (13 months), the rollups go too.
    let s = Clocked::start(&data, f.dir(), sync, 400);
    s.ok(&["purge", "--now"]);
    let usage = s.json(&["usage", "--tenant", TENANT]);
    assert_eq!(usage.as_array().map(Vec::len), Some(0), "{usage}");
    let logs = s.json(&["logs", "--tenant", "keeper"]);
    assert_eq!(logs.as_array().map(Vec::len), Some(0), "{logs}");
}

// ---- 6. export -------------------------------------------------------------------

#[test]
fn export_holds_every_record_of_the_tenant_and_nothing_of_others_or_secret() {
    let f = Fleet::start(Driver::Uring);
    let c = &f.control;
    let other = canary("other-");
    let other_name = canary("Other Corp ");
    let other_key_id = canary("ko-");
    let other_key = second_tenant(&f, &other, Some(&other_name), &other_key_id);
    sync_dp(&f);
    assert_eq!(f.chat(true, 3).status(), 200);
    assert_eq!(f.chat(false, 2).status(), 200);
    let r = f.dp.request(
        &Req::messages(&f.key, &anthropic_body(ANTHROPIC_MODEL, false)).header("x-mock-tokens", "2"),
    );
    assert_eq!(r.status(), 200, "{}", r.text());
    f.dp.request(&Req::chat(&f.key, &openai_body("no-such-model", false)))
        .assert_openai_error(404);
    for _ in 0..2 {
        assert_eq!(f.dp.request(&chat_req(&other_key, false, 2)).status(), 200);
    }
    let logs = f.expect_records_exactly(4);
    c.wait_logs(&other, 2);

    let out_dir = TempDir::new("export");
    let file = out_dir.join("acme.json");
    let out = c.ok(
        &["export", "--tenant", TENANT, "--out", file.to_str().unwrap()],
        None,
    );
    assert!(out.contains("4 record(s)"), "{out}");
    let raw = bytes(&file);
    let doc: Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(doc["format"], "sluice-export/1", "{doc}");
    assert_eq!(doc["tenant"]["id"], TENANT, "{doc}");
    assert_eq!(doc["tenant"]["name"], "Acme", "{doc}");
    assert_eq!(doc["records_total"], 4, "{doc}");
    // Every record the store holds for it, as `logs` shows it, once.
    let stored: BTreeMap<(String, u64), Value> = logs
        .iter()
        .map(|e| {
            (
                (
                    e["dataplane"].as_str().unwrap().to_owned(),
                    e["seq"].as_u64().unwrap(),
                ),
                e["record"].clone(),
            )
        })
        .collect();
    let exported: BTreeMap<(String, u64), Value> = doc["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert!(e["content"].is_null(), "content without opting in: {e}");
            (
                (
                    e["dataplane"].as_str().unwrap().to_owned(),
                    e["seq"].as_u64().unwrap(),
                ),
                e["record"].clone(),
            )
        })
        .collect();
    assert_eq!(doc["records"].as_array().map(Vec::len), Some(4));
    assert_eq!(exported, stored);
    // Its keys, routes and usage, as metadata.
    let ids = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|k| k["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ids(&doc["api_keys"]), [KEY_ID]);
    assert_eq!(ids(&doc["provider_keys"]), ["pk"]);
    for k in doc["api_keys"].as_array().unwrap() {
        for field in k.as_object().unwrap().keys() {
            assert!(
                ["id", "name", "created_ms", "revoked_ms"].contains(&field.as_str()),
                "{k}"
            );
        }
    }
    assert_eq!(doc["routes"].as_array().map(Vec::len), Some(2), "{doc}");
    assert_eq!(doc["usage"], c.json(&["usage", "--tenant", TENANT]));
    assert!(
        doc["after_deletion"].as_str().unwrap().contains("anonymous"),
        "{doc}"
    );
    // No secret, nothing of the other tenant.
    let secret = f.key.rsplit('-').next().unwrap().to_owned();
    for (what, n) in [
        ("the gateway key", f.key.clone()),
        ("the gateway key's secret", secret),
        ("the gateway key's hash", sha256_hex(&f.key)),
        ("the provider key", f.provider_key.clone()),
        ("the data plane token", f.dp_token.clone()),
        ("the admin token", c.admin_token()),
        ("the other tenant's id", other.clone()),
        ("the other tenant's name", other_name.clone()),
        ("the other tenant's key id", other_key_id.clone()),
        ("the other tenant's key", other_key.clone()),
    ] {
        assert!(!contains(&raw, &n), "{what} ({n}) is in the export");
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "export file mode {mode:o}");
    // The export is in the audit trail.
    let audit = c.json(&["audit", "list"]);
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "tenant.export"),
        "{audit}"
    );
}

// ---- 7. data residency -------------------------------------------------------------

#[test]
fn a_request_that_cannot_stay_in_region_is_refused_and_recorded() {
    let f = Fleet::start(Driver::Uring);
    let c = &f.control;
    assert_eq!(f.chat(false, 2).status(), 200);
    c.ok(&["tenant", "update", TENANT, "--region", "eu"], None);
    sync_dp(&f);
    let forwarded = f.mock.requests();

    // No upstream is in "eu": refused in the caller's own format.
    for stream in [false, true] {
        let e = f.chat(stream, 2).assert_openai_error(403);
        assert_eq!(e["code"], "region_unavailable", "{e}");
        assert!(e["message"].as_str().unwrap().contains("eu"), "{e}");
    }
    let e =
        f.dp.request(&Req::messages(&f.key, &anthropic_body(ANTHROPIC_MODEL, false)))
            .assert_anthropic_error(403);
    assert_eq!(e["type"], "permission_error", "{e}");
    assert!(e["message"].as_str().unwrap().contains("region"), "{e}");
    assert_eq!(f.mock.requests(), forwarded, "a request left the region");

    // Each refusal is recorded.
    let logs = f.expect_records_exactly(4);
    let refused: Vec<&Value> = logs
        .iter()
        .map(|e| &e["record"])
        .filter(|r| r["error"] == "out_of_region")
        .collect();
    assert_eq!(refused.len(), 3, "{logs:?}");
    for r in refused {
        assert_eq!(
            (r["status"].as_u64(), r["outcome"].as_str()),
            (Some(403), Some("rejected")),
            "{r}"
        );
        assert!(r["upstream"].is_null(), "{r}");
    }

    // An upstream in the region serves it again; the other route stays refused.
    c.ok(
        &[
            "upstream",
            "add",
            "mock-eu",
            "--kind",
            "openai",
            "--base-url",
            &f.mock.url,
            "--region",
            "eu",
        ],
        None,
    );
    c.ok(
        &[
            "route",
            "set",
            "--tenant",
            TENANT,
            "--model",
            OPENAI_MODEL,
            "--target",
            "upstream=mock-eu,key=pk",
        ],
        None,
    );
    sync_dp(&f);
    assert_eq!(f.chat(false, 2).status(), 200);
    assert_eq!(f.mock.requests(), forwarded + 1);
    f.dp.request(&Req::messages(&f.key, &anthropic_body(ANTHROPIC_MODEL, false)))
        .assert_anthropic_error(403);
    let logs = f.expect_records_exactly(6);
    assert!(
        logs.iter().any(|e| e["record"]["upstream"] == "mock-eu"),
        "{logs:?}"
    );
}

// ---- 8. master key rotation keeps sealed content and the trail readable ----------

#[test]
fn master_key_rotation_keeps_logged_content_and_the_audit_trail_readable() {
    let mut f = Fleet::start(Driver::Uring);
    let prompt = canary("rotate-prompt-");
    f.control
        .ok(&["tenant", "update", TENANT, "--log-content", "on"], None);
    sync_dp(&f);
    let r =
        f.dp.request(&Req::chat(&f.key, &chat_body(OPENAI_MODEL, false, &prompt)));
    assert_eq!(r.status(), 200, "{}", r.text());
    f.expect_records_exactly(1);
    let audit_before = f.control.json(&["audit", "list", "--limit", "10000"]);

    f.control.kill();
    let data = f.control.data().to_owned();
    let out = std::process::Command::new(sluice_tests::control::control_bin())
        .args(["master-key", "rotate", "--data"])
        .arg(&data)
        .env_remove("SLUICE_MASTER_KEY")
        .env_remove("SLUICE_DATA")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    f.control.restart();

    // The content key and the audit key were re-wrapped with the provider keys.
    let out = f.control.ok(&["logs", "--tenant", TENANT, "--content"], None);
    assert!(out.contains(&prompt), "content no longer opens:\n{out}");
    let out = f.control.ok(&["audit", "verify"], None);
    assert!(out.contains("audit trail intact"), "{out}");
    let audit = f.control.json(&["audit", "list", "--limit", "10000"]);
    assert_eq!(
        audit.as_array().unwrap()[..audit_before.as_array().unwrap().len()],
        audit_before.as_array().unwrap()[..]
    );
    // New content is still logged and opens.
    let later = canary("rotate-later-");
    sync_dp(&f);
    let r =
        f.dp.request(&Req::chat(&f.key, &chat_body(OPENAI_MODEL, false, &later)));
    assert_eq!(r.status(), 200, "{}", r.text());
    f.expect_records_exactly(2);
    let out = f.control.ok(&["logs", "--tenant", TENANT, "--content"], None);
    assert!(out.contains(&later), "new content does not open:\n{out}");
    assert!(!contains(&bytes(&db_path(&f.control)), &later));
}
