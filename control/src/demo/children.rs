//! The demo's child processes: started in their own process groups (so a
//! Ctrl-C reaches only the demo, which then stops them in order), logs in
//! files, stopped with SIGTERM and, if they linger, SIGKILL.

use anyhow::{bail, Context};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

/// Running children, in start order.
pub(super) struct Children {
    list: Vec<(String, Child)>,
    logs: PathBuf,
}

impl Children {
    /// No children yet; logs go to `logs/NAME.log`.
    pub(super) fn new(logs: PathBuf) -> Children {
        Children {
            list: Vec::new(),
            logs,
        }
    }

    /// Starts `cmd` as `name`, stderr to its log file; stdout is returned
    /// as a pipe when `capture` is set, else it goes to the log too.
    pub(super) fn spawn(
        &mut self,
        name: &str,
        mut cmd: Command,
        capture: bool,
    ) -> anyhow::Result<Option<ChildStdout>> {
        let log_path = self.logs.join(format!("{name}.log"));
        let log =
            std::fs::File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
        let stdout = if capture {
            Stdio::piped()
        } else {
            Stdio::from(log.try_clone()?)
        };
        cmd.stdin(Stdio::null())
            .stdout(stdout)
            .stderr(log)
            .process_group(0);
        let mut child = cmd.spawn().with_context(|| format!("starting {name}"))?;
        let out = child.stdout.take();
        self.list.push((name.to_owned(), child));
        Ok(out)
    }

    /// Fails if a child has exited.
    pub(super) fn check(&mut self) -> anyhow::Result<()> {
        for (name, child) in &mut self.list {
            if let Some(status) = child.try_wait()? {
                bail!(
                    "{name} exited ({status}); see {}",
                    self.logs.join(format!("{name}.log")).display()
                );
            }
        }
        Ok(())
    }

    /// Returns on SIGINT or SIGTERM, or with an error when a child exits.
    pub(super) fn wait_for_signal(&mut self) -> anyhow::Result<()> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let mut signals =
            signal_hook::iterator::Signals::new([SIGINT, SIGTERM]).context("installing signal handlers")?;
        loop {
            if signals.pending().next().is_some() {
                println!("\nstopping...");
                return Ok(());
            }
            self.check()?;
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Stops every child, the last started first.
    pub(super) fn stop_all(&mut self) {
        while let Some((name, mut child)) = self.list.pop() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                match child.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
                    _ => {
                        eprintln!("{name} still running 5 s after SIGTERM; killing it");
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                }
            }
        }
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        self.stop_all();
    }
}
