//! The record spool (`spool.jsonl`), the durable sequence counter (`seq`), and
//! the batch both are made of.
//!
//! Spool invariants:
//! - The file is append-only between truncations; each append is one batch of
//!   whole lines, `{"seq":N,"record":{...}}\n`, in increasing `seq`, followed by
//!   `fdatasync` before the batch counts as safe.
//! - Bytes after the last `\n` are a torn write (a crash mid-append, or a failed
//!   write): they are cut off at open and after a failed append, never replayed,
//!   and never glued to the next line.
//! - Lines are replayed from `replay_off` in file order; the file is truncated
//!   to zero only once every line in it was acked. A crash anywhere replays the
//!   whole file again, which the control plane's `(dataplane, seq)` key makes
//!   harmless.
//!
//! Sequence invariant: a seq is used only after the `seq` file durably says a
//! higher number, so no seq is reused after any crash. The file holds the first
//! seq not yet reserved, as decimal text; it is replaced atomically (tmp file,
//! fsync, rename, fsync of the directory) one block of [`SEQ_BLOCK`] at a time.

use serde::{Deserialize, Serialize};
use sluice_contract::record::Record;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The spool file's name in the spool directory.
pub(crate) const SPOOL_FILE: &str = "spool.jsonl";
/// The sequence counter's file name in the spool directory.
pub(crate) const SEQ_FILE: &str = "seq";
/// Seqs reserved per durable write of the counter.
pub(crate) const SEQ_BLOCK: u64 = 10_000;
/// Bytes read from the spool per `pread`, at first.
const READ_WINDOW: usize = 1024 * 1024;

/// One spool line or batch element, as written.
#[derive(Serialize)]
struct LineOut<'a> {
    seq: u64,
    record: &'a Record,
}

/// One spool line, as read back: the record is parsed only to refuse a
/// corrupted line, which would otherwise make the control plane refuse its
/// whole batch forever.
#[derive(Deserialize)]
struct LineIn {
    seq: u64,
    #[allow(dead_code)]
    record: Record,
}

/// Records with their seqs, as JSON lines, in increasing seq order.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    /// Lines, each ending in `\n`.
    lines: Vec<u8>,
    count: usize,
    last_seq: u64,
}

impl Batch {
    /// Appends `record` with `seq`.
    pub(crate) fn push(&mut self, seq: u64, record: &Record) -> Result<(), serde_json::Error> {
        let start = self.lines.len();
        if let Err(e) = serde_json::to_writer(&mut self.lines, &LineOut { seq, record }) {
            self.lines.truncate(start);
            return Err(e);
        }
        self.lines.push(b'\n');
        self.count += 1;
        self.last_seq = seq;
        Ok(())
    }

    /// Appends a line read back from the spool (without its `\n`).
    fn push_line(&mut self, seq: u64, line: &[u8]) {
        self.lines.extend_from_slice(line);
        self.lines.push(b'\n');
        self.count += 1;
        self.last_seq = seq;
    }

    /// Records in the batch.
    pub(crate) fn len(&self) -> usize {
        self.count
    }

    /// Whether the batch holds no record.
    pub(crate) fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The highest seq in the batch (the last one).
    pub(crate) fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// The raw lines (each ending in `\n`).
    pub(crate) fn lines(&self) -> &[u8] {
        &self.lines
    }

    /// The `POST /v1/records` body: `{"batch":[line,line,...]}`.
    pub(crate) fn body(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.lines.len() + 16);
        out.extend_from_slice(b"{\"batch\":[");
        for (i, line) in self
            .lines
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .enumerate()
        {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(line);
        }
        out.extend_from_slice(b"]}");
        out
    }
}

/// A batch read back from the spool, and where it ends in the file.
pub(crate) struct Replay {
    /// The valid records, in file order.
    pub(crate) batch: Batch,
    /// The file offset just past the last line read.
    pub(crate) end: u64,
    /// Lines that did not parse and were skipped.
    pub(crate) skipped: u64,
}

