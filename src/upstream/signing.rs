//! Standard Webhooks signatures: `v1,` + base64 of HMAC-SHA256 over
//! `{id}.{timestamp}.{body}`, keyed with the bytes of a `whsec_` secret.
//! During a rotation two secrets are valid: every message carries one
//! signature per secret, space-separated, so the receiver may hold either.

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

/// The secrets of one webhook, decoded.
pub struct Signer {
    keys: Vec<Zeroizing<Vec<u8>>>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer({} secrets)", self.keys.len())
    }
}

impl Signer {
    /// From the secret file's text: one `whsec_<base64>` per line (blank
    /// lines and `#` comments ignored), one or two of them.
    pub fn parse(text: &str) -> Result<Signer, String> {
        let mut keys = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let b64 = line
                .strip_prefix("whsec_")
                .ok_or_else(|| format!("line {}: a webhook secret starts with whsec_", i + 1))?;
            let key = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|_| format!("line {}: the part after whsec_ is not base64", i + 1))?;
            if !(24..=64).contains(&key.len()) {
                return Err(format!(
                    "line {}: a webhook secret holds 24 to 64 bytes, this one {}",
                    i + 1,
                    key.len()
                ));
            }
            keys.push(Zeroizing::new(key));
        }
        match keys.len() {
            1 | 2 => Ok(Signer { keys }),
            0 => Err("no whsec_ secret in it".into()),
            n => Err(format!(
                "{n} secrets: one, or two during a rotation (new and old)"
            )),
        }
    }

    /// The `webhook-signature` header value.
    pub fn sign(&self, id: &str, timestamp: u64, body: &[u8]) -> String {
        self.keys
            .iter()
            .map(|k| {
                let mut mac =
                    <Hmac<Sha256> as KeyInit>::new_from_slice(k).expect("HMAC takes any key");
                mac.update(id.as_bytes());
                mac.update(b".");
                mac.update(timestamp.to_string().as_bytes());
                mac.update(b".");
                mac.update(body);
                let sig = mac.finalize().into_bytes();
                format!(
                    "v1,{}",
                    base64::engine::general_purpose::STANDARD.encode(sig)
                )
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Standard Webhooks specification's published example.
    #[test]
    fn the_published_test_vector() {
        let s = Signer::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(
            s.sign(
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn rotation_signs_with_each_secret() {
        let a = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let b = "whsec_dGhpcyBpcyBhIHNlY29uZCBzZWNyZXQga2V5IQ==";
        let one = Signer::parse(a).unwrap().sign("m", 1, b"{}");
        let two = Signer::parse(&format!("{b}\n# old\n{a}\n"))
            .unwrap()
            .sign("m", 1, b"{}");
        assert_eq!(two.split(' ').count(), 2);
        assert!(two.ends_with(&one));
        assert!(Signer::parse("").is_err());
        assert!(Signer::parse("secret").is_err());
        assert!(Signer::parse("whsec_c2hvcnQ=")
            .unwrap_err()
            .contains("24 to 64"));
        assert!(Signer::parse(&format!("{a}\n{a}\n{a}")).is_err());
    }
}
