//! The standard error codes of the kiosk production-status API, and the fault
//! value the printer link reports.
//!
//! The code strings are part of the upstream contract: they are spelled exactly
//! as the platform documents them and never change.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

macro_rules! codes {
    ($( $(#[$m:meta])* $name:ident = $text:literal, $desc:literal; )*) => {
        /// Every error code of the production-status API (request and production errors).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[allow(non_camel_case_types)]
        pub enum ErrorCode {
            $( $(#[$m])* #[serde(rename = $text)] $name, )*
        }

        impl ErrorCode {
            pub const ALL: &'static [ErrorCode] = &[ $( ErrorCode::$name, )* ];

            /// The code as the API spells it.
            pub fn as_str(self) -> &'static str {
                match self { $( ErrorCode::$name => $text, )* }
            }

            /// The API's own description of the code.
            pub fn description(self) -> &'static str {
                match self { $( ErrorCode::$name => $desc, )* }
            }
        }

        impl FromStr for ErrorCode {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $( $text => Ok(ErrorCode::$name), )*
                    other => Err(format!("{other:?} is not a known error code")),
                }
            }
        }
    };
}

codes! {
    // Request errors (REQUEST_ERROR).
    UNKNOWN_ERROR = "UNKNOWN_ERROR", "Unknown error";
    REQUEST_ALREADY_EXISTS = "REQUEST_ALREADY_EXISTS", "The request has already been submitted";
    KIOSK_ID_NOT_FOUND = "KIOSK_ID_NOT_FOUND", "The kiosk ID does not exist";
    CARD_TYPE_NOT_FOUND = "CARD_TYPE_NOT_FOUND", "The card type does not exist";
    INVALID_FIELD_VALUE = "INVALID_FIELD_VALUE", "Some field values are unexpected";
    INVALID_PIN_FORMAT = "INVALID_PIN_FORMAT", "The PIN does not follow ISO0 or ISO2 standard";
    EMPTY_OR_NULL_FIELD_VALUE = "EMPTY_OR_NULL_FIELD_VALUE", "Some required fields are empty or null";
    EMPTY_OR_NULL_OR_WRONG_SIZE_FIELD_VALUE = "EMPTY_OR_NULL_OR_WRONG_SIZE_FIELD_VALUE", "Some required fields are empty, null, or have incorrect lengths";
    CHARSET_NOT_SUPPORTED = "CHARSET_NOT_SUPPORTED", "The character set for some fields is not supported";
    INVALID_FIELD_FORMAT = "INVALID_FIELD_FORMAT", "Some field formats are invalid";
    INVALID_FIELD_ENCODING = "INVALID_FIELD_ENCODING", "The encoding for some fields is not expected";
    CDATA_ENCODING_OR_FORMATING_ERROR = "CDATA_ENCODING_OR_FORMATING_ERROR", "The encoding or formatting for XML text field values is incorrect";
    PIN_LENGTH_ERROR = "PIN_LENGTH_ERROR", "The PIN length is incorrect";
    PIN_VERIFICATION_FAILED = "PIN_VERIFICATION_FAILED", "The PIN cannot be verified because the server is unreachable";
    DATA_PREPARATION_FAILED = "DATA_PREPARATION_FAILED", "The server failed to parse the request";
    PARTIAL_DATA_RECEIVED = "PARTIAL_DATA_RECEIVED", "Only part of the expected data has been received";
    NO_BRANCH_LINKED_TO_KIOSK = "NO_BRANCH_LINKED_TO_KIOSK", "The kiosk has not been linked to any branch";
    IMAGE_SERVER_ERROR = "IMAGE_SERVER_ERROR", "The image server is unreachable or failed to process the data";
    PAN_ALREADY_EXISTS = "PAN_ALREADY_EXISTS", "The PAN already exists";
    PRINTER_OR_SATELLITE_NOT_READY = "PRINTER_OR_SATELLITE_NOT_READY", "The printer or satellite is not ready to start the production";
    REQUEST_CREATED_BUT_NOT_STARTED = "REQUEST_CREATED_BUT_NOT_STARTED", "The request has been created, but production is pending until the printer or satellite is ready";
    UNABLE_TO_ACCEPT_REQUEST = "UNABLE_TO_ACCEPT_REQUEST", "The system is currently busy and cannot accept new requests at this time";
    // Production errors (PRODUCTION_ERROR).
    CB_NOT_AVAILABLE = "CB_NOT_AVAILABLE", "Main server error: central base not available";
    CB_DB_NOT_AVAILABLE = "CB_DB_NOT_AVAILABLE", "Main server error: database not available";
    CB_NETWORK_NOT_AVAILABLE = "CB_NETWORK_NOT_AVAILABLE", "Main server error: network not available";
    CB_AUTHENTICATION_FAILED = "CB_AUTHENTICATION_FAILED", "Main server error: user authentication verification failed";
    CB_SERVICE_NOT_ALLOWED = "CB_SERVICE_NOT_ALLOWED", "Main server error: the accessed service requires a higher security level";
    CB_TIME = "CB_TIME", "Main server error: timeout occurred on the Central Base side";
    DP_NOT_AVAILABLE = "DP_NOT_AVAILABLE", "Data processing error: the Data preparation module is not available";
    DP_IO_ERROR = "DP_IO_ERROR", "Data processing error: Input/Output error when communicating with the DP";
    DP_TIMEOUT = "DP_TIMEOUT", "Data processing error: timeout error";
    SAT_SERVER_NOT_REACHABLE = "SAT_SERVER_NOT_REACHABLE", "Satellite agent error: the server is not reachable";
    SAT_AUTHENTICATION_FAILED = "SAT_AUTHENTICATION_FAILED", "Satellite agent error: user authentication failed on satellite";
    SAT_NETWORK_NOT_AVAILABLE = "SAT_NETWORK_NOT_AVAILABLE", "Satellite agent error: the network is not available";
    PRT_NOT_REACHABLE = "PRT_NOT_REACHABLE", "Printer error: printer is not reachable";
    PRT_SETUP_ERROR = "PRT_SETUP_ERROR", "Printer error: printer setup is incorrect";
    PRT_TIMEOUT = "PRT_TIMEOUT", "Printer error: printer timeout";
    PRT_RIBBON = "PRT_RIBBON", "Printer error: ribbon error";
    PRT_LOCK_ERROR = "PRT_LOCK_ERROR", "Printer error: printer physically unlocked";
    PRT_RIBBON_MISSING = "PRT_RIBBON_MISSING", "Printer error: ribbon is missing";
    PRT_RIBBON_ENDED = "PRT_RIBBON_ENDED", "Printer error: ribbon has ended";
    PRT_COVER_OPEN = "PRT_COVER_OPEN", "Printer error: printer cover is open";
    PRT_PAUSED = "PRT_PAUSED", "Printer error: printer paused";
    PRD_UNEXPECTED_DATA = "PRD_UNEXPECTED_DATA", "Production error: production data is incorrect";
    PRD_FEEDER_EMPTY = "PRD_FEEDER_EMPTY", "Production error: feeder is empty";
    PRD_FEEDER_JAM = "PRD_FEEDER_JAM", "Production error: feeder card jam";
    PRD_HOPPER_FULL = "PRD_HOPPER_FULL", "Production error: hopper is full";
    PRD_HOPPER_DOOR = "PRD_HOPPER_DOOR", "Production error: hopper door is open";
    PRD_HOPPER_JAM = "PRD_HOPPER_JAM", "Production error: hopper card jam";
    PRD_MAGSTRIPE = "PRD_MAGSTRIPE", "Production error: error occurred during magstripe encoding";
    PRD_SMARTCARD = "PRD_SMARTCARD", "Production error: error occurred during chip personalization";
    PRD_EMBOSSER = "PRD_EMBOSSER", "Production error: error occurred during embossing";
    PRD_TIMEOUT = "PRD_TIMEOUT", "Production error: production timeout has been reached";
    PRD_REJECT_FULL = "PRD_REJECT_FULL", "Production error: reject box is full";
    PRD_SMARTCARD_CARD_NOT_IN_READER = "PRD_SMARTCARD_CARD_NOT_IN_READER", "Production error: card is not in reader";
    PRD_FINAL_VALIDATION_NOK = "PRD_FINAL_VALIDATION_NOK", "Production error: user has rejected card production";
    INV_NOT_INITIALIZED = "INV_NOT_INITIALIZED", "Production error: inventory not initialized";
}

