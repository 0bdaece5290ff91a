//! Wall-clock timestamps as the API and the database store them: RFC 3339 UTC with
//! microseconds and a fixed width, so that text order is time order (the deadline sweep
//! compares them as strings in SQL).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// Now, as stored.
pub fn now() -> String {
    edgecap_model::ids::rfc3339(unix_now())
}

/// Now plus `d`, as stored.
pub fn after(d: Duration) -> String {
    edgecap_model::ids::rfc3339(unix_now() + d.as_secs_f64())
}

/// A duration the way people write it: `10s`, `1m30s`, `250ms`.
pub fn human(d: Duration) -> String {
    let ms = d.as_millis();
    if !ms.is_multiple_of(1000) {
        return if ms < 1000 {
            format!("{ms}ms")
        } else {
            format!("{:.1}s", d.as_secs_f64())
        };
    }
    let s = d.as_secs();
    match (s / 3600, s % 3600 / 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, 0, 0) => format!("{h}h"),
        (h, m, s) => format!("{h}h{m}m{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations() {
        assert_eq!(human(Duration::from_secs(10)), "10s");
        assert_eq!(human(Duration::from_secs(90)), "1m30s");
        assert_eq!(human(Duration::from_secs(120)), "2m");
        assert_eq!(human(Duration::from_millis(250)), "250ms");
        assert_eq!(human(Duration::from_millis(1500)), "1.5s");
        assert_eq!(human(Duration::from_secs(3600)), "1h");
    }

    #[test]
    fn stamps_sort_as_text() {
        let a = now();
        let b = after(Duration::from_secs(1));
        assert!(a < b, "{a} {b}");
        assert_eq!(a.len(), b.len());
    }
}
