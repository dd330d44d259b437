//! From what the printer said to a standard fault: pure functions over the
//! profile's tables, tested without a device.

use super::profile::Profile;
use crate::codes::{ErrorCode, Fault, Severity};
use dialect::ops::{Expect, Op};
use dialect::redact::{mask_text, show_bytes};
use dialect::reply::{Malformed, Reply};
use dialect::status::StatusWords;

/// A reply that says the command failed, in the printer's own terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Native {
    Word(String),
    Nack(u8),
}

/// A reply sorted into success, refusal, or noise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Classified {
    /// The command succeeded; the text is the data of a read (empty for `OK`/ACK).
    Success(String),
    /// The printer refused or failed the command.
    Failure(Native),
    /// The reply could not be read.
    Garbled { raw: Vec<u8>, why: Malformed },
}

/// Sorts a reply by what the operation expects.
pub fn classify(reply: Reply, op: &Op, profile: &Profile) -> Classified {
    match reply {
        Reply::Ack => Classified::Success(String::new()),
        Reply::Nack(c) => Classified::Failure(Native::Nack(c)),
        Reply::Malformed { raw, why } => Classified::Garbled { raw, why },
        Reply::Text(t) => match op.expects() {
            Expect::Ok if t == "OK" => Classified::Success(String::new()),
            Expect::Ok => Classified::Failure(Native::Word(t)),
            // The older firmware's `ERR CARD` to `Rlr;p` is a position, not
            // a failure, though it starts with `ERR`.
            Expect::Text if is_position_word(op, &t, profile) => Classified::Success(t),
            Expect::Text if t.starts_with("ERR") || profile.reply_rule(&t).is_some() => {
                Classified::Failure(Native::Word(t))
            }
            Expect::Text => Classified::Success(t),
        },
    }
}

/// Whether `text` is one of the words this firmware answers `Rlr;p` with,
/// for an operation that reads the card position (typed, or a technician's
/// `Rlr;p` sent as it is).
fn is_position_word(op: &Op, text: &str, profile: &Profile) -> bool {
    let reads_position = match op {
        Op::ReadCardPosition => true,
        Op::Raw(c) => c.mnemonic == "Rlr" && c.params == ["p"],
        _ => false,
    };
    reads_position
        && dialect::status::parse_card_position(text, profile.commands.card_position).is_ok()
}

/// Does this failure want the status words to name it precisely?
pub fn wants_status(profile: &Profile, native: &Native) -> bool {
    match native {
        Native::Word(w) => profile.reply_rule(w).is_none_or(|r| !r.refine.is_empty()),
        Native::Nack(c) => profile.nack_rule(*c).is_none_or(|r| !r.refine.is_empty()),
    }
}

