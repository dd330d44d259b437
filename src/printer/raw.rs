//! A command as a technician types it (`Rse;o`, `Rco;c`), for `printer raw`.

/// `Rse;o` -> Command { Rse, [o] }. A leading ESC and a trailing CR are
/// dropped; binary payloads cannot be typed here.
pub fn parse(text: &str) -> Result<dialect::Command, String> {
    let text = text
        .trim()
        .trim_start_matches('\u{1b}')
        .trim_end_matches('\r');
    let mut parts = text.split(';');
    let mnemonic = parts.next().unwrap_or_default();
    let mut c = dialect::Command::new(mnemonic);
    for p in parts {
        c = c.param(p);
    }
    c.to_bytes().map_err(|e| format!("{text:?}: {e}"))?;
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_commands_parse() {
        let c = parse("Rse;o").unwrap();
        assert_eq!(c.mnemonic, "Rse");
        assert_eq!(c.params, vec!["o"]);
        assert!(parse("").is_err());
        assert!(parse("R1").is_err());
        assert!(parse("Wt;1;2;0;30;A;B\u{1b}").is_err());
    }
}
