//! Wall-clock helpers: unix milliseconds, RFC 3339 and UTC days.
//!
//! Small enough not to need a date crate; the civil-date arithmetic is Howard
//! Hinnant's `days_from_civil` / `civil_from_days`.

use std::time::{SystemTime, UNIX_EPOCH};

const MS_PER_DAY: u64 = 86_400_000;

/// Milliseconds since the unix epoch, by the real clock. Everything else in
/// control reads [`crate::clock::now_ms`], the one clock (which tests can move).
pub(crate) fn real_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The UTC day number (days since 1970-01-01) of `ms`.
pub(crate) fn day_of(ms: u64) -> u32 {
    (ms / MS_PER_DAY) as u32
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

/// `YYYY-MM-DD` of a day number.
pub(crate) fn format_day(day: u32) -> String {
    let (y, m, d) = civil_from_days(i64::from(day));
    format!("{y:04}-{m:02}-{d:02}")
}

/// RFC 3339 in UTC with milliseconds, e.g. `2024-05-01T12:00:00.000Z`.
pub(crate) fn format_rfc3339(ms: u64) -> String {
    let day = ms / MS_PER_DAY;
    let rem = ms % MS_PER_DAY;
    let (h, mi, s, milli) = (rem / 3_600_000, rem / 60_000 % 60, rem / 1000 % 60, rem % 1000);
    format!("{}T{h:02}:{mi:02}:{s:02}.{milli:03}Z", format_day(day as u32))
}

/// Parses unix milliseconds (all digits) or RFC 3339
/// (`YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`, or a bare `YYYY-MM-DD` for midnight UTC).
pub(crate) fn parse_time(s: &str) -> Result<u64, String> {
    let err = || format!("bad time {s:?}: give unix milliseconds or RFC 3339 (2024-05-01T12:00:00Z)");
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().map_err(|_| err());
    }
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Result<u32, String> {
        let part = s.get(r).ok_or_else(err)?;
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse().map_err(|_| err())
        } else {
            Err(err())
        }
    };
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return Err(err());
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return Err(err());
    }
    let mut secs_of_day = 0i64;
    let mut offset = 0i64;
    let mut frac_ms = 0i64;
    if b.len() > 10 {
        if !matches!(b[10], b'T' | b't' | b' ') || b.len() < 20 || b[13] != b':' || b[16] != b':' {
            return Err(err());
        }
        let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
        if h > 23 || mi > 59 || sec > 60 {
            return Err(err());
        }
        secs_of_day = i64::from(h * 3600 + mi * 60 + sec);
        let mut i = 19;
        if b[i] == b'.' {
            i += 1;
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            if i == start {
                return Err(err());
            }
            let digits = &s[start..i.min(start + 3)];
            frac_ms = i64::from(num(start..start + digits.len())?) * 10i64.pow(3 - digits.len() as u32);
        }
        match b.get(i) {
            Some(b'Z' | b'z') if i + 1 == b.len() => {}
            Some(sign @ (b'+' | b'-')) if b.len() == i + 6 && b[i + 3] == b':' => {
                let (oh, om) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
                let o = i64::from(oh * 3600 + om * 60);
                offset = if *sign == b'+' { o } else { -o };
            }
            _ => return Err(err()),
        }
    }
    let days = days_from_civil(i64::from(y), mo, d);
    let ms = (days * 86_400 + secs_of_day - offset) * 1000 + frac_ms;
    u64::try_from(ms).map_err(|_| err())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00.000Z");
        let t = 1_714_564_800_123;
        assert_eq!(format_rfc3339(t), "2024-05-01T12:00:00.123Z");
        assert_eq!(parse_time("2024-05-01T12:00:00.123Z"), Ok(t));
        assert_eq!(parse_time("2024-05-01T14:00:00.123+02:00"), Ok(t));
        assert_eq!(parse_time("2024-05-01T12:00:00.1234567Z"), Ok(t));
        assert_eq!(parse_time("2024-05-01"), Ok(1_714_521_600_000));
        assert_eq!(parse_time("1714564800123"), Ok(t));
        assert_eq!(format_day(day_of(t)), "2024-05-01");
        assert_eq!(format_day(day_of(951_782_400_000)), "2000-02-29");
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "yesterday",
            "2024-13-01",
            "2024-05-01T12:00",
            "2024-05-01T12:00:00",
            "2024-05-01T12:00:00+0200",
        ] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
    }
}
