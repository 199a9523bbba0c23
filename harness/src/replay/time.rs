//! RFC 3339 timestamps → ns since the Unix epoch (`request.time`).
//!
//! A small strict parser: `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`, `T`/`t`/space between date
//! and time, `Z`/`z` for UTC (RFC 3339 §5.6). Leap seconds (`:60`) are accepted and folded into
//! the next second, as most clocks do. Fractions beyond nanoseconds are truncated.

/// 2020-01-01T00:00:00Z: where a traffic file without `start` fields begins.
pub const DEFAULT_EPOCH_NS: i64 = 1_577_836_800_000_000_000;

/// Parses an RFC 3339 date-time into ns since 1970-01-01T00:00:00Z.
pub fn parse_rfc3339(s: &str) -> Result<i64, String> {
    let b = s.as_bytes();
    let bad = |what: &str| format!("invalid RFC 3339 time {s:?}: {what}");
    if b.len() < 20 {
        return Err(bad("too short (want YYYY-MM-DDTHH:MM:SSZ)"));
    }
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = b.get(from..from + len)?;
        part.iter().try_fold(0i64, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
        })
    };
    let sep = |at: usize, want: &[u8]| b.get(at).is_some_and(|c| want.contains(c));
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt ") && sep(13, b":") && sep(16, b":")) {
        return Err(bad("expected YYYY-MM-DDTHH:MM:SS"));
    }
    let (Some(year), Some(month), Some(day), Some(hour), Some(minute), Some(second)) = (
        num(0, 4),
        num(5, 2),
        num(8, 2),
        num(11, 2),
        num(14, 2),
        num(17, 2),
    ) else {
        return Err(bad("non-digit in date or time"));
    };
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return Err(bad("no such date"));
    }
    if hour > 23 || minute > 59 || second > 60 {
        return Err(bad("no such time of day"));
    }
    let mut i = 19;
    let mut nanos = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        let mut scale = 100_000_000i64;
        while let Some(c) = b.get(i).filter(|c| c.is_ascii_digit()) {
            nanos += i64::from(c - b'0') * scale;
            scale /= 10;
            i += 1;
        }
        if i == start {
            return Err(bad("empty fraction"));
        }
    }
    let offset_s = match b.get(i) {
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(&sign @ (b'+' | b'-')) if i + 6 == b.len() && sep(i + 3, b":") => {
            let (Some(oh), Some(om)) = (num(i + 1, 2), num(i + 4, 2)) else {
                return Err(bad("bad UTC offset"));
            };
            if oh > 23 || om > 59 {
                return Err(bad("bad UTC offset"));
            }
            let off = oh * 3600 + om * 60;
            if sign == b'+' {
                off
            } else {
                -off
            }
        }
        _ => return Err(bad("expected Z or ±HH:MM after the time")),
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_s;
    secs.checked_mul(1_000_000_000)
        .and_then(|ns| ns.checked_add(nanos))
        .ok_or_else(|| bad("out of range"))
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(y) => 29,
        _ => 28,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (the usual era-based computation:
/// shift the year to start in March so the leap day is last).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_and_default_start() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_rfc3339("2020-01-01T00:00:00Z"), Ok(DEFAULT_EPOCH_NS));
    }

    #[test]
    fn book_access_log_time() {
        // 2025-04-20T04:22:24.317Z: 2025-04-20 is day 20198 since 1970 (55 years incl. 14 leap
        // days = 20089 days to 2025-01-01, + 109 days to April 20), 20198*86400 = 1745107200 s,
        // + 4:22:24 = 15744 s.
        assert_eq!(
            parse_rfc3339("2025-04-20T04:22:24.317Z"),
            Ok(1_745_122_944_317_000_000)
        );
    }

    #[test]
    fn offsets_fractions_and_separators() {
        let utc = parse_rfc3339("2025-04-20T04:22:24Z").unwrap();
        assert_eq!(parse_rfc3339("2025-04-20T06:22:24+02:00"), Ok(utc));
        assert_eq!(parse_rfc3339("2025-04-19T23:52:24-04:30"), Ok(utc));
        assert_eq!(parse_rfc3339("2025-04-20 04:22:24z"), Ok(utc));
        assert_eq!(parse_rfc3339("2025-04-20t04:22:24.000000001Z"), Ok(utc + 1));
        assert_eq!(
            parse_rfc3339("2025-04-20T04:22:24.1234567899Z"),
            Ok(utc + 123_456_789)
        );
        // Leap day.
        assert_eq!(
            parse_rfc3339("2024-03-01T00:00:00Z").unwrap()
                - parse_rfc3339("2024-02-29T00:00:00Z").unwrap(),
            86_400_000_000_000
        );
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "2025-04-20",
            "2025-04-20T04:22:24",
            "2025-04-20T04:22:24.Z",
            "2025-13-01T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2025-04-20T24:00:00Z",
            "2025-04-20T04:22:24+0200",
            "2025-04-20T04:22:24Zjunk",
            "2025/04/20T04:22:24Z",
            "２０25-04-20T04:22:24Z",
        ] {
            assert!(parse_rfc3339(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
