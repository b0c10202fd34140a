//! The master key (KEK) and envelope encryption of provider keys.
//!
//! Each provider secret gets a fresh data key (DEK). The secret is sealed under
//! the DEK with `tenant/id` as associated data; the DEK is sealed under the KEK
//! with `dek:tenant/id`. Rotating the KEK re-wraps DEKs and touches no secret.
//! The KEK lives only in this process's memory and in its source (a 0600
//! file or the environment).

use crate::secret_file;
use sluice_contract::crypto::{hex, random_bytes, unhex, CryptoError, SealKey};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// Environment variable that may hold the KEK as 64 hex digits.
pub(crate) const MASTER_KEY_ENV: &str = "SLUICE_MASTER_KEY";
/// The KEK's file in the data directory when no other source is given.
pub(crate) const MASTER_KEY_FILE: &str = "master.key";
/// What the store keeps sealed under the KEK to recognise it.
const CHECK_PLAINTEXT: &[u8] = b"sluice-kek-check-v1";

/// Where the KEK came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum KekSource {
    /// A file (given, or the data directory's `master.key`).
    File(PathBuf),
    /// The `SLUICE_MASTER_KEY` environment variable.
    Env,
    /// The standard output of a command (`--master-key-cmd`: a secret
    /// manager or KMS client).
    Command(String),
}

impl std::fmt::Display for KekSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KekSource::File(p) => write!(f, "{}", p.display()),
            KekSource::Env => f.write_str(MASTER_KEY_ENV),
            KekSource::Command(c) => write!(f, "the output of `{c}`"),
        }
    }
}

/// A provider secret at rest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Envelope {
    /// The DEK sealed under the KEK.
    pub(crate) wrapped_dek: Vec<u8>,
    /// The secret sealed under the DEK.
    pub(crate) sealed: Vec<u8>,
}

/// The master key.
pub(crate) struct Vault {
    kek: SealKey,
}

impl Vault {
    /// A vault over 32 raw key bytes.
    pub(crate) fn from_raw(raw: &[u8]) -> Result<Vault, CryptoError> {
        Ok(Vault {
            kek: SealKey::from_bytes(raw)?,
        })
    }

    /// A fresh random KEK and its hex form (to be written somewhere safe).
    pub(crate) fn generate() -> Result<(Vault, Zeroizing<String>), CryptoError> {
        let raw = random_bytes::<32>()?;
        Ok((Vault::from_raw(&raw[..])?, Zeroizing::new(hex(&raw[..]))))
    }

    /// Parses a KEK given as 64 hex digits.
    pub(crate) fn from_hex(text: &str) -> Result<Vault, String> {
        let raw =
            Zeroizing::new(unhex::<32>(text.trim()).ok_or("master key must be 64 hex digits (32 bytes)")?);
        Vault::from_raw(&raw[..]).map_err(|e| e.to_string())
    }

