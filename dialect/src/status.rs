//! Parsers for structured read replies.

use std::collections::BTreeMap;

/// The status words of `Rst`: `CFG=hex INF=hex WAR=hex ERR=hex [EX1=hex ...]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusWords {
    pub words: BTreeMap<String, u32>,
}

impl StatusWords {
    pub fn get(&self, word: &str) -> u32 {
        self.words.get(word).copied().unwrap_or(0)
    }
    pub fn bit(&self, word: &str, bit: u8) -> bool {
        bit < 32 && self.get(word) & (1 << bit) != 0
    }
    pub fn render(&self) -> String {
        self.words
            .iter()
            .map(|(k, v)| format!("{k}={v:08X}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Parses status words. Every word must be `NAME=8 hex digits`, NAME three
/// upper-case letters or digits; CFG, INF, WAR and ERR must all be present.
pub fn parse_status_words(text: &str) -> Result<StatusWords, String> {
    let mut words = BTreeMap::new();
    for item in text.split_whitespace() {
        let (name, hex) = item
            .split_once('=')
            .ok_or_else(|| format!("status item {item:?} has no '='"))?;
        if name.len() != 3
            || !name
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        {
            return Err(format!("status word name {name:?} is not three capitals"));
        }
        if hex.len() != 8 {
            return Err(format!("status word {name} is not 8 hex digits"));
        }
        let v = u32::from_str_radix(hex, 16)
            .map_err(|_| format!("status word {name} is not hexadecimal"))?;
        if words.insert(name.to_string(), v).is_some() {
            return Err(format!("status word {name} appears twice"));
        }
    }
    for needed in ["CFG", "INF", "WAR", "ERR"] {
        if !words.contains_key(needed) {
            return Err(format!("status word {needed} is missing"));
        }
    }
    Ok(StatusWords { words })
}

/// Where `Rlr;p` says the card is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardPosition {
    None,
    Inside,
    SmartStation,
    ContactlessStation,
    /// A card is in the printer; the firmware does not say where (the older
    /// firmware's `ERR CARD`).
    Somewhere,
}

/// The two sets of words `Rlr;p` is answered with (the reference fact
/// sheet, "Commands by family"); a profile says which one its firmware
/// speaks (`[commands] card_position`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PositionWords {
    /// `OK` (no card), `CARD`, `SMART CARD`, `CONTACTLESS CARD`.
    Newer,
    /// `NO CARD`, `ERR CARD`.
    Older,
}

impl PositionWords {
    pub fn name(self) -> &'static str {
        match self {
            PositionWords::Newer => "newer",
            PositionWords::Older => "older",
        }
    }

    fn words(self) -> &'static str {
        match self {
            PositionWords::Newer => "OK, CARD, SMART CARD, CONTACTLESS CARD",
            PositionWords::Older => "NO CARD, ERR CARD",
        }
    }
}

/// Reads an `Rlr;p` answer in the firmware's words. `ERR CARD` is a card in
/// the printer whose position the firmware does not give (this project's
/// reading, the conservative one: a card that may be there is looked for and
/// rejected). A word of the other set is refused rather than guessed at: the
/// profile does not describe this firmware, and the error says which key to
/// look at.
pub fn parse_card_position(text: &str, words: PositionWords) -> Result<CardPosition, String> {
    use PositionWords::*;
    match (words, text) {
        (Newer, "OK") | (Older, "NO CARD") => Ok(CardPosition::None),
        (Newer, "CARD") => Ok(CardPosition::Inside),
        (Newer, "SMART CARD") => Ok(CardPosition::SmartStation),
        (Newer, "CONTACTLESS CARD") => Ok(CardPosition::ContactlessStation),
        (Older, "ERR CARD") => Ok(CardPosition::Somewhere),
        (_, other) => Err(format!(
            "card position reply {other:?} is not one of {} (the profile's commands.card_position is {:?})",
            words.words(),
            words.name()
        )),
    }
}

