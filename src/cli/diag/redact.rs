//! The support bundle's last line of defence: every file goes through this
//! before it is written, whatever produced it. Card numbers keep at most
//! their first six and last four digits; track data, bearer tokens, JSON web
//! tokens, webhook secrets and long hexadecimal strings (keys, chip
//! scripts, PIN blocks) are replaced by a marker.

use regex::Regex;
use std::sync::LazyLock;

static RULES: LazyLock<Vec<(Regex, &'static str)>> = LazyLock::new(|| {
    [
        // Track 1: %B PAN ^ NAME ^ data ?
        (
            r"%?B\d{12,19}\^[^\^\n]{0,26}\^[^\s?]*\??",
            "<track 1 data redacted>",
        ),
        // Track 2: ; PAN = data ?
        (r";?\d{12,19}=\d{1,30}\??", "<track 2 data redacted>"),
        (r"(?i)(bearer\s+)[A-Za-z0-9._~+/-]+=*", "${1}<redacted>"),
        (
            r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*",
            "<jwt redacted>",
        ),
        (r"whsec_[A-Za-z0-9+/=]+", "whsec_<redacted>"),
        (r"\b[0-9A-Fa-f]{32,}\b", "<hex redacted>"),
        // A URL's user information: https://user:password@host
        (r"(://[^/\s:@]+:)[^@/\s]+@", "${1}<redacted>@"),
    ]
    .into_iter()
    .map(|(re, with)| {
        (
            Regex::new(re).expect("the bundle's redaction rules compile"),
            with,
        )
    })
    .collect()
});

/// `text` with secrets replaced and card numbers masked.
pub fn scrub(text: &str) -> String {
    let mut out = text.to_string();
    for (re, with) in RULES.iter() {
        out = re.replace_all(&out, *with).into_owned();
    }
    dialect::redact::mask_text(&out)
}

/// A configuration file without its secrets: values of keys that name a
/// secret, password or token are replaced (paths to them, `*_file` and
/// `*_credential`, are kept: they say where the secret is, not what).
pub fn config(text: &str) -> String {
    match text.parse::<toml::Table>() {
        Ok(mut t) => {
            strip(&mut t);
            scrub(&toml::to_string(&t).unwrap_or_default())
        }
        Err(e) => format!("# the configuration does not parse ({e}); not included\n"),
    }
}

fn strip(t: &mut toml::Table) {
    for (k, v) in t.iter_mut() {
        let key = k.to_ascii_lowercase();
        let names_secret = ["secret", "password", "token", "private", "credential_value"]
            .iter()
            .any(|w| key.contains(w));
        let is_pointer =
            key.ends_with("_file") || key.ends_with("_credential") || key.ends_with("_path");
        match v {
            toml::Value::Table(inner) => strip(inner),
            toml::Value::Array(items) => {
                for i in items.iter_mut() {
                    if let toml::Value::Table(inner) = i {
                        strip(inner);
                    }
                }
            }
            _ if names_secret && !is_pointer => *v = toml::Value::String("<redacted>".into()),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_and_card_data_do_not_survive() {
        let pan = "4000001234567899";
        let text = format!(
            "pan {pan} t2 ;{pan}=28121010000000000? t1 %B{pan}^LOVELACE/ADA^2812101000000? \
             Authorization: Bearer abc.DEF-123 jwt eyJhbGciOi.eyJzdWIi.sig \
             whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw key 00112233445566778899aabbccddeeff0011 \
             url https://svc:hunter2@cb.example/"
        );
        let s = scrub(&text);
        for secret in [
            pan,
            "28121010000000000",
            "LOVELACE/ADA",
            "abc.DEF-123",
            "eyJhbGciOi",
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "00112233445566778899aabbccddeeff",
            "hunter2",
        ] {
            assert!(!s.contains(secret), "{secret} survived: {s}");
        }
        assert!(s.contains("400000******7899"), "{s}");
    }

    #[test]
    fn configuration_keeps_where_secrets_are_not_what() {
        let c = config(
            "[upstream.central_base]\nclient_secret = \"s3cr3t\"\nclient_secret_file = \"/etc/satellite/cb.secret\"\n\
             [[upstream.webhook]]\nsecret = \"whsec_abc\"\nurl = \"https://h/\"\n",
        );
        assert!(!c.contains("s3cr3t") && !c.contains("whsec_abc"), "{c}");
        assert!(c.contains("/etc/satellite/cb.secret"), "{c}");
        assert!(c.contains("https://h/"), "{c}");
        assert!(config("not = toml = at all").contains("does not parse"));
    }
}
