//! The one range check of configuration values. Its error says the range in the words users'
//! scripts already read: "must be between 1 and 100", "must be between 1s and 1h", "must be at
//! least 1s", "must be at most 24", "must be between 0 (no limit) and 10000".

use std::ops::{RangeFrom, RangeInclusive, RangeToInclusive};
use std::time::Duration;

use super::Invalid;

pub(super) const SECOND: Duration = Duration::from_secs(1);
pub(super) const MINUTE: Duration = Duration::from_secs(60);
pub(super) const HOUR: Duration = Duration::from_secs(3_600);
pub(super) const DAY: Duration = Duration::from_secs(86_400);

/// Intervals and timeouts of collectors and discovery: from 1s to 30d (an interval of centuries
/// would overflow the scheduler's clock).
pub(super) const INTERVALS: RangeInclusive<Duration> = SECOND..=Duration::from_secs(30 * 86_400);

/// `value` within `limits`, or an error at `key` that says the limits: `1..=100` "must be
/// between 1 and 100", `SECOND..` "must be at least 1s", `..=24` "must be at most 24".
pub(super) fn in_range<T: Shown>(
    key: &str,
    value: T,
    limits: impl Limits<T>,
) -> Result<(), Invalid> {
    if limits.allow(&value) {
        Ok(())
    } else {
        Err(Invalid::new(key, limits.says()))
    }
}

/// `..=max` where 0 turns the limit off: "must be between 0 (no limit) and {max}".
pub(super) struct ZeroIsNoLimit(pub RangeToInclusive<usize>);

/// Limits and how an error says them.
pub(super) trait Limits<T> {
    fn allow(&self, value: &T) -> bool;
    fn says(&self) -> String;
}

impl<T: Shown> Limits<T> for RangeInclusive<T> {
    fn allow(&self, value: &T) -> bool {
        self.contains(value)
    }

    fn says(&self) -> String {
        format!(
            "must be between {} and {}",
            self.start().shown(),
            self.end().shown()
        )
    }
}

impl<T: Shown> Limits<T> for RangeFrom<T> {
    fn allow(&self, value: &T) -> bool {
        self.contains(value)
    }

    fn says(&self) -> String {
        format!("must be at least {}", self.start.shown())
    }
}

impl<T: Shown> Limits<T> for RangeToInclusive<T> {
    fn allow(&self, value: &T) -> bool {
        self.contains(value)
    }

    fn says(&self) -> String {
        format!("must be at most {}", self.end.shown())
    }
}

impl Limits<usize> for ZeroIsNoLimit {
    fn allow(&self, value: &usize) -> bool {
        self.0.contains(value)
    }

    fn says(&self) -> String {
        format!("must be between 0 (no limit) and {}", self.0.end)
    }
}

/// A value as an error shows it.
pub(super) trait Shown: PartialOrd {
    fn shown(&self) -> String;
}

impl Shown for usize {
    fn shown(&self) -> String {
        self.to_string()
    }
}

impl Shown for u32 {
    fn shown(&self) -> String {
        self.to_string()
    }
}

/// In the largest unit that divides it, as the configuration writes durations and humantime
/// reads them: 1s, 15m, 12h, 30d.
impl Shown for Duration {
    fn shown(&self) -> String {
        let secs = self.as_secs();
        if secs == 0 || self.subsec_nanos() != 0 {
            return humantime::format_duration(*self).to_string();
        }
        for (unit, size) in [("d", DAY), ("h", HOUR), ("m", MINUTE)] {
            if secs.is_multiple_of(size.as_secs()) {
                return format!("{}{unit}", secs / size.as_secs());
            }
        }
        format!("{secs}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn says<T: Shown>(value: T, limits: impl Limits<T>) -> Option<String> {
        in_range("k", value, limits).err().map(|e| e.message)
    }

    #[test]
    fn each_form_says_its_limits_and_keeps_its_ends() {
        assert_eq!(says(1_usize, 1..=100), None);
        assert_eq!(says(100_usize, 1..=100), None);
        assert_eq!(says(0_usize, 1..=100).unwrap(), "must be between 1 and 100");
        assert_eq!(says(101_u32, 1..=100).unwrap(), "must be between 1 and 100");
        assert_eq!(says(SECOND, SECOND..), None);
        let just_under = SECOND - Duration::from_nanos(1);
        assert_eq!(says(just_under, SECOND..).unwrap(), "must be at least 1s");
        assert_eq!(says(24_u32, ..=24), None);
        assert_eq!(says(25_u32, ..=24).unwrap(), "must be at most 24");
        assert_eq!(says(0, ZeroIsNoLimit(..=10_000)), None);
        let e = says(10_001, ZeroIsNoLimit(..=10_000)).unwrap();
        assert_eq!(e, "must be between 0 (no limit) and 10000");
        let e = in_range("aws.max_attempts", 0_u32, 1..=20).unwrap_err();
        assert_eq!(
            (e.key.as_str(), e.message.as_str()),
            ("aws.max_attempts", "must be between 1 and 20")
        );
    }

    #[test]
    fn durations_are_shown_in_the_largest_unit_that_divides_them() {
        for (d, shown) in [
            (SECOND, "1s"),
            (MINUTE * 15, "15m"),
            (HOUR, "1h"),
            (HOUR * 12, "12h"),
            (DAY, "1d"),
            (DAY * 30, "30d"),
            (DAY * 1095, "1095d"),
            (HOUR * 36, "36h"),
            (SECOND * 90, "90s"),
            (Duration::from_millis(1500), "1s 500ms"),
            (Duration::ZERO, "0s"),
        ] {
            assert_eq!(d.shown(), shown);
            assert_eq!(humantime::parse_duration(shown).unwrap(), d, "{shown}");
        }
    }
}
