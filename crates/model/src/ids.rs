//! Identifiers and timestamps in the API's formats.

/// True for exactly 32 lowercase or uppercase hex digits (Cloudflare's capture and ownership ids).
pub fn is_id(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|c| c.is_ascii_hexdigit())
}

/// Formats seconds since the Unix epoch (with fraction) as RFC 3339 UTC, e.g.
/// `2026-11-25T07:30:00.123456Z`.
pub fn rfc3339(unix_secs: f64) -> String {
    let secs = unix_secs.floor() as i64;
    let micros = ((unix_secs - secs as f64) * 1e6).round().min(999_999.0) as u32;
    let days = secs.div_euclid(86_400);
    let tod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        tod / 3600,
        tod % 3600 / 60,
        tod % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339(0.0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(rfc3339(1_795_592_400.5), "2026-11-25T07:40:00.500000Z");
        assert_eq!(rfc3339(951_782_400.0), "2000-02-29T00:00:00.000000Z");
    }

    #[test]
    fn ids() {
        assert!(is_id("6d1f0aac13cd40e3900d29f5dd0e8a2b"));
        assert!(!is_id("6d1f0aac13cd40e3900d29f5dd0e8a2"));
        assert!(!is_id("6d1f0aac13cd40e3900d29f5dd0e8a2g"));
    }
}
