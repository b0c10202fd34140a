//! CPU time and memory of processes, read from `/proc` (Linux only).

use std::sync::OnceLock;

/// Clock ticks per second for `/proc/*/stat` times (`getconf CLK_TCK`,
/// 100 on every mainstream Linux build).
fn ticks_per_s() -> f64 {
    static TCK: OnceLock<f64> = OnceLock::new();
    *TCK.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|&t| t > 0.0)
            .unwrap_or(100.0)
    })
}

/// The fields after the `(comm)` of `/proc/PID/stat` (field 3 first).
fn stat_fields(pid: Option<u32>) -> Option<Vec<String>> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/stat"),
        None => "/proc/self/stat".into(),
    };
    let text = std::fs::read_to_string(path).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// User + system CPU seconds used so far by a process (`None`: this one).
pub(crate) fn cpu_seconds(pid: Option<u32>) -> Option<f64> {
    let f = stat_fields(pid)?;
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / ticks_per_s())
}

/// CPU seconds of a process and all its descendants (nginx's workers).
pub(crate) fn tree_cpu_seconds(pid: u32) -> Option<f64> {
    let mut total = cpu_seconds(Some(pid))?;
    for child in descendants(pid) {
        total += cpu_seconds(Some(child)).unwrap_or(0.0);
    }
    Some(total)
}

/// Resident set size, KiB (`VmRSS` of `/proc/PID/status`).
pub(crate) fn rss_kib(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// RSS of a process and all its descendants, KiB.
pub(crate) fn tree_rss_kib(pid: u32) -> Option<u64> {
    let mut total = rss_kib(pid)?;
    for child in descendants(pid) {
        total += rss_kib(child).unwrap_or(0);
    }
    Some(total)
}

/// All processes below `pid`, found by scanning `/proc` for parent links.
pub(crate) fn descendants(pid: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(p) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            if let Some(ppid) = stat_fields(Some(p)).and_then(|f| f.get(1)?.parse::<u32>().ok()) {
                parents.push((p, ppid));
            }
        }
    }
    let mut out = Vec::new();
    let mut frontier = vec![pid];
    while let Some(parent) = frontier.pop() {
        for &(child, _) in parents.iter().filter(|(_, pp)| *pp == parent) {
            out.push(child);
            frontier.push(child);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let me = std::process::id();
        assert!(cpu_seconds(None).is_some());
        assert!(cpu_seconds(Some(me)).is_some());
        assert!(rss_kib(me).unwrap() > 0);
        let mut child = std::process::Command::new("sleep").arg("5").spawn().unwrap();
        assert!(descendants(me).contains(&child.id()));
        assert!(tree_rss_kib(me).unwrap() > rss_kib(me).unwrap());
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
