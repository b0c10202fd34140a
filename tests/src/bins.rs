//! Where the binaries under test are.

use std::path::PathBuf;

/// Path of binary `name` in the cargo target directory this test was built
/// in: the test executable is `target/<profile>/deps/<test>-<hash>`, the
/// binaries are in `target/<profile>/`. `SLUICE_BIN_DIR` overrides.
pub fn bin(name: &str) -> PathBuf {
    let dir = match std::env::var_os("SLUICE_BIN_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let exe = std::env::current_exe().expect("current_exe");
            let deps = exe.parent().expect("the test binary has a parent directory");
            deps.parent().expect("deps has a parent directory").to_path_buf()
        }
    };
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} not found: run `cargo build --workspace --bins` before the end-to-end tests",
        path.display()
    );
    path
}

/// `sluice-dataplane`.
pub fn dataplane() -> PathBuf {
    bin("sluice-dataplane")
}

/// `sluice-loadtest` (whose `mock` subcommand is the mock provider).
pub fn loadtest() -> PathBuf {
    bin("sluice-loadtest")
}
