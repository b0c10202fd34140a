//! The Grafana dashboard (deploy/grafana/sluice.json) is valid JSON and
//! every metric its queries name is one Sluice exports (its name appears in
//! the data plane's or control's source), so a renamed metric cannot leave
//! a dashboard panel silently empty.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::Path;

fn sources(dir: &Path, out: &mut String) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push_str(&std::fs::read_to_string(&p).unwrap());
        }
    }
}

#[test]
fn every_dashboard_metric_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let text = std::fs::read_to_string(root.join("deploy/grafana/sluice.json")).unwrap();
    let dash: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut exprs = Vec::new();
    for p in dash["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().into_iter().flatten() {
            exprs.push(t["expr"].as_str().unwrap().to_owned());
        }
    }
    assert!(exprs.len() > 20, "{} queries", exprs.len());
    let mut names = BTreeSet::new();
    for e in &exprs {
        let b = e.as_bytes();
        let mut i = 0;
        while let Some(at) = e[i..].find("sluice_") {
            let start = i + at;
            let mut end = start;
            while end < b.len() && (b[end].is_ascii_lowercase() || b[end] == b'_') {
                end += 1;
            }
            names.insert(e[start..end].to_owned());
            i = end;
        }
    }
    let mut src = String::new();
    sources(&root.join("dataplane/src"), &mut src);
    sources(&root.join("control/src"), &mut src);
    for n in &names {
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| n.strip_suffix(s))
            .unwrap_or(n);
        assert!(
            src.contains(&format!("\"{base}")) || src.contains(&format!(" {base}")),
            "the dashboard queries {n}, which nothing exports"
        );
    }
}
