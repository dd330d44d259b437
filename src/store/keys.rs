//! The card-data key: loading it, and what the store does with it.
//!
//! One secret of 32 bytes (a file or a systemd credential) gives three
//! independent values through HKDF-SHA256, each with its own label:
//!
//! * the **seal key**: ChaCha20-Poly1305 over each job's card data, a fresh
//!   random 96-bit nonce per seal, the card token as associated data (a sealed
//!   record moved to another job does not open);
//! * the **fingerprint key**: HMAC-SHA256 of the PAN's digits, so that "this
//!   PAN is already in production" can be answered without keeping the PAN (a
//!   bare hash would not do: the PAN space is small enough to brute-force);
//! * the **key check**: a value stored in the database when it is created, so
//!   that opening it with another key fails at once with a clear error rather
//!   than at the first card (and rather than fingerprints silently missing).

use super::StoreError;
use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Nonce, Tag};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use zeroize::Zeroizing;

const SECRET_LEN: usize = 32;
const SEAL_LABEL: &[u8] = b"satellite/store/v1/card-data-seal";
const FINGERPRINT_LABEL: &[u8] = b"satellite/store/v1/pan-fingerprint";
const CHECK_LABEL: &[u8] = b"satellite/store/v1/key-check";

/// Format byte in front of every sealed record: version 1 is
/// ChaCha20-Poly1305, then the 12-byte nonce, then ciphertext and 16-byte tag.
const SEAL_V1: u8 = 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const SEAL_OVERHEAD: usize = 1 + NONCE_LEN + TAG_LEN;

/// A key file is tiny; anything bigger is not one (and is not read whole).
const MAX_KEY_FILE: u64 = 4096;

/// The keys derived from the card-data secret. Zeroized on drop; `Debug`
/// shows nothing of them.
pub struct Keys {
    seal: Zeroizing<[u8; 32]>,
    fingerprint: Zeroizing<[u8; 32]>,
    check: Zeroizing<[u8; 32]>,
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Keys(..)")
    }
}

impl Keys {
    /// Reads a key file: 32 raw bytes, or 64 hexadecimal characters with an
    /// optional trailing newline. A file that group or others can read, write
    /// or execute (any of mode `0o077`) is refused.
    pub fn load(path: &Path) -> Result<Keys, StoreError> {
        read_key_file(path, 0o077, "key file")
    }