/// The append-only spool file.
pub(crate) struct Spool {
    path: PathBuf,
    file: File,
    /// Bytes of whole lines in the file; anything beyond is a torn write.
    len: u64,
    /// The first byte not yet acked.
    replay_off: u64,
    /// Valid records in `replay_off..len`.
    pending: u64,
    /// A failed append may have left bytes beyond `len`: cut them first.
    dirty: bool,
}

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spool")
            .field("path", &self.path)
            .field("pending", &self.pending)
            .finish()
    }
}

impl Spool {
    /// Opens (or creates) the spool in `dir`, cuts off a torn last line, and
    /// counts what is pending. Also returns the highest valid seq in it (0 if none).
    pub(crate) fn open(dir: &Path) -> io::Result<(Spool, u64)> {
        let path = dir.join(SPOOL_FILE);
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&path)?;
        // Makes the file's directory entry durable, so an fsynced append is
        // never lost with the name that leads to it.
        sync_dir(dir)?;
        let size = file.metadata()?.len();
        let mut pending = 0u64;
        let mut skipped = 0u64;
        let mut max_seq = 0u64;
        let end = scan(&file, 0, size, usize::MAX, |line| {
            match serde_json::from_slice::<LineIn>(line) {
                Ok(l) => {
                    pending += 1;
                    max_seq = max_seq.max(l.seq);
                }
                Err(_) => skipped += 1,
            }
        })?;
        if end < size {
            tracing::warn!(path = %path.display(), bytes = size - end, "spool: cutting off a torn last line");
            file.set_len(end)?;
            file.sync_data()?;
        }
        if skipped > 0 {
            tracing::warn!(path = %path.display(), lines = skipped, "spool: unreadable lines will be skipped");
        }
        let spool = Spool {
            path,
            file,
            len: end,
            replay_off: 0,
            pending,
            dirty: false,
        };
        Ok((spool, max_seq))
    }

    /// Records spooled and not yet acked.
    pub(crate) fn pending(&self) -> u64 {
        self.pending
    }

    /// Whether every line in the file was acked (new records may bypass it).
    pub(crate) fn is_drained(&self) -> bool {
        self.replay_off >= self.len
    }

    /// Appends `batch` and fsyncs. On error nothing of it counts as written.
    pub(crate) fn append(&mut self, batch: &Batch) -> io::Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        if self.dirty {
            self.file.set_len(self.len)?;
            self.dirty = false;
        }
        let result = self
            .file
            .write_all(batch.lines())
            .and_then(|()| self.file.sync_data());
        if let Err(e) = result {
            // Some bytes may have landed: cut them now, or before the next append.
            self.dirty = self.file.set_len(self.len).is_err();
            return Err(e);
        }
        self.len += batch.lines().len() as u64;
        self.pending += batch.len() as u64;
        Ok(())
    }

    /// Marks everything in the file as acked and empties it (the write-ahead
    /// path: the file held only the batch control just acked). The truncation
    /// is not fsynced: if a crash undoes it, the acked lines are replayed,
    /// and control skips them by `(dataplane, seq)`.
    pub(crate) fn ack_all(&mut self) {
        self.replay_off = self.len;
        self.pending = 0;
        if self.len == 0 {
            return;
        }
        match self.file.set_len(0) {
            Ok(()) => {
                self.len = 0;
                self.replay_off = 0;
                self.dirty = false;
            }
            Err(e) => tracing::warn!(path = %self.path.display(), error = %e, "spool: truncation failed"),
        }
    }

    /// Reads up to `max` records from the first unacked line.
    pub(crate) fn read(&self, max: usize) -> io::Result<Replay> {
        let mut batch = Batch::default();
        let mut skipped = 0u64;
        let end = scan(
            &self.file,
            self.replay_off,
            self.len,
            max,
            |line| match serde_json::from_slice::<LineIn>(line) {
                Ok(l) => batch.push_line(l.seq, line),
                Err(_) => skipped += 1,
            },
        )?;
        Ok(Replay { batch, end, skipped })
    }

    /// Marks everything up to `replay.end` as acked; once the whole file is, it
    /// is truncated (a failed truncation is retried the next time).
    pub(crate) fn ack(&mut self, replay: &Replay) {
        self.replay_off = replay.end.max(self.replay_off);
        self.pending = self.pending.saturating_sub(replay.batch.len() as u64);
        if self.is_drained() {
            self.pending = 0;
            if self.len > 0 {
                match self.file.set_len(0).and_then(|()| self.file.sync_data()) {
                    Ok(()) => {
                        self.len = 0;
                        self.replay_off = 0;
                        self.dirty = false;
                    }
                    Err(e) => {
                        tracing::warn!(path = %self.path.display(), error = %e, "spool: truncation failed")
                    }
                }
            }
        }
    }
}

