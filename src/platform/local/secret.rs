//! The gateway's JWT secret for one run: `--jwt-secret` (or its variable)
//! when given, else a fresh random one kept in the run dir's `jwt-secret`
//! (mode 0600), so tools that need it (tests signing a token of their own)
//! find it and nobody else on the machine reads it.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// File name of the run's JWT secret.
pub const SECRET_FILE: &str = "jwt-secret";

/// Where run dir `run_dir` keeps its secret.
pub fn secret_path(run_dir: &Path) -> PathBuf {
    run_dir.join(SECRET_FILE)
}

/// `given`, or a new random secret written to the run dir (replacing an
/// earlier run's: every run signs with its own).
pub fn run_secret(run_dir: &Path, given: Option<&str>) -> anyhow::Result<String> {
    let path = secret_path(run_dir);
    if let Some(secret) = given {
        // A stale file would name a secret nobody signs with any more.
        let _ = std::fs::remove_file(&path);
        return Ok(secret.to_string());
    }
    let secret = crate::systems::serve::random_secret();
    let _ = std::fs::remove_file(&path);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(secret.as_bytes()).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn a_run_gets_its_own_private_secret() {
        let dir = tempfile::tempdir().unwrap();
        let first = run_secret(dir.path(), None).unwrap();
        let mode = std::fs::metadata(secret_path(dir.path())).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(std::fs::read_to_string(secret_path(dir.path())).unwrap(), first);
        let second = run_secret(dir.path(), None).unwrap();
        assert_ne!(first, second);
        assert!(first.len() >= 64);
        assert_eq!(run_secret(dir.path(), Some("given")).unwrap(), "given");
        assert!(!secret_path(dir.path()).exists());
    }
}