/// `Sk;f` / `Sk;w`: 0 none, 1 feeder 1, 2 feeder 2, 3 all (two-feeder coding);
/// four-feeder models answer a bit mask (bit 0 feeder 1 ... bit 3 feeder 4) prefixed by `M`.
pub fn parse_feeder_answer(text: &str, feeders: u8) -> Result<Vec<bool>, String> {
    let n = feeders.clamp(1, 4) as usize;
    if let Some(mask) = text.strip_prefix('M') {
        let m = u8::from_str_radix(mask, 16)
            .map_err(|_| format!("feeder mask {text:?} is not hexadecimal"))?;
        return Ok((0..n).map(|i| m & (1 << i) != 0).collect());
    }
    let v: u8 = text
        .parse()
        .map_err(|_| format!("feeder answer {text:?} is not a number"))?;
    match v {
        0 => Ok(vec![false; n]),
        3 => Ok(vec![true; n]),
        1 | 2 if (v as usize) <= n => Ok((0..n).map(|i| i + 1 == v as usize).collect()),
        _ => Err(format!("feeder answer {v} does not fit {n} feeder(s)")),
    }
}

/// `Rse;x`: a voltage such as `4.98` (volts).
pub fn parse_voltage(text: &str) -> Result<f32, String> {
    let t = text.trim_end_matches('V');
    let v: f32 = t
        .parse()
        .map_err(|_| format!("sensor reply {text:?} is not a voltage"))?;
    if !(0.0..=30.0).contains(&v) {
        return Err(format!("sensor voltage {v} is out of range"));
    }
    Ok(v)
}

/// A decimal counter.
pub fn parse_count(text: &str) -> Result<u64, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("counter reply {text:?} is not a whole number"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_words_parse_and_reject() {
        let s =
            parse_status_words("CFG=0000001F INF=00000010 WAR=00000000 ERR=00000004 EX1=00000000")
                .unwrap();
        assert!(s.bit("ERR", 2));
        assert!(s.bit("INF", 4));
        assert!(!s.bit("ERR", 3));
        assert_eq!(
            s.render(),
            "CFG=0000001F ERR=00000004 EX1=00000000 INF=00000010 WAR=00000000"
        );
        assert!(parse_status_words("CFG=1 INF=00000000").is_err());
        assert!(parse_status_words("CFG=0000001F INF=00000010 WAR=00000000").is_err());
        assert!(parse_status_words("CFG=0000001G INF=00000010 WAR=00000000 ERR=00000000").is_err());
    }

    #[test]
    fn feeder_answers() {
        assert_eq!(parse_feeder_answer("0", 2).unwrap(), vec![false, false]);
        assert_eq!(parse_feeder_answer("2", 2).unwrap(), vec![false, true]);
        assert_eq!(parse_feeder_answer("3", 1).unwrap(), vec![true]);
        assert_eq!(
            parse_feeder_answer("M5", 4).unwrap(),
            vec![true, false, true, false]
        );
        assert!(parse_feeder_answer("2", 1).is_err());
        assert!(parse_feeder_answer("x", 1).is_err());
    }

    #[test]
    fn positions_and_voltages() {
        use PositionWords::*;
        assert_eq!(
            parse_card_position("SMART CARD", Newer).unwrap(),
            CardPosition::SmartStation
        );
        assert_eq!(
            parse_card_position("OK", Newer).unwrap(),
            CardPosition::None
        );
        assert!(parse_card_position("MAYBE", Newer).is_err());
        // The older firmware's words, and only with its vocabulary.
        assert_eq!(
            parse_card_position("NO CARD", Older).unwrap(),
            CardPosition::None
        );
        assert_eq!(
            parse_card_position("ERR CARD", Older).unwrap(),
            CardPosition::Somewhere
        );
        let e = parse_card_position("ERR CARD", Newer).unwrap_err();
        assert!(e.contains("commands.card_position"), "{e}");
        assert!(parse_card_position("CARD", Older).is_err());
        assert!(parse_card_position("OK", Older).is_err());
        assert_eq!(parse_voltage("4.98").unwrap(), 4.98);
        assert!(parse_voltage("NaN").is_err() || parse_voltage("NaN").is_ok_and(|v| !v.is_nan()));
        assert!(parse_voltage("abc").is_err());
    }
}
