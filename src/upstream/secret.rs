//! Upstream secrets (client secrets, JWT signing keys, webhook secrets, TLS
//! client keys): read from a file only the agent can read, or from a systemd
//! credential, never from the configuration text. Wiped when dropped; no
//! error message carries their content.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// Secrets are small: a bigger file is not one.
const MAX_SECRET: u64 = 64 * 1024;

/// Where a secret lives. Exactly one of the two is set (checked when the
/// configuration is read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    File(PathBuf),
    /// The name of a systemd credential (`LoadCredential=`).
    Credential(String),
}

impl SecretSource {
    /// From a pair of configuration keys (`x_file`, `x_credential`).
    pub fn from_keys(
        what: &str,
        file: Option<&PathBuf>,
        credential: Option<&String>,
    ) -> Result<Option<SecretSource>, String> {
        match (file, credential) {
            (None, None) => Ok(None),
            (Some(f), None) => Ok(Some(SecretSource::File(f.clone()))),
            (None, Some(c)) => {
                if c.is_empty() || c.contains('/') || c == "." || c == ".." {
                    return Err(format!("{what}_credential: {c:?} is not a credential name"));
                }
                Ok(Some(SecretSource::Credential(c.clone())))
            }
            (Some(_), Some(_)) => Err(format!(
                "set one of {what}_file or {what}_credential, not both"
            )),
        }
    }

    /// Reads it, trimmed of surrounding white space. A file that others can
    /// read or write is refused (systemd's credential directory may grant
    /// the service's user access through the group bits).
    pub fn read(&self) -> Result<Zeroizing<String>, String> {
        let (path, shown) = match self {
            SecretSource::File(p) => (p.clone(), format!("secret file {}", p.display())),
            SecretSource::Credential(name) => {
                let dir = std::env::var_os("CREDENTIALS_DIRECTORY").ok_or_else(|| {
                    format!(
                        "credential {name:?}: CREDENTIALS_DIRECTORY is not set (no \
                         LoadCredential= in the unit)"
                    )
                })?;
                (Path::new(&dir).join(name), format!("credential {name:?}"))
            }
        };
        let file = std::fs::File::open(&path).map_err(|e| format!("cannot open {shown}: {e}"))?;
        let meta = file
            .metadata()
            .map_err(|e| format!("cannot read {shown}: {e}"))?;
        if meta.permissions().mode() & 0o007 != 0 {
            return Err(format!(
                "{shown} can be read or written by other users (mode {:o}): chmod 600 it",
                meta.permissions().mode() & 0o777
            ));
        }
        if meta.len() > MAX_SECRET {
            return Err(format!("{shown} is {} bytes: not a secret", meta.len()));
        }
        let mut text = Zeroizing::new(String::new());
        file.take(MAX_SECRET)
            .read_to_string(&mut text)
            .map_err(|e| format!("cannot read {shown}: {e} (secrets are text)"))?;
        let trimmed = Zeroizing::new(text.trim().to_string());
        if trimmed.is_empty() {
            return Err(format!("{shown} is empty"));
        }
        Ok(trimmed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_private_file_and_refuses_an_open_one() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s");
        std::fs::write(&p, "  s3cret\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        let s = SecretSource::File(p.clone());
        assert_eq!(s.read().unwrap().as_str(), "s3cret");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = s.read().unwrap_err();
        assert!(e.contains("chmod 600"), "{e}");
        assert!(!e.contains("s3cret"));
        std::fs::write(&p, "\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(s.read().unwrap_err().contains("empty"));
    }

    #[test]
    fn one_source_only() {
        let f = PathBuf::from("/x");
        let c = "name".to_string();
        assert!(SecretSource::from_keys("client_secret", Some(&f), Some(&c)).is_err());
        assert!(SecretSource::from_keys("client_secret", None, Some(&"../x".into())).is_err());
        assert_eq!(
            SecretSource::from_keys("client_secret", None, None).unwrap(),
            None
        );
    }
}
