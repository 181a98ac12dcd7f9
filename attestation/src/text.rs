//! Small text helpers: UTC timestamps, one-line sanitising of untrusted strings, JSON strings.

use std::fmt::Write as _;

/// 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z: the range X.509 times can express.
const MIN_UNIX: i64 = -62_135_596_800;
const MAX_UNIX: i64 = 253_402_300_799;

/// Formats unix seconds as RFC 3339 UTC (`2024-08-01T17:21:54Z`). Values outside years
/// 1..=9999 are clamped, which keeps every intermediate below overflow.
#[allow(clippy::arithmetic_side_effects)] // bounded by the clamp above
pub(crate) fn rfc3339(unix: i64) -> String {
    let t = unix.clamp(MIN_UNIX, MAX_UNIX);
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}

/// Same as [`rfc3339`] for an unsigned verification time.
pub(crate) fn rfc3339_u(unix: u64) -> String {
    rfc3339(i64::try_from(unix).unwrap_or(i64::MAX))
}

/// Milliseconds since the epoch as RFC 3339 with millisecond precision.
#[allow(clippy::arithmetic_side_effects)] // division/remainder by non-zero constants
pub(crate) fn rfc3339_ms(ms: u64) -> String {
    let base = rfc3339_u(ms / 1000);
    let frac = ms % 1000;
    match base.strip_suffix('Z') {
        Some(b) => format!("{b}.{frac:03}Z"),
        None => base,
    }
}

/// Gregorian date from days since 1970-01-01. Works in 400-year cycles (146 097 days) counted
/// from 0000-03-01, so that the leap day is the last day of each shifted year.
#[allow(clippy::arithmetic_side_effects)] // |days| < 3.7 million after the clamp
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    // Days from 0000-03-01 to 1970-01-01.
    let z = days + 719_468;
    let cycle = z.div_euclid(146_097);
    let day_of_cycle = z.rem_euclid(146_097); // 0..=146096
    // Year within the cycle: subtract the leap days accumulated so far.
    let year_of_cycle =
        (day_of_cycle - day_of_cycle / 1460 + day_of_cycle / 36_524 - day_of_cycle / 146_096) / 365; // 0..=399
    let day_of_year =
        day_of_cycle - (365 * year_of_cycle + year_of_cycle / 4 - year_of_cycle / 100); // 0..=365
    // Months counted from March; 153 days per 5 months.
    let mp = (5 * day_of_year + 2) / 153; // 0..=11
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_cycle + cycle * 400 + i64::from(month <= 2);
    (
        year,
        u32::try_from(month).unwrap_or(1),
        u32::try_from(day).unwrap_or(1),
    )
}

/// Makes an untrusted string safe for a one-line error message: control characters (which
/// could forge extra log lines or terminal escapes) become `?`, and length is capped.
pub(crate) fn one_line(s: &str, max_chars: usize) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i >= max_chars {
            out.push('…');
            break;
        }
        out.push(if is_unsafe_in_a_line(c) { '?' } else { c });
    }
    out
}

/// Control characters, Unicode line/paragraph separators (which some viewers treat as line
/// breaks) and bidirectional overrides (which can make a log line read differently from what
/// it contains).
fn is_unsafe_in_a_line(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

/// Appends `s` as a JSON string literal. Quotes, backslashes and control characters are
/// escaped, so untrusted text (module_id) cannot break out of the string.
pub(crate) fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 || c == '\u{7f}' || c == '\u{2028}' || c == '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_722_457_107), "2024-07-31T20:18:27Z");
        assert_eq!(rfc3339(1_665_651_482), "2022-10-13T08:58:02Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(4_107_542_400), "2100-03-01T00:00:00Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
        assert_eq!(rfc3339(i64::MAX), "9999-12-31T23:59:59Z");
        assert_eq!(rfc3339(i64::MIN), "0001-01-01T00:00:00Z");
        assert_eq!(rfc3339_ms(1_665_651_482_136), "2022-10-13T08:58:02.136Z");
        assert_eq!(rfc3339_u(u64::MAX), "9999-12-31T23:59:59Z");
    }

    #[test]
    fn every_day_round_trips_through_a_simple_count() {
        // Walk 1900..2200 day by day and compare with a naive calendar.
        let mut days = -25_567i64; // 1900-01-01
        for year in 1900..2200i64 {
            let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
            let lens = [
                31,
                if leap { 29 } else { 28 },
                31,
                30,
                31,
                30,
                31,
                31,
                30,
                31,
                30,
                31,
            ];
            for (m, len) in lens.iter().enumerate() {
                for d in 1..=*len {
                    assert_eq!(civil_from_days(days), (year, m as u32 + 1, d));
                    days += 1;
                }
            }
        }
    }

    #[test]
    fn one_line_strips_controls_and_caps() {
        assert_eq!(one_line("a\nb\x1b[31m", 100), "a?b?[31m");
        assert_eq!(one_line("abcdef", 3), "abc…");
        assert_eq!(one_line("a\u{2028}b\u{202e}c", 10), "a?b?c");
    }

    #[test]
    fn json_escapes() {
        let mut s = String::new();
        json_string(&mut s, "a\"b\\c\nd\u{1}é");
        assert_eq!(s, r#""a\"b\\c\nd\u0001é""#);
    }
}
