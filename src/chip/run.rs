//! Replays a script over any card channel: the part both stations share.

use super::faults::{self, LinkError};
use super::{ChipReport, ChipScript};
use crate::codes::Fault;

/// How many GET RESPONSE rounds one step may take (T=0 `61xx` chains).
const MAX_GET_RESPONSE: usize = 64;

/// One exchange with the card, as a station sees it.
pub(crate) trait CardChannel {
    /// Called before step `step` (1-based) of `total`; `false` stops the run
    /// because the caller has given up waiting.
    fn begin_step(&mut self, _step: usize, _total: usize) -> bool {
        true
    }

    /// Sends one command APDU and returns the status word of the answer. The
    /// channel wipes the answer's data: the runner never sees it.
    fn exchange(&mut self, command: &[u8]) -> Result<u16, LinkError>;
}

/// Runs every step and stops at the first failure. `reader` only names the
/// reader in faults.
pub(crate) fn run_script(
    channel: &mut dyn CardChannel,
    script: &ChipScript,
    reader: &str,
) -> Result<ChipReport, Fault> {
    let total = script.steps.len();
    for (i, step) in script.steps.iter().enumerate() {
        let n = i + 1;
        if !channel.begin_step(n, total) {
            return Err(faults::chip_error(format!(
                "personalisation abandoned at step {n} of {total}"
            )));
        }
        let sw = exchange_step(channel, &step.command, &step.expect_sw)
            .map_err(|e| e.at_step(reader, n, total))?;
        if !step.expect_sw.contains(&sw) {
            tracing::warn!(step = n, total, sw = %format!("{sw:04X}"), "chip answered an unexpected status word");
            return Err(faults::unexpected_sw(n, total, sw, &step.expect_sw));
        }
        tracing::debug!(step = n, total, sw = %format!("{sw:04X}"), "chip step done");
    }
    Ok(ChipReport { steps_run: total })
}

/// One step with the T=0 follow-ups the script did not ask to see: `61xx`
/// (more data: GET RESPONSE until the final status) and `6Cxx` (wrong Le:
/// the command again with Le = xx, once).
fn exchange_step(
    channel: &mut dyn CardChannel,
    command: &[u8],
    expect: &[u16],
) -> Result<u16, LinkError> {
    let mut sw = channel.exchange(command)?;
    if sw >> 8 == 0x6C && !expect.contains(&sw) {
        if let Some(again) = with_le(command, sw as u8) {
            sw = channel.exchange(&again)?;
        }
    }
    let mut rounds = 0;
    while sw >> 8 == 0x61 && !expect.contains(&sw) && rounds < MAX_GET_RESPONSE {
        let get_response = [get_response_cla(command[0]), 0xC0, 0x00, 0x00, sw as u8];
        sw = channel.exchange(&get_response)?;
        rounds += 1;
    }
    Ok(sw)
}

/// GET RESPONSE is interindustry: class 00 on the command's logical channel.
fn get_response_cla(cla: u8) -> u8 {
    if cla & 0x40 == 0 {
        cla & 0x03
    } else {
        cla & 0x4F
    }
}

