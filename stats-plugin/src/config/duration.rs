//! `tcp_reporting_duration` parsing, as Istio does it: `absl::ParseDuration` on the JSON string,
//! then `uint32_t(duration / absl::Milliseconds(1))` (`extensions/stats/plugin.cc:505-519`).

/// Parses an absl duration string (`"15s"`, `"500ms"`, `"1.5s"`, `"1h30m"`, `"-2s"`, `"0"`,
/// `"inf"`) into whole milliseconds truncated toward zero, converted to `u32` the way C++ converts
/// an `int64_t` to `uint32_t` (modulo 2^32). `None` if absl would reject the text.
pub fn parse_duration_ms(text: &str) -> Option<u32> {
    let ns = parse_duration_ns(text)?;
    let ms = ns / 1_000_000; // i128 division truncates toward zero, like absl's IDivDuration
    let ms = ms.clamp(i64::MIN as i128, i64::MAX as i128) as i64;
    Some(ms as u32)
}

/// Nanoseconds (saturated for `inf`) of an absl duration string.
fn parse_duration_ns(text: &str) -> Option<i128> {
    let (negative, rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest == "inf" {
        let inf = i64::MAX as i128 * 1_000_000;
        return Some(if negative { -inf } else { inf });
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: i128 = 0;
    let mut s = rest;
    while !s.is_empty() {
        let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
        let (int_part, after_int) = s.split_at(int_len);
        let (frac_part, after_num) = match after_int.strip_prefix('.') {
            Some(f) => {
                let n = f.bytes().take_while(u8::is_ascii_digit).count();
                f.split_at(n)
            }
            None => ("", after_int),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return None;
        }
        let unit_len = after_num
            .bytes()
            .take_while(|b| b.is_ascii_alphabetic())
            .count();
        let (unit, next) = after_num.split_at(unit_len);
        let unit_ns: i128 = match unit {
            "ns" => 1,
            "us" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return None,
        };
        let int_value: i128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse::<i128>().ok()?
        };
        let mut value = int_value.checked_mul(unit_ns)?;
        // Fractional digits beyond nanosecond precision are dropped, as absl does.
        let mut scale = unit_ns;
        for d in frac_part.bytes().take(30) {
            scale /= 10;
            if scale == 0 {
                break;
            }
            value = value.checked_add(i128::from(d - b'0') * scale)?;
        }
        total = total.checked_add(value)?;
        s = next;
    }
    Some(if negative { -total } else { total })
}

#[cfg(test)]
mod tests {
    use super::parse_duration_ms;

    #[test]
    fn absl_forms() {
        assert_eq!(parse_duration_ms("15s"), Some(15_000));
        assert_eq!(parse_duration_ms("500ms"), Some(500));
        assert_eq!(parse_duration_ms("1.5s"), Some(1_500));
        assert_eq!(parse_duration_ms("1h"), Some(3_600_000));
        assert_eq!(parse_duration_ms("1h30m"), Some(5_400_000));
        assert_eq!(parse_duration_ms("0"), Some(0));
        assert_eq!(parse_duration_ms("999us"), Some(0));
        // A negative duration wraps like int64 -> uint32 in C++: -1000 ms -> 2^32 - 1000.
        assert_eq!(parse_duration_ms("-1s"), Some(u32::MAX - 999));
    }

    #[test]
    fn rejects_what_absl_rejects() {
        for bad in ["", "15", "s", "1x", "1.s.", "abc", "1 s", "."] {
            assert_eq!(parse_duration_ms(bad), None, "{bad:?}");
        }
    }
}