/// Maps a failure to a fault. `op` names the operation, its mnemonic first
/// (`Se`, `Sp;k`; never its card data); `sensitive` withholds the printer's
/// words from the description, as a read-back of a magnetic track would put
/// card data there.
///
/// A rule's `refine` entries name the fault more precisely: with the status
/// words (`status`), the first entry whose flag is set; without them (a
/// firmware that has no `Rst`), the first entry naming the command that
/// failed. A flag says where the card is; the command only where it was
/// going, so it is used only when no flag can be read.
pub fn map_failure(
    profile: &Profile,
    op: &str,
    native: &Native,
    status: Option<&StatusWords>,
    sensitive: bool,
) -> Fault {
    let (rule, said) = match native {
        Native::Word(w) => (
            profile.reply_rule(w),
            if sensitive {
                format!("an answer of {} characters (withheld)", w.len())
            } else {
                format!("\"{}\"", mask_text(w))
            },
        ),
        Native::Nack(c) => (
            profile.nack_rule(*c),
            format!("NACK {}", show_bytes(&[*c], 1)),
        ),
    };
    let Some(rule) = rule else {
        // Unknown to the table: the status words may still explain it.
        if let Some(f) = status.and_then(|s| first_error_flag(profile, s)) {
            return Fault::new(
                f.code.expect("error flags have codes"),
                f.reason.clone(),
                format!(
                    "{op}: printer answered {said}, not in the {} table; status flag {} is set",
                    profile.model.id, f.name
                ),
            );
        }
        return Fault::new(
            ErrorCode::UNKNOWN_ERROR,
            "other",
            format!(
                "{op}: printer answered {said}, which the {} table does not know",
                profile.model.id
            ),
        );
    };
    match status {
        Some(s) => {
            for r in &rule.refine {
                if let Some(flag) = r.flag.as_deref().and_then(|f| profile.flag(f)) {
                    if s.bit(&flag.word, flag.bit) {
                        return Fault::new(
                            r.code,
                            r.reason.clone(),
                            format!(
                                "{op}: printer answered {said} with status flag {} set",
                                flag.name
                            ),
                        );
                    }
                }
            }
        }
        None => {
            let mnemonic = op.split(';').next().unwrap_or(op);
            if let Some(r) = rule
                .refine
                .iter()
                .find(|r| r.command.as_deref() == Some(mnemonic))
            {
                return Fault::new(
                    r.code,
                    r.reason.clone(),
                    format!(
                        "{op}: printer answered {said}; with no status words to place the card, named by the command that failed"
                    ),
                );
            }
        }
    }
    Fault::new(
        rule.code,
        rule.reason.clone(),
        format!("{op}: printer answered {said}"),
    )
}

/// The fault for a reply that could not be read.
pub fn garbled(op: &str, raw: &[u8], why: &Malformed, sensitive: bool) -> Fault {
    let shown = if sensitive {
        format!("{} bytes withheld", raw.len())
    } else {
        show_bytes(raw, 48)
    };
    Fault::new(
        ErrorCode::PRD_UNEXPECTED_DATA,
        "other",
        format!("{op}: unreadable answer from the printer ({why}): {shown}"),
    )
}

/// A status flag that is set, with what the profile says of it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ActiveFlag {
    pub name: String,
    pub severity: Severity,
    pub reason: String,
    pub code: Option<ErrorCode>,
}

/// Every known flag set in the status words, in table order, and the bits no
/// flag explains (shown to technicians, never dropped).
pub fn active_flags(profile: &Profile, s: &StatusWords) -> (Vec<ActiveFlag>, Vec<(String, u8)>) {
    let flags = profile
        .flags
        .iter()
        .filter(|f| s.bit(&f.word, f.bit))
        .map(|f| ActiveFlag {
            name: f.name.clone(),
            severity: f.severity,
            reason: f.reason.clone(),
            code: f.code,
        })
        .collect();
    let mut unknown = Vec::new();
    for (word, &value) in &s.words {
        for bit in 0..32u8 {
            if value & (1 << bit) != 0
                && !profile
                    .flags
                    .iter()
                    .any(|f| &f.word == word && f.bit == bit)
            {
                unknown.push((word.clone(), bit));
            }
        }
    }
    (flags, unknown)
}

/// The first error-severity flag set, in table order.
pub fn first_error_flag<'a>(
    profile: &'a Profile,
    s: &StatusWords,
) -> Option<&'a super::profile::FlagRule> {
    first_error_flag_where(profile, s, |_| true)
}

/// The first error flag set that `which` keeps.
pub fn first_error_flag_where<'a>(
    profile: &'a Profile,
    s: &StatusWords,
    which: impl Fn(&super::profile::FlagRule) -> bool,
) -> Option<&'a super::profile::FlagRule> {
    profile.flags.iter().find(|f| {
        f.severity == Severity::Error && f.code.is_some() && s.bit(&f.word, f.bit) && which(f)
    })
}

/// A fault of the link itself (no answer, or no link): the printer may have
/// done what it was asked, or not.
pub fn is_link_fault(f: &Fault) -> bool {
    matches!(
        f.code,
        ErrorCode::PRT_TIMEOUT | ErrorCode::PRT_NOT_REACHABLE
    )
}

