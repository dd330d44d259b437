//! Wall-clock time as the API writes it (RFC 3339, UTC, milliseconds).

/// Now, as `2024-01-01T12:24:56.121Z`.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

/// A time, as [`now_rfc3339`] writes it.
pub fn rfc3339(t: std::time::SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}
