//! Parsing of human quantities on the command line: durations, counts and sizes. A crate of
//! its own so the `edgecap` binary and the benchmarks (`edgecap-bench`) read `10MB` alike.

use std::time::Duration;

/// `30s`, `5m`, `1h30m`, `500ms`, `2.5s`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("is empty (expected e.g. 30s, 5m, 500ms)".into());
    }
    if let Ok(secs) = s.parse::<f64>() {
        return secs_to_duration(secs, s);
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_end == 0 {
            return Err(format!(
                "{s:?} is not a duration (expected e.g. 30s, 5m, 1h30m, 500ms)"
            ));
        }
        let value: f64 = rest[..num_end]
            .parse()
            .map_err(|_| format!("{s:?} is not a duration (expected e.g. 30s, 5m, 500ms)"))?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_end] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            u => {
                return Err(format!(
                    "unknown unit {u:?} in {s:?} (use ms, s, m, h or d)"
                ));
            }
        };
        total += value * factor;
        rest = &rest[unit_end..];
    }
    secs_to_duration(total, s)
}

fn secs_to_duration(secs: f64, s: &str) -> Result<Duration, String> {
    if !secs.is_finite() || secs <= 0.0 {
        return Err(format!("{s:?} must be greater than zero"));
    }
    Duration::try_from_secs_f64(secs).map_err(|_| format!("{s:?} is too large"))
}

/// A positive integer count such as `1000` (underscores allowed).
pub fn parse_count(s: &str) -> Result<u64, String> {
    let t = s.trim().replace('_', "");
    if t.starts_with('-') {
        return Err(format!("{s} must be greater than zero"));
    }
    let n: u64 = t
        .parse()
        .map_err(|_| format!("{s:?} is not a whole number"))?;
    if n == 0 {
        return Err("0 must be greater than zero".into());
    }
    Ok(n)
}

/// A positive size in bytes: `1000`, `10kB`, `10MB`, `1GB` (powers of 1000), `4KiB`, `1MiB`,
/// `1GiB` (powers of 1024).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    if t.starts_with('-') {
        return Err(format!("{s} must be greater than zero"));
    }
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '_')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .replace('_', "")
        .parse()
        .map_err(|_| format!("{s:?} is not a size (expected e.g. 1000000, 10MB, 1GiB)"))?;
    let factor: u64 = match unit.trim() {
        "" | "B" => 1,
        "k" | "kB" | "KB" => 1_000,
        "M" | "MB" => 1_000_000,
        "G" | "GB" => 1_000_000_000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        u => {
            return Err(format!(
                "unknown size unit {u:?} in {s:?} (use kB, MB, GB, KiB, MiB, GiB)"
            ));
        }
    };
    let v = n
        .checked_mul(factor)
        .ok_or_else(|| format!("{s:?} is too large"))?;
    if v == 0 {
        return Err(format!("{s} must be greater than zero"));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("2.5s"), Ok(Duration::from_millis(2500)));
        assert!(
            parse_duration("0")
                .unwrap_err()
                .contains("greater than zero")
        );
        assert!(parse_duration("-5s").is_err());
        assert!(parse_duration("5y").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn counts_and_sizes() {
        assert_eq!(parse_count("1000"), Ok(1000));
        assert_eq!(parse_count("1_000"), Ok(1000));
        assert!(parse_count("0").unwrap_err().contains("greater than zero"));
        assert!(parse_count("-3").unwrap_err().contains("greater than zero"));
        assert!(parse_count("ten").is_err());
        assert_eq!(parse_size("10MB"), Ok(10_000_000));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("1500"), Ok(1500));
        assert!(parse_size("0").is_err());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("3 parsecs").is_err());
    }
}
