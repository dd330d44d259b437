//! Which operations a firmware answers, by its profile: commands outside the
//! vendor's guide (`Rst`, `Rse;f|n|b`, `Rco;r`) go out only where the
//! profile says the firmware has them. Callers choose guide commands
//! instead; this is the last check before a frame would be written, so that
//! no path sends one by mistake. A technician's raw command is not checked:
//! it goes out as typed.

use super::profile::Profile;
use crate::codes::{ErrorCode, Fault};
use dialect::ops::{Counter, Op};

/// The refusal for an operation this firmware does not answer, if it is one.
pub fn not_on_this_firmware(profile: &Profile, op: &Op) -> Option<Fault> {
    let (why, key) = match op {
        Op::ReadStatus if !profile.commands.status_words => {
            ("has no status words", "commands.status_words")
        }
        Op::ReadSensor(s) if !profile.commands.has_sensor(*s) => {
            ("does not answer this sensor", "commands.sensors")
        }
        Op::ReadCounter(Counter::Rejected) if !profile.capabilities.reject_counter => (
            "does not count rejected cards",
            "capabilities.reject_counter",
        ),
        _ => return None,
    };
    Some(Fault::new(
        ErrorCode::PRT_SETUP_ERROR,
        "option-missing",
        format!(
            "{}: not sent: the {} profile says this firmware {why} ({key})",
            op.name(),
            profile.model.id
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use dialect::ops::Sensor;

    #[test]
    fn the_older_firmware_gets_guide_commands_only() {
        let old = Profile::load("evolis-km500b-older", None).unwrap();
        let km = Profile::load("evolis-km500b", None).unwrap();
        for s in [Sensor::Feeder, Sensor::FeederNearEmpty, Sensor::Bezel] {
            let f = not_on_this_firmware(&old, &Op::ReadSensor(s)).unwrap();
            assert_eq!(f.code, ErrorCode::PRT_SETUP_ERROR);
            assert!(f.description.contains("commands.sensors"), "{f:?}");
            assert!(not_on_this_firmware(&km, &Op::ReadSensor(s)).is_none());
        }
        for s in Sensor::GUIDE {
            assert!(not_on_this_firmware(&old, &Op::ReadSensor(s)).is_none());
        }
        assert!(not_on_this_firmware(&old, &Op::ReadStatus).is_some());
        assert!(not_on_this_firmware(&km, &Op::ReadStatus).is_none());
        assert!(not_on_this_firmware(&old, &Op::ReadCardPosition).is_none());
    }
}
