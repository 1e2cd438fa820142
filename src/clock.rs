//! Wall-clock time as stormproof writes it: RFC 3339 timestamps in journals,
//! events and statuses, and the sortable stamps that name report folders.

/// The current time as RFC 3339 (UTC).
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

/// A sortable, unique-enough folder name for a run: UTC time to the
/// millisecond, e.g. `20261123T171839-815`.
pub fn stamp() -> String {
    now_rfc3339().replace([':', '-'], "").replace('.', "-").chars().take(19).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_stamp_is_date_time_and_milliseconds() {
        let stamp = super::stamp();
        assert_eq!(stamp.len(), 19, "{stamp}");
        assert_eq!(&stamp[8..9], "T", "{stamp}");
        assert!(stamp[..8].chars().all(|c| c.is_ascii_digit()) && stamp[16..].chars().all(|c| c.is_ascii_digit()), "{stamp}");
    }
}