impl ErrorCode {
    /// The 22 printer and production codes (`PRT_*`, `PRD_*`) the printer link can raise.
    pub fn printer_codes() -> impl Iterator<Item = ErrorCode> {
        ErrorCode::ALL
            .iter()
            .copied()
            .filter(|c| c.as_str().starts_with("PRT_") || c.as_str().starts_with("PRD_"))
    }
}

impl ErrorCode {
    /// The 36 production codes (status PRODUCTION_ERROR): every code listed
    /// after the request codes, and UNKNOWN_ERROR, which the API lists under
    /// both statuses.
    pub fn production_codes() -> impl Iterator<Item = ErrorCode> {
        let first = ErrorCode::ALL
            .iter()
            .position(|&c| c == ErrorCode::CB_NOT_AVAILABLE)
            .expect("CB_NOT_AVAILABLE opens the production codes");
        std::iter::once(ErrorCode::UNKNOWN_ERROR).chain(ErrorCode::ALL[first..].iter().copied())
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How serious a condition is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

/// A fault: the standard code, a vendor-neutral reason word (IPP style, such as
/// `media-empty`) and a human description that names the cause. Descriptions
/// never hold card data: native answers are shown with card numbers masked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fault {
    pub code: ErrorCode,
    pub reason: String,
    pub description: String,
    /// Nothing reliable was heard (the link failed, the store could not say
    /// whether it wrote): whatever the operation was to do may or may not
    /// have happened. The production engine treats the card as in doubt.
    #[serde(skip)]
    pub uncertain: bool,
}

impl Fault {
    pub fn new(code: ErrorCode, reason: impl Into<String>, description: impl Into<String>) -> Self {
        Fault {
            code,
            reason: reason.into(),
            description: description.into(),
            uncertain: false,
        }
    }