/// A link fault, once the printer has shown that it restarted since (its
/// `just_rebooted` flag, or its error mode fallen back): not a printer that
/// stopped answering, but one switched off and on (or that reset itself)
/// while it executed the command, which it lost. Other faults are kept as
/// they are.
pub fn restarted_meanwhile(f: &Fault) -> Fault {
    if !is_link_fault(f) {
        return f.clone();
    }
    Fault {
        description: format!(
            "{}: the printer restarted (power cycle?) while executing it",
            f.description
        ),
        ..f.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dialect::status::parse_status_words;

    fn km() -> Profile {
        Profile::load("evolis-km500b", None).unwrap()
    }

    fn words(err: u32, war: u32, inf: u32) -> StatusWords {
        parse_status_words(&format!(
            "CFG=00000000 INF={inf:08X} WAR={war:08X} ERR={err:08X}"
        ))
        .unwrap()
    }

    #[test]
    fn classification_by_expectation() {
        let p = km();
        let (ok, text) = (Op::Insert, Op::ReadModel);
        assert_eq!(
            classify(Reply::Text("OK".into()), &ok, &p),
            Classified::Success(String::new())
        );
        assert_eq!(
            classify(Reply::Text("COVER OPEN".into()), &ok, &p),
            Classified::Failure(Native::Word("COVER OPEN".into()))
        );
        assert_eq!(
            classify(Reply::Text("KM500B".into()), &text, &p),
            Classified::Success("KM500B".into())
        );
        assert_eq!(
            classify(Reply::Text("ERROR CDE".into()), &text, &p),
            Classified::Failure(Native::Word("ERROR CDE".into()))
        );
        assert_eq!(
            classify(Reply::Text("COVER OPEN".into()), &text, &p),
            Classified::Failure(Native::Word("COVER OPEN".into()))
        );
        assert_eq!(
            classify(Reply::Ack, &ok, &p),
            Classified::Success(String::new())
        );
    }

    #[test]
    fn err_card_is_a_position_only_for_the_older_words() {
        let older = Profile::load("evolis-km500b-older", None).unwrap();
        let err_card = || Reply::Text("ERR CARD".into());
        assert_eq!(
            classify(err_card(), &Op::ReadCardPosition, &older),
            Classified::Success("ERR CARD".into())
        );
        let raw = Op::Raw(dialect::Command::new("Rlr").param("p"));
        assert_eq!(
            classify(err_card(), &raw, &older),
            Classified::Success("ERR CARD".into())
        );
        // Another read answering ERR is still a failure...
        assert!(matches!(
            classify(err_card(), &Op::ReadCleaning, &older),
            Classified::Failure(_)
        ));
        // ...and so is ERR CARD from a firmware said to speak the newer words.
        assert!(matches!(
            classify(err_card(), &Op::ReadCardPosition, &km()),
            Classified::Failure(_)
        ));
    }

    #[test]
    fn without_status_words_a_jam_is_placed_by_the_command_that_failed() {
        let p = km();
        let jam = Native::Word("CARD JAM".into());
        assert_eq!(
            map_failure(&p, "Se", &jam, None, false).code,
            ErrorCode::PRD_HOPPER_JAM
        );
        assert_eq!(
            map_failure(&p, "Si", &jam, None, false).code,
            ErrorCode::PRD_FEEDER_JAM
        );
        assert_eq!(
            map_failure(&p, "Sp;k", &jam, None, false).code,
            ErrorCode::PRD_FEEDER_JAM
        );
        // With status words the flags decide, whatever the command: no
        // position flag set keeps the rule's code.
        assert_eq!(
            map_failure(&p, "Se", &jam, Some(&words(1 << 3, 0, 1)), false).code,
            ErrorCode::PRD_FEEDER_JAM
        );
    }

    #[test]
    fn words_map_through_the_table_and_refine_by_flags() {
        let p = km();
        let w = |s: &str| Native::Word(s.into());
        assert_eq!(
            map_failure(&p, "Si", &w("FEEDER EMPTY"), None, false).code,
            ErrorCode::PRD_FEEDER_EMPTY
        );
        assert_eq!(
            map_failure(&p, "Sp;k", &w("ERROR RIBBON"), Some(&words(0, 0, 0)), false).code,
            ErrorCode::PRT_RIBBON
        );
        assert_eq!(
            map_failure(
                &p,
                "Sp;k",
                &w("ERROR RIBBON"),
                Some(&words(0, 1 << 6, 0)),
                false
            )
            .code,
            ErrorCode::PRT_RIBBON_MISSING
        );
        assert_eq!(
            map_failure(
                &p,
                "Sp;k",
                &w("ERROR RIBBON"),
                Some(&words(1 << 5, 0, 0)),
                false
            )
            .code,
            ErrorCode::PRT_RIBBON_ENDED
        );
        assert_eq!(
            map_failure(&p, "Si", &w("CARD JAM"), Some(&words(1 << 3, 0, 1)), false).code,
            ErrorCode::PRD_FEEDER_JAM
        );
        assert_eq!(
            map_failure(
                &p,
                "Se",
                &w("CARD JAM"),
                Some(&words(1 << 3, 0, 1 << 5)),
                false
            )
            .code,
            ErrorCode::PRD_HOPPER_JAM
        );
        assert_eq!(
            map_failure(&p, "Smw", &Native::Nack(b'W'), None, false).code,
            ErrorCode::PRD_MAGSTRIPE
        );
    }

    #[test]
    fn unknown_answers_are_kept_masked_in_an_unknown_error() {
        let p = km();
        let f = map_failure(
            &p,
            "Si",
            &Native::Word("ERR 4000001234567899 FROB".into()),
            Some(&words(0, 0, 0)),
            false,
        );
        assert_eq!(f.code, ErrorCode::UNKNOWN_ERROR);
        assert!(
            f.description.contains("ERR 400000******7899 FROB"),
            "{}",
            f.description
        );
        // But a status flag that explains it wins.
        let f = map_failure(
            &p,
            "Si",
            &Native::Word("ERR FROB".into()),
            Some(&words(1 << 2, 0, 0)),
            false,
        );
        assert_eq!(f.code, ErrorCode::PRT_COVER_OPEN);
    }

    #[test]
    fn sensitive_answers_are_withheld() {
        let p = km();
        let f = map_failure(
            &p,
            "Smr;1",
            &Native::Word("ERR B4000001234567899^X".into()),
            None,
            true,
        );
        assert!(!f.description.contains("400000"), "{}", f.description);
        let g = garbled(
            "Smr;2",
            b"4000001234567899=\xff",
            &Malformed::BadByte(0xff),
            true,
        );
        assert!(!g.description.contains("4000"), "{}", g.description);
        assert_eq!(g.code, ErrorCode::PRD_UNEXPECTED_DATA);
    }

    #[test]
    fn active_flags_keep_unknown_bits() {
        let p = km();
        let (flags, unknown) = active_flags(&p, &words(1 << 2 | 1 << 30, 0, 1 << 10));
        let names: Vec<_> = flags.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["cover_open", "feeder_near_empty"]);
        assert_eq!(unknown, vec![("ERR".to_string(), 30)]);
    }

    #[test]
    fn a_restart_is_noted_on_link_faults_only() {
        let timeout = crate::printer::conn::LinkError::Timeout {
            op: "Smw".into(),
            after: std::time::Duration::from_millis(3000),
        }
        .to_fault();
        let noted = restarted_meanwhile(&timeout);
        assert_eq!(
            noted.description,
            "Smw: no answer within 3000 ms: the printer restarted (power cycle?) while executing it"
        );
        assert_eq!(noted.code, ErrorCode::PRT_TIMEOUT);
        assert!(noted.uncertain, "still a fault whose outcome is unknown");
        // A refusal is an answer: the printer did not lose the command.
        let refusal = Fault::new(ErrorCode::PRT_RIBBON_MISSING, "ribbon", "ERROR RIBBON");
        assert_eq!(restarted_meanwhile(&refusal), refusal);
    }
}