    /// Resolves the KEK: `file` if given, else [`MASTER_KEY_ENV`], else
    /// `data/master.key`, generated (mode 0600) when it does not exist yet.
    pub(crate) fn load(
        data: &Path,
        file: Option<&Path>,
        env: Option<Zeroizing<String>>,
    ) -> Result<(Vault, KekSource), String> {
        if let Some(path) = file {
            return Ok((Vault::from_file(path)?, KekSource::File(path.to_owned())));
        }
        if let Some(text) = env {
            let v = Vault::from_hex(&text).map_err(|e| format!("{MASTER_KEY_ENV}: {e}"))?;
            return Ok((v, KekSource::Env));
        }
        let path = data.join(MASTER_KEY_FILE);
        if path.exists() {
            return Ok((Vault::from_file(&path)?, KekSource::File(path)));
        }
        let (vault, text) = Vault::generate().map_err(|e| e.to_string())?;
        secret_file::write_new(&path, format!("{}\n", text.as_str()).as_bytes())
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
        secret_file::sync_dir(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        tracing::info!(path = %path.display(), "generated master key");
        Ok((vault, KekSource::File(path)))
    }

    /// Runs `cmd` with `sh -c` (no input; its stderr passes through) and
    /// reads the KEK, 64 hex digits, from its standard output. What the
    /// command printed is never shown in an error.
    pub(crate) fn from_command(cmd: &str) -> Result<Vault, String> {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .output()
            .map_err(|e| format!("--master-key-cmd: could not run `{cmd}`: {e}"))?;
        let text = Zeroizing::new(String::from_utf8(out.stdout).unwrap_or_default());
        if !out.status.success() {
            return Err(format!("--master-key-cmd: `{cmd}` failed ({})", out.status));
        }
        Vault::from_hex(&text).map_err(|e| format!("--master-key-cmd: `{cmd}` printed no key: {e}"))
    }

    /// Whether the KEK from `source` lies in the data directory `data`,
    /// beside the store it protects (one copy of the directory, a backup
    /// say, then holds both).
    pub(crate) fn lies_in(source: &KekSource, data: &Path) -> bool {
        let KekSource::File(path) = source else {
            return false;
        };
        let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        let parent = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        canon(parent) == canon(data)
    }

    /// Reads a KEK file (64 hex digits, mode 0600).
    pub(crate) fn from_file(path: &Path) -> Result<Vault, String> {
        let text = secret_file::read(path)?;
        Vault::from_hex(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Seals `secret` for the provider key whose associated data is `aad`.
    pub(crate) fn seal_secret(&self, aad: &str, secret: &[u8]) -> Result<Envelope, CryptoError> {
        let (dek, raw) = SealKey::generate()?;
        let sealed = dek.seal(secret, aad.as_bytes())?;
        let wrapped_dek = self.kek.seal(&raw[..], dek_aad(aad).as_bytes())?;
        Ok(Envelope { wrapped_dek, sealed })
    }

    /// Opens a secret sealed by [`Vault::seal_secret`] with the same `aad`.
    pub(crate) fn open_secret(&self, aad: &str, env: &Envelope) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let raw = self.kek.open(&env.wrapped_dek, dek_aad(aad).as_bytes())?;
        SealKey::from_bytes(&raw)?.open(&env.sealed, aad.as_bytes())
    }

    /// Re-wraps a DEK sealed under this KEK so that `to` opens it.
    pub(crate) fn rewrap(&self, to: &Vault, aad: &str, wrapped_dek: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let raw = self.kek.open(wrapped_dek, dek_aad(aad).as_bytes())?;
        to.kek.seal(&raw, dek_aad(aad).as_bytes())
    }

    /// A value the store keeps to recognise this KEK later.
    pub(crate) fn check_value(&self) -> Result<Vec<u8>, CryptoError> {
        self.kek.seal(CHECK_PLAINTEXT, CHECK_PLAINTEXT)
    }

    /// Whether `check` was made by [`Vault::check_value`] of this KEK.
    pub(crate) fn verifies(&self, check: &[u8]) -> bool {
        self.kek
            .open(check, CHECK_PLAINTEXT)
            .is_ok_and(|v| &v[..] == CHECK_PLAINTEXT)
    }
}

fn dek_aad(aad: &str) -> String {
    format!("dek:{aad}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_round_trip_binding_and_rewrap() {
        let (a, _) = Vault::generate().unwrap();
        let (b, _) = Vault::generate().unwrap();
        let env = a.seal_secret("acme/k1", b"sk-live-123").unwrap();
        assert_eq!(&a.open_secret("acme/k1", &env).unwrap()[..], b"sk-live-123");
        assert!(a.open_secret("acme/k2", &env).is_err());
        assert!(b.open_secret("acme/k1", &env).is_err());
        let moved = Envelope {
            wrapped_dek: b.clone_wrap(&a, &env),
            sealed: env.sealed.clone(),
        };
        assert_eq!(&b.open_secret("acme/k1", &moved).unwrap()[..], b"sk-live-123");
        assert!(a.verifies(&a.check_value().unwrap()));
        assert!(!b.verifies(&a.check_value().unwrap()));
        assert!(!env.sealed.windows(7).any(|w| w == b"sk-live"));
    }

    impl Vault {
        fn clone_wrap(&self, from: &Vault, env: &Envelope) -> Vec<u8> {
            from.rewrap(self, "acme/k1", &env.wrapped_dek).unwrap()
        }
    }

    #[test]
    fn load_generates_once_then_reads_and_parses_env() {
        let dir = std::env::temp_dir().join(format!("sluice-vault-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (v1, s1) = Vault::load(&dir, None, None).unwrap();
        let (v2, s2) = Vault::load(&dir, None, None).unwrap();
        assert_eq!(s1, s2);
        assert!(v2.verifies(&v1.check_value().unwrap()));
        let (_, s3) = Vault::load(&dir, None, Some(Zeroizing::new("00".repeat(32)))).unwrap();
        assert_eq!(s3, KekSource::Env);
        assert!(Vault::load(&dir, None, Some(Zeroizing::new("xyz".into()))).is_err());
        assert!(Vault::load(&dir, Some(&dir.join("missing")), None).is_err());
        // The generated key lies in the data directory: `serve` warns.
        assert!(Vault::lies_in(&s1, &dir));
        assert!(Vault::lies_in(
            &KekSource::File(dir.join("./master.key")),
            &dir.join(".")
        ));
        assert!(!Vault::lies_in(
            &KekSource::File(std::env::temp_dir().join("elsewhere.key")),
            &dir
        ));
        assert!(!Vault::lies_in(&KekSource::Env, &dir));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_command_can_supply_the_key() {
        let hex_key = "ab".repeat(32);
        let v = Vault::from_command(&format!("printf '%s\\n' {hex_key}")).unwrap();
        assert!(v.verifies(&Vault::from_hex(&hex_key).unwrap().check_value().unwrap()));
        // What the command printed (here made at run time, so the command's
        // own text does not contain it) is never echoed in an error.
        let failed = Vault::from_command("echo sec$((6*7)); exit 3").err().unwrap();
        assert!(failed.contains("failed") && !failed.contains("sec42"), "{failed}");
        let garbage = Vault::from_command("echo not$((6*7))").err().unwrap();
        assert!(
            garbage.contains("printed no key") && !garbage.contains("not42"),
            "{garbage}"
        );
    }
}