    /// The same fault, marked as one whose operation may or may not have happened.
    pub fn uncertain(self) -> Self {
        Fault {
            uncertain: true,
            ..self
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.reason, self.description)
    }
}

impl std::error::Error for Fault {}

/// The error code a cancellation by the issuer carries in the kiosk form, upstream
/// and in the local API alike.
///
/// The seed (kiosk card production status) has no status and no code for a
/// cancellation: its statuses are READY, IN_PROGRESS, PRODUCED,
/// PRODUCTION_ERROR and REQUEST_ERROR, and a REQUEST_ERROR carries one of
/// the request-error codes. A cancelled request is one that did not go
/// ahead (REQUEST_ERROR, "card production request failed"); of the seed's
/// request codes, UNKNOWN_ERROR is the only one that does not claim a fault
/// that did not happen (a duplicate, a bad field, a busy kiosk...), and the
/// agent already gives it to any error that has no code of its own. The
/// `description` says what happened ("cancelled by the issuer before
/// production started"), and the D1 form keeps the exact status
/// (`CARD_PROD_CANCELED`, no code). So every kiosk-form body validates
/// against the seed's field lists, and no receiver meets a CANCELLED status
/// or a REQUEST_ERROR without a code.
pub const CANCELLATION_CODE: ErrorCode = ErrorCode::UNKNOWN_ERROR;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn there_are_22_printer_codes() {
        let printer: Vec<_> = ErrorCode::printer_codes().collect();
        assert_eq!(printer.len(), 22, "{printer:?}");
    }