    /// Reads the systemd credential `name` from `$CREDENTIALS_DIRECTORY`
    /// (`LoadCredential=` / `LoadCredentialEncrypted=`), same format as
    /// [`Keys::load`]. systemd keeps that directory private to the service
    /// and may grant the service's user read access through an ACL, which
    /// shows in the group bits; so here only access by others is refused.
    pub fn from_credential(name: &str) -> Result<Keys, StoreError> {
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            return Err(StoreError::Key(format!(
                "{name:?} is not a credential name"
            )));
        }
        let dir = std::env::var_os("CREDENTIALS_DIRECTORY").ok_or_else(|| {
            StoreError::Key(
                "CREDENTIALS_DIRECTORY is not set: this process was given no systemd \
                 credentials (LoadCredential= in the unit)"
                    .into(),
            )
        })?;
        Keys::from_credential_in(Path::new(&dir), name)
    }

    fn from_credential_in(dir: &Path, name: &str) -> Result<Keys, StoreError> {
        read_key_file(&dir.join(name), 0o007, "credential")
    }

    /// Creates a new key file (mode 0600, 64 hexadecimal characters and a
    /// newline) from fresh random bytes. An existing file is never overwritten.
    pub fn generate(path: &Path) -> Result<Keys, StoreError> {
        let mut secret = Zeroizing::new([0u8; SECRET_LEN]);
        getrandom::fill(&mut secret[..])
            .map_err(|e| StoreError::Key(format!("no randomness for a new key: {e}")))?;
        let mut text = Zeroizing::new(String::with_capacity(2 * SECRET_LEN + 1));
        for b in secret.iter() {
            text.push(char::from(HEX[usize::from(b >> 4)]));
            text.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
        text.push('\n');
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    StoreError::Key(format!(
                        "key file {} already exists: refusing to overwrite it",
                        path.display()
                    ))
                } else {
                    StoreError::Key(format!("cannot create key file {}: {e}", path.display()))
                }
            })?;
        let written = file
            .write_all(text.as_bytes())
            .and_then(|()| file.sync_all());
        if let Err(e) = written {
            drop(file);
            let _ = fs::remove_file(path);
            return Err(StoreError::Key(format!(
                "cannot write key file {}: {e}",
                path.display()
            )));
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            // Make the new directory entry durable too; best effort.
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(Keys::derive(&secret))
    }

    /// Parses a key from its file content (same format as [`Keys::load`]),
    /// for callers that hold the secret some other way (and for tests).
    pub fn parse(content: &[u8]) -> Result<Keys, StoreError> {
        let mut secret = Zeroizing::new([0u8; SECRET_LEN]);
        if content.len() == SECRET_LEN {
            if content.iter().all(u8::is_ascii_hexdigit) {
                return Err(StoreError::Key(
                    "the key is 32 hexadecimal characters, which is a 16-byte key; a key \
                     is 32 bytes: 32 raw bytes or 64 hexadecimal characters"
                        .into(),
                ));
            }
            secret.copy_from_slice(content);
        } else {
            let text = content
                .strip_suffix(b"\n")
                .map(|t| t.strip_suffix(b"\r").unwrap_or(t))
                .unwrap_or(content);
            if text.len() != 2 * SECRET_LEN {
                return Err(StoreError::Key(format!(
                    "a key is 32 raw bytes or 64 hexadecimal characters (and an optional \
                     newline); this one is {} bytes long",
                    content.len()
                )));
            }
            for (i, pair) in text.chunks_exact(2).enumerate() {
                match (hex_value(pair[0]), hex_value(pair[1])) {
                    (Some(hi), Some(lo)) => secret[i] = (hi << 4) | lo,
                    _ => {
                        return Err(StoreError::Key(
                            "the key is 64 characters long but not hexadecimal".into(),
                        ))
                    }
                }
            }
        }
        if secret.iter().all(|&b| b == 0) {
            return Err(StoreError::Key("the key is all zeros".into()));
        }
        Ok(Keys::derive(&secret))
    }

    fn derive(secret: &[u8; SECRET_LEN]) -> Keys {
        let hk = Hkdf::<Sha256>::new(None, secret);
        let mut keys = Keys {
            seal: Zeroizing::new([0; 32]),
            fingerprint: Zeroizing::new([0; 32]),
            check: Zeroizing::new([0; 32]),
        };
        // 32 bytes is far below HKDF-SHA256's limit (255 * 32): cannot fail.
        hk.expand(SEAL_LABEL, &mut keys.seal[..])
            .expect("HKDF output length");
        hk.expand(FINGERPRINT_LABEL, &mut keys.fingerprint[..])
            .expect("HKDF output length");
        hk.expand(CHECK_LABEL, &mut keys.check[..])
            .expect("HKDF output length");
        keys
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn read_key_file(path: &Path, forbidden_mode: u32, what: &str) -> Result<Keys, StoreError> {
    let shown = path.display();
    let mut file = File::open(path)
        .map_err(|e| StoreError::Key(format!("cannot open {what} {shown}: {e}")))?;
    // Checked on the open file, not the path: no window between check and read.
    let meta = file
        .metadata()
        .map_err(|e| StoreError::Key(format!("cannot inspect {what} {shown}: {e}")))?;
    if !meta.is_file() {
        return Err(StoreError::Key(format!(
            "{what} {shown} is not a regular file"
        )));
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & forbidden_mode != 0 {
        let who = if forbidden_mode & 0o070 != 0 {
            "group or others"
        } else {
            "others"
        };
        return Err(StoreError::Key(format!(
            "{what} {shown} is open to {who} (mode {mode:04o}); it must be readable by its \
             owner only (chmod 600 {shown})"
        )));
    }
    if meta.len() > MAX_KEY_FILE {
        return Err(StoreError::Key(format!(
            "{what} {shown} is {} bytes long: not a key",
            meta.len()
        )));
    }
    let mut content = Zeroizing::new(Vec::with_capacity(MAX_KEY_FILE as usize + 1));
    (&mut file)
        .take(MAX_KEY_FILE + 1)
        .read_to_end(&mut content)
        .map_err(|e| StoreError::Key(format!("cannot read {what} {shown}: {e}")))?;
    Keys::parse(&content).map_err(|e| match e {
        StoreError::Key(m) => StoreError::Key(format!("{what} {shown}: {m}")),
        other => other,
    })
}

/// What the store keeps of the keys: the AEAD, the fingerprint key and the
/// key-check value.
pub(crate) struct Crypto {
    cipher: ChaCha20Poly1305,
    fingerprint: Zeroizing<[u8; 32]>,
    check: Zeroizing<[u8; 32]>,
}

impl Crypto {
    pub(crate) fn new(keys: Keys) -> Crypto {
        Crypto {
            cipher: ChaCha20Poly1305::new_from_slice(&keys.seal[..]).expect("32-byte key"),
            fingerprint: keys.fingerprint.clone(),
            check: keys.check.clone(),
        }
    }

    /// Seals card data: `1 || nonce || ciphertext || tag`, bound to `aad`.
    pub(crate) fn seal(&self, aad: &[u8], plain: &[u8]) -> Result<Vec<u8>, StoreError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce)
            .map_err(|e| StoreError::Key(format!("no randomness for a nonce: {e}")))?;
        // Exact capacity: the buffer never reallocates, so no stray copy of
        // the plaintext is left behind in freed memory.
        let mut out = Vec::with_capacity(plain.len() + SEAL_OVERHEAD);
        out.push(SEAL_V1);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plain);
        let tag = self
            .cipher
            .encrypt_inout_detached(&Nonce::from(nonce), aad, (&mut out[1 + NONCE_LEN..]).into())
            .map_err(|_| StoreError::Key("card data too large to seal".into()))?;
        out.extend_from_slice(tag.as_slice());
        Ok(out)
    }

    /// Opens what [`Crypto::seal`] sealed with the same `aad`.
    pub(crate) fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        if sealed.len() < SEAL_OVERHEAD || sealed[0] != SEAL_V1 {
            return Err(StoreError::Key(
                "the sealed card data is not in a format this version knows".into(),
            ));
        }
        let nonce: [u8; NONCE_LEN] = sealed[1..1 + NONCE_LEN].try_into().expect("length");
        let body = &sealed[1 + NONCE_LEN..sealed.len() - TAG_LEN];
        let tag = Tag::try_from(&sealed[sealed.len() - TAG_LEN..]).expect("length");
        let mut plain = Zeroizing::new(body.to_vec());
        self.cipher
            .decrypt_inout_detached(&Nonce::from(nonce), aad, (&mut plain[..]).into(), &tag)
            .map_err(|_| {
                StoreError::Key(
                    "the card data does not authenticate: it was sealed with another key, \
                     or the record was altered or moved"
                        .into(),
                )
            })?;
        Ok(plain)
    }

    /// HMAC-SHA256 of the PAN's digits (spaces, dashes and anything else
    /// that is not a digit are left out, so formatting never hides a match).
    pub(crate) fn fingerprint(&self, pan: &str) -> Vec<u8> {
        let digits: Zeroizing<Vec<u8>> =
            Zeroizing::new(pan.bytes().filter(u8::is_ascii_digit).collect());
        let mut mac =
            <Hmac<Sha256> as KeyInit>::new_from_slice(&self.fingerprint[..]).expect("any key size");
        mac.update(&digits);
        mac.finalize().into_bytes().to_vec()
    }

    /// The key-check value stored in the database at creation.
    /// A keyed digest of a request's canonical bytes (domain-separated from
    /// the PAN fingerprint, under the same key).
    pub(crate) fn request_digest(&self, canonical: &[u8]) -> Vec<u8> {
        let mut mac =
            <Hmac<Sha256> as KeyInit>::new_from_slice(&self.fingerprint[..]).expect("any key size");
        mac.update(b"satellite request v1\0");
        mac.update(canonical);
        mac.finalize().into_bytes().to_vec()
    }

    pub(crate) fn check_value(&self) -> &[u8] {
        &self.check[..]
    }

    /// Constant-time comparison with a stored key-check value.
    pub(crate) fn matches_check(&self, stored: &[u8]) -> bool {
        stored.len() == self.check.len()
            && stored
                .iter()
                .zip(self.check.iter())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(byte: u8) -> Keys {
        Keys::parse(&[byte; 32]).unwrap()
    }

    #[test]
    fn seal_round_trips_and_binds_the_token() {
        let c = Crypto::new(keys(7));
        let sealed = c.seal(b"tok-1", b"4000001234567899 track data").unwrap();
        assert_eq!(sealed.len(), 27 + SEAL_OVERHEAD);
        assert_eq!(
            &c.open(b"tok-1", &sealed).unwrap()[..],
            b"4000001234567899 track data"
        );
        let e = c.open(b"tok-2", &sealed).unwrap_err();
        assert!(matches!(e, StoreError::Key(_)), "{e}");
        // A fresh nonce each time: the same plaintext never seals the same.
        assert_ne!(
            sealed,
            c.seal(b"tok-1", b"4000001234567899 track data").unwrap()
        );
    }

    #[test]
    fn another_key_cannot_open_and_says_so() {
        let sealed = Crypto::new(keys(7)).seal(b"t", b"secret").unwrap();
        let e = Crypto::new(keys(8)).open(b"t", &sealed).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("another key"), "{msg}");
        assert!(!msg.contains("secret"));
    }

    #[test]
    fn tampered_or_truncated_records_are_refused() {
        let c = Crypto::new(keys(7));
        let mut sealed = c.seal(b"t", b"secret").unwrap();
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert!(c.open(b"t", &sealed).is_err());
        assert!(c.open(b"t", &sealed[..10]).is_err());
        assert!(c.open(b"t", &[]).is_err());
        let mut wrong_version = c.seal(b"t", b"secret").unwrap();
        wrong_version[0] = 9;
        assert!(c.open(b"t", &wrong_version).is_err());
    }

    #[test]
    fn empty_card_data_seals_too() {
        let c = Crypto::new(keys(7));
        let sealed = c.seal(b"t", b"").unwrap();
        assert!(c.open(b"t", &sealed).unwrap().is_empty());
    }

    #[test]
    fn fingerprints_are_keyed_and_ignore_formatting() {
        let a = Crypto::new(keys(1));
        let b = Crypto::new(keys(2));
        let f = a.fingerprint("4000001234567899");
        assert_eq!(f.len(), 32);
        assert_eq!(f, a.fingerprint("4000 0012 3456 7899"));
        assert_ne!(f, a.fingerprint("4000001234567891"));
        assert_ne!(f, b.fingerprint("4000001234567899"));
    }

    #[test]
    fn the_derived_keys_differ_from_each_other_and_from_the_secret() {
        let k = keys(3);
        assert_ne!(*k.seal, *k.fingerprint);
        assert_ne!(*k.seal, *k.check);
        assert_ne!(*k.fingerprint, *k.check);
        assert_ne!(*k.seal, [3u8; 32]);
        let c = Crypto::new(keys(3));
        assert!(c.matches_check(&k.check[..]));
        assert!(!c.matches_check(&keys(4).check[..]));
        assert!(!c.matches_check(&k.check[..16]));
    }

    #[test]
    fn key_formats() {
        let hex = "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF";
        let raw: Vec<u8> = (0..32)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        let from_raw = Keys::parse(&raw).unwrap();
        for text in [hex.to_string(), format!("{hex}\n"), format!("{hex}\r\n")] {
            let k = Keys::parse(text.as_bytes()).unwrap();
            assert_eq!(*k.seal, *from_raw.seal, "{text:?}");
        }
        for bad in [
            &b""[..],
            &b"short"[..],
            &[0u8; 32][..],
            &b"0123456789abcdef0123456789abcdef"[..],
            &[b'g'; 64][..],
            &[b'a'; 66][..],
            &[b'a'; 63][..],
        ] {
            let e = Keys::parse(bad).unwrap_err();
            assert!(matches!(e, StoreError::Key(_)), "{bad:?}: {e}");
        }
        let e = Keys::parse(&[b'a'; 63]).unwrap_err().to_string();
        assert!(e.contains("63 bytes"), "{e}");
    }

    #[test]
    fn debug_shows_nothing() {
        let k = keys(0xa5);
        assert_eq!(format!("{k:?}"), "Keys(..)");
    }

    #[test]
    fn generate_then_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("card.key");
        let made = Keys::generate(&path).unwrap();
        let meta = fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(meta.len(), 65);
        let loaded = Keys::load(&path).unwrap();
        assert_eq!(*made.seal, *loaded.seal);
        let e = Keys::generate(&path).unwrap_err().to_string();
        assert!(e.contains("refusing to overwrite"), "{e}");
        // Two generated keys differ.
        let other = Keys::generate(&dir.path().join("other.key")).unwrap();
        assert_ne!(*made.seal, *other.seal);
    }

    #[test]
    fn open_permissions_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("card.key");
        Keys::generate(&path).unwrap();
        for mode in [0o640, 0o604, 0o660, 0o644, 0o620, 0o601] {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            let e = Keys::load(&path).unwrap_err().to_string();
            assert!(e.contains("chmod 600"), "{mode:o}: {e}");
            assert!(e.contains(&format!("{mode:04o}")), "{e}");
        }
        for mode in [0o600, 0o400] {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            Keys::load(&path).unwrap();
        }
    }

    #[test]
    fn credentials_tolerate_group_bits_but_not_others() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("satellite-card-key");
        let made = Keys::generate(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o440)).unwrap();
        let k = Keys::from_credential_in(dir.path(), "satellite-card-key").unwrap();
        assert_eq!(*k.seal, *made.seal);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o444)).unwrap();
        let e = Keys::from_credential_in(dir.path(), "satellite-card-key")
            .unwrap_err()
            .to_string();
        assert!(e.contains("open to others"), "{e}");
        for bad in ["", "a/b", "..", "."] {
            assert!(Keys::from_credential(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn missing_key_file_is_a_key_error() {
        let dir = tempfile::tempdir().unwrap();
        let e = Keys::load(&dir.path().join("none")).unwrap_err();
        assert!(matches!(e, StoreError::Key(_)), "{e}");
        let e = Keys::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
    }
}
