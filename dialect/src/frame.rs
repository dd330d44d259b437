//! Command frames: `ESC mnemonic (;param)* [;payload] CR`.

use bytes::{BufMut, Bytes, BytesMut};
use std::fmt;

/// Start of a command frame.
pub const ESC: u8 = 0x1B;
/// End of a command frame, and of a text reply on serial and TCP links.
pub const CR: u8 = 0x0D;
/// Parameter separator.
pub const SEP: u8 = b';';

/// One command as it travels in a frame.
#[derive(Clone, PartialEq, Eq)]
pub struct Command {
    /// The mnemonic, such as `Si` or `Rse`.
    pub mnemonic: String,
    /// Text parameters, in order, without separators.
    pub params: Vec<String>,
    /// Binary payload that follows the parameters inside the same frame (`Db`, `Dbc`).
    pub payload: Option<Bytes>,
}

/// Why a command cannot be framed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("mnemonic {0:?} is not 1 to 8 ASCII letters")]
    BadMnemonic(String),
    #[error("parameter {index} of {mnemonic} holds a reserved byte (ESC, CR, ';' or a control character)")]
    ReservedByte { mnemonic: String, index: usize },
}

impl Command {
    pub fn new(mnemonic: &str) -> Self {
        Command {
            mnemonic: mnemonic.to_string(),
            params: Vec::new(),
            payload: None,
        }
    }

    pub fn param(mut self, p: impl ToString) -> Self {
        self.params.push(p.to_string());
        self
    }

    pub fn with_payload(mut self, payload: Bytes) -> Self {
        self.payload = Some(payload);
        self
    }

    /// Frames the command. Parameters may not contain the framing bytes: the
    /// dialect has no escaping, so such a parameter would split the frame.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), EncodeError> {
        if self.mnemonic.is_empty()
            || self.mnemonic.len() > 8
            || !self.mnemonic.bytes().all(|b| b.is_ascii_alphabetic())
        {
            return Err(EncodeError::BadMnemonic(self.mnemonic.clone()));
        }
        for (index, p) in self.params.iter().enumerate() {
            if p.bytes().any(|b| b == SEP || b < 0x20 || b == 0x7F) {
                return Err(EncodeError::ReservedByte {
                    mnemonic: self.mnemonic.clone(),
                    index,
                });
            }
        }
        let payload_len = self.payload.as_ref().map_or(0, |p| p.len() + 1);
        dst.reserve(
            2 + self.mnemonic.len()
                + self.params.iter().map(|p| p.len() + 1).sum::<usize>()
                + payload_len,
        );
        dst.put_u8(ESC);
        dst.put_slice(self.mnemonic.as_bytes());
        for p in &self.params {
            dst.put_u8(SEP);
            dst.put_slice(p.as_bytes());
        }
        if let Some(payload) = &self.payload {
            dst.put_u8(SEP);
            dst.put_slice(payload);
        }
        dst.put_u8(CR);
        Ok(())
    }

    pub fn to_bytes(&self) -> Result<Bytes, EncodeError> {
        let mut b = BytesMut::new();
        self.encode(&mut b)?;
        Ok(b.freeze())
    }

    /// The command as a person reads it, with card numbers masked and binary
    /// payloads summarised. Use this, never the raw bytes, in logs and errors.
    pub fn display_redacted(&self) -> String {
        let mut s = self.mnemonic.clone();
        for p in &self.params {
            s.push(';');
            s.push_str(&crate::redact::mask_text(p));
        }
        if let Some(p) = &self.payload {
            s.push_str(&format!(";<{} bytes>", p.len()));
        }
        s
    }
}

impl fmt::Debug for Command {
    // Debug goes to logs too: never print parameters in clear.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Command({})", self.display_redacted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_a_command_with_parameters() {
        let b = Command::new("Pmi").param("F").to_bytes().unwrap();
        assert_eq!(&b[..], b"\x1bPmi;F\r");
    }

    #[test]
    fn frames_a_payload_after_the_parameters() {
        let b = Command::new("Dbc")
            .param("k")
            .param(2)
            .param(3)
            .with_payload(Bytes::from_static(&[0, 0xFF, 13]))
            .to_bytes()
            .unwrap();
        assert_eq!(&b[..], b"\x1bDbc;k;2;3;\x00\xff\x0d\r");
    }

    #[test]
    fn refuses_parameters_that_would_split_the_frame() {
        for bad in ["a;b", "a\rb", "\x1b", "tab\t"] {
            let e = Command::new("Wt").param(bad).to_bytes().unwrap_err();
            assert!(
                matches!(e, EncodeError::ReservedByte { index: 0, .. }),
                "{bad:?}"
            );
        }
        assert!(matches!(
            Command::new("S1").to_bytes(),
            Err(EncodeError::BadMnemonic(_))
        ));
    }

    #[test]
    fn debug_output_masks_card_numbers() {
        let c = Command::new("Dm")
            .param(2)
            .param("4000001234567899=2812101");
        let shown = format!("{c:?}");
        assert!(!shown.contains("4000001234567899"), "{shown}");
        assert!(shown.contains("400000******7899"), "{shown}");
    }
}
