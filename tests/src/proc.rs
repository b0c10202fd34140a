//! A child process under test: stdout read line by line on a thread (so the
//! child never blocks on a full pipe), stderr sent to a file, and killed
//! when the handle drops.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// A running child process.
#[derive(Debug)]
pub struct Proc {
    name: String,
    child: Child,
    lines: Receiver<String>,
    stderr_path: PathBuf,
}

impl Proc {
    /// Starts `cmd`, with stdin closed, stdout captured line by line, and
    /// stderr written to `stderr_path`.
    pub fn spawn(name: &str, mut cmd: Command, stderr_path: PathBuf) -> Proc {
        let stderr = std::fs::File::create(&stderr_path)
            .unwrap_or_else(|e| panic!("creating {}: {e}", stderr_path.display()));
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr));
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name} ({cmd:?}): {e}"));
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, lines) = mpsc::channel();
        std::thread::Builder::new()
            .name(format!("{name}-stdout"))
            .spawn(move || {
                // Keep draining after the receiver is gone, so the child
                // never blocks writing to stdout.
                for line in BufReader::new(stdout).lines() {
                    match line {
                        Ok(line) => {
                            let _ = tx.send(line);
                        }
                        Err(_) => break,
                    }
                }
            })
            .expect("spawning a stdout reader");
        Proc {
            name: name.to_owned(),
            child,
            lines,
            stderr_path,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for a stdout line that starts with `prefix` and returns the rest
    /// of it. Panics (showing stderr) if the process exits or `timeout` passes.
    pub fn wait_line(&mut self, prefix: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix(prefix) {
                        return rest.trim().to_owned();
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "{}: no stdout line {prefix:?} within {timeout:?}; stderr:\n{}",
                        self.name,
                        self.stderr_text()
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.wait_exit(Duration::from_secs(5));
                    panic!(
                        "{}: stdout closed before a line {prefix:?} (exit: {status:?}); stderr:\n{}",
                        self.name,
                        self.stderr_text()
                    )
                }
            }
        }
    }

    /// Sends signal `sig` (a name such as `HUP` or `TERM`).
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap_or_else(|e| panic!("running kill: {e}"));
        assert!(status.success(), "kill -{sig} {} failed: {status}", self.pid());
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

    /// Panics (showing stderr) unless the process is still running.
    pub fn assert_alive(&mut self) {
        if let Some(status) = self.try_status() {
            panic!("{} exited ({status}); stderr:\n{}", self.name, self.stderr_text());
        }
    }

    /// Everything the process wrote to stderr so far.
    pub fn stderr(&self) -> Vec<u8> {
        std::fs::read(&self.stderr_path).unwrap_or_default()
    }

    /// [`Proc::stderr`] as text (lossy), for failure messages.
    pub fn stderr_text(&self) -> String {
        let bytes = self.stderr();
        // The tail is what explains a failure; keep messages readable.
        let from = bytes.len().saturating_sub(16 * 1024);
        String::from_utf8_lossy(&bytes[from..]).into_owned()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