/// The command with its short Le replaced (case 2 or case 4 short APDUs only).
fn with_le(command: &[u8], le: u8) -> Option<Vec<u8>> {
    match super::script::apdu_case(command).ok()? {
        super::script::ApduCase::Case2 { extended: false }
        | super::script::ApduCase::Case4 {
            extended: false, ..
        } => {
            let mut again = command.to_vec();
            let last = again.len() - 1;
            again[last] = le;
            Some(again)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chip::ApduStep;

    /// A card that answers from a list and records the command headers.
    struct Scripted {
        answers: Vec<Result<u16, LinkError>>,
        headers: Vec<[u8; 4]>,
        lengths: Vec<usize>,
        stop_at: Option<usize>,
    }

    impl Scripted {
        fn new(answers: Vec<Result<u16, LinkError>>) -> Self {
            Scripted {
                answers,
                headers: vec![],
                lengths: vec![],
                stop_at: None,
            }
        }
    }

    impl CardChannel for Scripted {
        fn begin_step(&mut self, step: usize, _total: usize) -> bool {
            self.stop_at != Some(step)
        }
        fn exchange(&mut self, command: &[u8]) -> Result<u16, LinkError> {
            self.headers
                .push([command[0], command[1], command[2], command[3]]);
            self.lengths.push(command.len());
            if self.answers.is_empty() {
                Ok(0x9000)
            } else {
                self.answers.remove(0)
            }
        }
    }

    fn script(n: usize) -> ChipScript {
        ChipScript {
            steps: (0..n)
                .map(|i| {
                    ApduStep::expecting_9000(vec![0x80, 0xE2, 0x00, i as u8, 0x02, 0xAB, 0xCD])
                })
                .collect(),
        }
    }

    #[test]
    fn all_steps_run() {
        let mut card = Scripted::new(vec![]);
        assert_eq!(
            run_script(&mut card, &script(3), "r").unwrap(),
            ChipReport { steps_run: 3 }
        );
        assert_eq!(card.headers.len(), 3);
    }

    #[test]
    fn stops_at_the_first_unexpected_status_word() {
        let mut card = Scripted::new(vec![Ok(0x9000), Ok(0x9000), Ok(0x6A80)]);
        let f = run_script(&mut card, &script(12), "r").unwrap_err();
        assert_eq!(f.code, crate::codes::ErrorCode::PRD_SMARTCARD);
        assert_eq!(f.reason, "chip-error");
        assert_eq!(f.description, "step 3 of 12 answered 6A80, expected 9000");
        assert_eq!(card.headers.len(), 3);
    }

    #[test]
    fn link_errors_name_the_step() {
        let mut card = Scripted::new(vec![Ok(0x9000), Err(LinkError::Unresponsive)]);
        let f = run_script(&mut card, &script(4), "r").unwrap_err();
        assert_eq!(
            f.description,
            "chip did not answer (unresponsive card) at step 2 of 4"
        );
        let mut card = Scripted::new(vec![Err(LinkError::Removed)]);
        assert_eq!(
            run_script(&mut card, &script(4), "r")
                .unwrap_err()
                .description,
            "card left the reader at step 1 of 4"
        );
        let mut card = Scripted::new(vec![Err(LinkError::ReaderGone)]);
        let f = run_script(&mut card, &script(4), "Virtual PCD 00 00").unwrap_err();
        assert_eq!(f.code, crate::codes::ErrorCode::PRT_SETUP_ERROR);
        assert_eq!(f.reason, "smart-card-reader-missing");
        assert!(
            f.description
                .contains("\"Virtual PCD 00 00\" disappeared at step 1 of 4"),
            "{}",
            f.description
        );
    }

    #[test]
    fn a_61xx_chain_is_fetched_with_get_response() {
        let mut card = Scripted::new(vec![Ok(0x6110), Ok(0x6108), Ok(0x9000)]);
        let s = ChipScript {
            steps: vec![ApduStep::expecting_9000(vec![
                0x01, 0xA4, 0x04, 0x00, 0x01, 0xAA, 0x00,
            ])],
        };
        assert_eq!(run_script(&mut card, &s, "r").unwrap().steps_run, 1);
        assert_eq!(
            card.headers,
            vec![
                [0x01, 0xA4, 0x04, 0x00],
                [0x01, 0xC0, 0, 0],
                [0x01, 0xC0, 0, 0]
            ]
        );
        assert_eq!(card.lengths, vec![7, 5, 5]);
    }

    #[test]
    fn a_61xx_the_script_expects_is_kept() {
        let mut card = Scripted::new(vec![Ok(0x6110)]);
        let s = ChipScript {
            steps: vec![ApduStep::new(vec![0x00, 0xA4, 0x04, 0x00], vec![0x6110])],
        };
        assert_eq!(run_script(&mut card, &s, "r").unwrap().steps_run, 1);
        assert_eq!(card.headers.len(), 1);
    }

    #[test]
    fn an_endless_61xx_chain_ends() {
        let mut card = Scripted::new(vec![Ok(0x6101); 200]);
        let f = run_script(&mut card, &script(1), "r").unwrap_err();
        assert_eq!(f.description, "step 1 of 1 answered 6101, expected 9000");
        assert_eq!(card.headers.len(), 1 + MAX_GET_RESPONSE);
    }

    #[test]
    fn a_6cxx_resends_with_the_right_le_once() {
        let mut card = Scripted::new(vec![Ok(0x6C20), Ok(0x9000)]);
        let s = ChipScript {
            steps: vec![ApduStep::expecting_9000(vec![0x00, 0xB0, 0x00, 0x00, 0x00])],
        };
        assert_eq!(run_script(&mut card, &s, "r").unwrap().steps_run, 1);
        assert_eq!(card.lengths, vec![5, 5]);
        // A case 3 command cannot take a new Le: the 6Cxx stands.
        let mut card = Scripted::new(vec![Ok(0x6C20)]);
        let f = run_script(&mut card, &script(1), "r").unwrap_err();
        assert_eq!(f.description, "step 1 of 1 answered 6C20, expected 9000");
    }

    #[test]
    fn get_response_keeps_the_logical_channel() {
        assert_eq!(get_response_cla(0x00), 0x00);
        assert_eq!(get_response_cla(0x03), 0x03);
        assert_eq!(get_response_cla(0x84), 0x00);
        assert_eq!(get_response_cla(0x0C), 0x00);
        assert_eq!(get_response_cla(0x45), 0x45);
    }

    #[test]
    fn a_caller_that_gave_up_stops_the_run() {
        let mut card = Scripted::new(vec![]);
        card.stop_at = Some(2);
        let f = run_script(&mut card, &script(3), "r").unwrap_err();
        assert_eq!(f.description, "personalisation abandoned at step 2 of 3");
        assert_eq!(card.headers.len(), 1);
    }
}
