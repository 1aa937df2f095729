//! Clock helpers: Unix time as the exposition writes it. A leaf module, so that any layer may
//! read the clock without importing the one that happens to own it.

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, in Unix seconds (0 before 1970, which no clock here is).
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Unix time in seconds, with milliseconds.
pub fn unix(t: chrono::DateTime<chrono::Utc>) -> f64 {
    t.timestamp_millis() as f64 / 1000.0
}

/// Whole days in `seconds`, as people count an age.
pub fn whole_days(seconds: f64) -> i64 {
    (seconds / 86_400.0).floor() as i64
}
