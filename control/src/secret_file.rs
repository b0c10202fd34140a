//! Files that hold secrets: written atomically with mode 0600, refused when
//! others can read them.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// Writes `contents` to `path` atomically: a 0600 temporary file beside it,
/// flushed to disk, renamed over `path`, and the directory flushed too.
pub(crate) fn write_atomic(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let tmp = sibling(path, ".tmp");
    let _ = fs::remove_file(&tmp);
    write_new(&tmp, contents)?;
    fs::rename(&tmp, path)?;
    sync_dir(path)
}

/// Writes `contents` to a new file `path` (mode 0600), flushed to disk; fails
/// if the file exists.
pub(crate) fn write_new(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(contents)?;
    f.sync_all()
}

/// Flushes the directory holding `path`, so a rename in it survives a crash.
pub(crate) fn sync_dir(path: &Path) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::File::open(dir)?.sync_all()
}

/// `path` with `suffix` appended to its file name.
pub(crate) fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(suffix);
    path.with_file_name(name)
}

/// Reads a secret file, trimmed. Refuses a file that group or others may read:
/// a secret that leaked through permissions is not one.
pub(crate) fn read(path: &Path) -> Result<Zeroizing<String>, String> {
    let meta = fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mode = meta.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(format!(
            "{}: mode {:o} lets other users read a secret; run `chmod 600 {}`",
            path.display(),
            mode & 0o777,
            path.display()
        ));
    }
    let text = Zeroizing::new(fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?);
    Ok(Zeroizing::new(text.trim().to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_is_private_and_read_refuses_open_modes() {
        let dir = std::env::temp_dir().join(format!("sluice-secret-file-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join("k");
        write_atomic(&p, b"abc\n").unwrap();
        assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(read(&p).unwrap().as_str(), "abc");
        write_atomic(&p, b"def").unwrap();
        assert_eq!(read(&p).unwrap().as_str(), "def");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(read(&p).unwrap_err().contains("chmod 600"));
        assert!(write_new(&p, b"x").is_err());
        fs::remove_dir_all(&dir).unwrap();
    }
}