/// Calls `f` on each whole line (without `\n`) of `file[from..limit]`, at most
/// `max` lines; returns the offset just past the last line passed to `f`.
fn scan(file: &File, from: u64, limit: u64, max: usize, mut f: impl FnMut(&[u8])) -> io::Result<u64> {
    let mut buf = vec![0u8; READ_WINDOW];
    let mut off = from;
    let mut lines = 0usize;
    while off < limit && lines < max {
        let want = buf.len().min((limit - off) as usize);
        let got = read_full_at(file, &mut buf[..want], off)?;
        let window = &buf[..got];
        let mut consumed = 0usize;
        while lines < max {
            let Some(i) = memchr::memchr(b'\n', &window[consumed..]) else {
                break;
            };
            f(&window[consumed..consumed + i]);
            consumed += i + 1;
            lines += 1;
        }
        off += consumed as u64;
        if consumed == 0 {
            if got < buf.len() {
                // No newline before the end: a torn last line.
                break;
            }
            // One line longer than the window: widen it.
            let wider = buf.len() * 2;
            buf.resize(wider, 0);
        }
    }
    Ok(off)
}

/// `pread` until `buf` is full or the file ends; returns the bytes read.
fn read_full_at(file: &File, buf: &mut [u8], off: u64) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], off + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// The durable sequence counter.
#[derive(Debug)]
pub(crate) struct Seqs {
    dir: PathBuf,
    next: u64,
    /// Seqs below this are durably reserved.
    limit: u64,
}

impl Seqs {
    /// Reads the counter in `dir`; the next seq is at least `at_least` (one past
    /// the highest seq found in the spool) and at least 1.
    pub(crate) fn open(dir: &Path, at_least: u64) -> io::Result<Seqs> {
        let stored = match std::fs::read_to_string(dir.join(SEQ_FILE)) {
            Ok(s) => s.trim().parse::<u64>().map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{} is not a number; refusing to guess the next record seq \
                         (write a value above every seq this data plane ever used)",
                        dir.join(SEQ_FILE).display()
                    ),
                )
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => 1,
            Err(e) => return Err(e),
        };
        let next = stored.max(at_least).max(1);
        Ok(Seqs {
            dir: dir.to_path_buf(),
            next,
            limit: next,
        })
    }

    /// Takes `n` consecutive seqs and returns the first, reserving a new block
    /// durably first when needed.
    pub(crate) fn take(&mut self, n: u64) -> io::Result<u64> {
        let end = self
            .next
            .checked_add(n)
            .ok_or_else(|| io::Error::other("record seq overflow"))?;
        if end > self.limit {
            let limit = end.saturating_add(SEQ_BLOCK);
            write_atomic(&self.dir, SEQ_FILE, format!("{limit}\n").as_bytes())?;
            self.limit = limit;
        }
        let first = self.next;
        self.next = end;
        Ok(first)
    }

    /// The seq the next record will get.
    pub(crate) fn peek(&self) -> u64 {
        self.next
    }
}

/// Replaces `dir/name` with `bytes` atomically and durably: a tmp file, fsync,
/// rename, fsync of the directory. Mode 0600.
pub(crate) fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, dir.join(name))?;
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}
