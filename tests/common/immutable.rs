//! Files made unwritable the way a file system remounted read-only after an
//! error makes them: `chattr +i` (root ignores permissions, and a file
//! system with open files cannot be remounted read-only), checked first
//! where the store lives.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// Files made immutable (`chattr +i`) until dropped.
pub struct Immutable(Vec<PathBuf>);

impl Immutable {
    pub fn set(paths: Vec<PathBuf>) -> Immutable {
        let paths: Vec<PathBuf> = paths.into_iter().filter(|p| p.exists()).collect();
        chattr("+i", &paths).expect("chattr +i");
        Immutable(paths)
    }

    pub fn lift(self) {}
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = chattr("-i", &self.0);
    }
}

fn chattr(flag: &str, paths: &[PathBuf]) -> Result<(), String> {
    let out = std::process::Command::new("chattr")
        .arg(flag)
        .args(paths)
        .output()
        .map_err(|e| format!("chattr: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// Whether immutable files refuse what a read-only file system refuses, in
/// `dir`: a write through a file opened before, and an open for writing.
pub fn immutable_refuses_writes(dir: &Path) -> Result<(), String> {
    use std::io::Write;
    let probe = dir.join("immutable-probe");
    let mut f = std::fs::File::create(&probe).map_err(|e| e.to_string())?;
    chattr("+i", std::slice::from_ref(&probe))?;
    let through_open = f.write_all(b"x").and_then(|_| f.sync_all());
    let reopened = std::fs::OpenOptions::new().write(true).open(&probe);
    chattr("-i", std::slice::from_ref(&probe))?;
    let _ = std::fs::remove_file(&probe);
    match (through_open, reopened) {
        (Err(_), Err(_)) => Ok(()),
        (Ok(()), _) => Err("a file opened before chattr +i can still be written".into()),
        (_, Ok(_)) => Err("a file under chattr +i can still be opened for writing".into()),
    }
}