    #[test]
    fn there_are_36_production_codes() {
        let production: Vec<_> = ErrorCode::production_codes().collect();
        assert_eq!(production.len(), 36, "{production:?}");
        let distinct: std::collections::BTreeSet<_> = production.iter().collect();
        assert_eq!(distinct.len(), 36);
    }

    /// Every `.rs` file under `dir`, with its path relative to the crate.
    fn rust_files(root: &std::path::Path, dir: &str, out: &mut Vec<std::path::PathBuf>) {
        let mut stack = vec![root.join(dir)];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    out.push(path.strip_prefix(root).unwrap().to_path_buf());
                }
            }
        }
    }

    /// Whether `source` defines a test function `name`: its `fn` line under
    /// attributes and comments, one of them `#[test]` or `#[tokio::test...]`.
    fn defines_test(source: &str, name: &str) -> bool {
        let lines: Vec<&str> = source.lines().map(str::trim).collect();
        let heads = [format!("fn {name}("), format!("async fn {name}(")];
        lines.iter().enumerate().any(|(i, line)| {
            heads.iter().any(|h| line.starts_with(h.as_str()))
                && lines[..i]
                    .iter()
                    .rev()
                    .take_while(|l| l.starts_with("#[") || l.starts_with("//"))
                    .any(|l| l.starts_with("#[test]") || l.starts_with("#[tokio::test"))
        })
    }

    /// docs/ERROR-CODES.md has a row for each production code, naming tests
    /// (`file::name`) that exist, so that the page cannot drift from the code.
    #[test]
    fn the_error_codes_page_names_an_existing_test_for_every_production_code() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let page = std::fs::read_to_string(root.join("docs/ERROR-CODES.md")).unwrap();
        let section = page
            .split("## Production errors")
            .nth(1)
            .expect("the page has a production errors section");
        let section = section.split("\n## ").next().unwrap();
        let mut rows = std::collections::BTreeMap::new();
        for line in section.lines().filter(|l| l.starts_with('|')) {
            let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
            if let Ok(code) = cells[0].parse::<ErrorCode>() {
                assert_eq!(cells.len(), 3, "{code}: three cells: {line}");
                assert!(
                    rows.insert(code, cells[2].to_string()).is_none(),
                    "{code} has two rows"
                );
            }
        }
        let mut files = Vec::new();
        rust_files(root, "tests", &mut files);
        rust_files(root, "src", &mut files);
        let mut missing = Vec::new();
        for code in ErrorCode::production_codes() {
            let Some(cell) = rows.get(&code) else {
                missing.push(format!("{code}: no row"));
                continue;
            };
            let tests: Vec<&str> = cell
                .split('`')
                .skip(1)
                .step_by(2)
                .filter(|t| t.contains("::"))
                .collect();
            if tests.is_empty() {
                missing.push(format!("{code}: no test named (`file::test_name`)"));
            }
            for t in tests {
                let (file, name) = t.rsplit_once("::").unwrap();
                let path = std::path::Path::new(file);
                if !files.iter().any(|f| f == path) {
                    missing.push(format!("{code}: {file} is not in tests/ or src/"));
                    continue;
                }
                let source = std::fs::read_to_string(root.join(path)).unwrap();
                if !defines_test(&source, name) {
                    missing.push(format!("{code}: {file} has no test fn {name}"));
                }
            }
        }
        let extra: Vec<_> = rows
            .keys()
            .filter(|c| !ErrorCode::production_codes().any(|p| p == **c))
            .collect();
        assert!(missing.is_empty(), "docs/ERROR-CODES.md: {missing:#?}");
        assert!(extra.is_empty(), "not production codes: {extra:?}");
    }

    #[test]
    fn codes_round_trip_through_text_and_json() {
        for &c in ErrorCode::ALL {
            assert_eq!(c.as_str().parse::<ErrorCode>().unwrap(), c);
            assert_eq!(
                serde_json::to_string(&c).unwrap(),
                format!("\"{}\"", c.as_str())
            );
        }
        assert!("PRT_NOPE".parse::<ErrorCode>().is_err());
    }
}
