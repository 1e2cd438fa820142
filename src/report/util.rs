//! Small formatting helpers shared by the writers: escaping and UTC dates
//! (kept here so the crate needs no date library).

/// `YYYY-MM-DD HH:MM:SS` (UTC) for milliseconds since the Unix epoch.
pub fn utc_datetime(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// RFC 3339 UTC timestamp.
pub(crate) fn rfc3339(unix_ms: u64) -> String {
    let s = utc_datetime(unix_ms);
    format!("{}T{}.{:03}Z", &s[..10], &s[11..], unix_ms % 1000)
}

// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Escapes text for XML/HTML content and attributes.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\r' | '\t') => {}
            c => out.push(c),
        }
    }
    out
}

/// µs as milliseconds with µs precision.
pub(crate) fn ms(us: u64) -> String {
    format!("{:.3}", us as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_escaping() {
        assert_eq!(utc_datetime(0), "1970-01-01 00:00:00");
        assert_eq!(utc_datetime(1_709_210_096_123), "2024-02-29 12:34:56");
        assert_eq!(rfc3339(1_709_210_096_123), "2024-02-29T12:34:56.123Z");
        assert_eq!(escape("a<b & \"c\"\u{1}"), "a&lt;b &amp; &quot;c&quot;");
    }
}

/// siege's summary figures with siege's labels and units, for the table
/// renderings (the terminal text keeps siege's own tab layout).
pub(crate) fn siege_figures(s: &crate::load::LoadSummary) -> [(&'static str, String); 12] {
    [
        ("Transactions", format!("{} hits", s.transactions())),
        ("Availability", format!("{:.2} %", s.availability())),
        ("Elapsed time", format!("{:.6} secs", s.elapsed_time())),
        ("Data transferred", format!("{:.6} MB", s.data_transferred())),
        ("Response time", format!("{:.6} secs", s.response_time())),
        ("Transaction rate", format!("{:.2} trans/sec", s.transaction_rate())),
        ("Throughput", format!("{:.6} MB/sec", s.throughput())),
        ("Concurrency", format!("{:.2}", s.concurrency())),
        ("Successful transactions", s.successful_transactions().to_string()),
        ("Failed transactions", s.failed_transactions().to_string()),
        ("Longest transaction", format!("{:.6}", s.longest_transaction())),
        ("Shortest transaction", format!("{:.6}", s.shortest_transaction())),
    ]
}
