//! Matching the credential report's key slots to AccessKeyIds.
//!
//! The report has no key ids, only each slot's creation time (`access_key_N_last_rotated`, to the
//! second) and status. ListAccessKeys has ids, creation times and statuses, but its order says
//! nothing about slots. So a slot matches the key created in the same second, preferring one with
//! the same status where two keys share the second; a slot whose key was deleted since the report
//! matches nothing, and a key created since the report is left for the next report.

use chrono::{DateTime, DurationRound, TimeDelta, Utc};

use super::credential_report::ReportRow;
use crate::aws::iam::ListedKey;

/// The result for one report slot that holds a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotMatch {
    /// 1 or 2, the report's column.
    pub slot: u8,
    /// None when no listed key fits: it was deleted after the report was generated.
    pub key_id: Option<String>,
    /// True when two keys fit equally well (same second, same status), so the choice between
    /// them was arbitrary. Their exported values are then identical but for `last_used`.
    pub ambiguous: bool,
}

pub fn match_slots(row: &ReportRow, listed: &[ListedKey]) -> Vec<SlotMatch> {
    let second = |t: DateTime<Utc>| t.duration_trunc(TimeDelta::seconds(1)).unwrap_or(t);
    let slots: Vec<_> = row.present_keys().collect();
    let mut taken = vec![false; listed.len()];
    let mut result: Vec<SlotMatch> = slots
        .iter()
        .map(|(slot, _)| SlotMatch {
            slot: *slot,
            key_id: None,
            ambiguous: false,
        })
        .collect();

    // Pass 0: same second and same status, and only one such key. Pass 1: same second.
    for strict in [true, false] {
        for (i, (_, ks)) in slots.iter().enumerate() {
            if result[i].key_id.is_some() {
                continue;
            }
            let Some(rotated) = ks.last_rotated else {
                continue;
            };
            let candidates: Vec<usize> = listed
                .iter()
                .enumerate()
                .filter(|(j, k)| {
                    !taken[*j]
                        && second(k.created) == second(rotated)
                        && (!strict || k.active == ks.active)
                })
                .map(|(j, _)| j)
                .collect();
            if candidates.is_empty() || (strict && candidates.len() > 1) {
                continue;
            }
            let j = candidates[0];
            taken[j] = true;
            result[i].key_id = Some(listed[j].id.clone());
            result[i].ambiguous = candidates.len() > 1;
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collector::iam::credential_report::KeySlot;
    use chrono::TimeZone;

    fn at(s: u32, ms: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, s).unwrap() + TimeDelta::milliseconds(ms.into())
    }

    fn row(slots: [Option<(DateTime<Utc>, bool)>; 2]) -> ReportRow {
        let slot = |s: Option<(DateTime<Utc>, bool)>| match s {
            Some((t, active)) => KeySlot {
                active,
                last_rotated: Some(t),
                ..KeySlot::default()
            },
            None => KeySlot::default(),
        };
        ReportRow {
            user: "u".into(),
            arn: "arn:aws:iam::123456789012:user/u".into(),
            user_creation_time: None,
            password_enabled: None,
            password_last_used: None,
            password_last_changed: None,
            mfa_active: false,
            keys: [slot(slots[0]), slot(slots[1])],
        }
    }

    fn key(id: &str, created: DateTime<Utc>, active: bool) -> ListedKey {
        ListedKey {
            id: id.into(),
            created,
            active,
        }
    }

    fn ids(m: &[SlotMatch]) -> Vec<(u8, Option<&str>)> {
        m.iter().map(|m| (m.slot, m.key_id.as_deref())).collect()
    }

    #[test]
    fn matches_by_creation_second_not_by_order() {
        let r = row([Some((at(10, 0), true)), Some((at(20, 0), true))]);
        // ListAccessKeys lists them the other way round, with sub-second creation times.
        let listed = [
            key("AKIA2", at(20, 731), true),
            key("AKIA1", at(10, 999), true),
        ];
        assert_eq!(
            ids(&match_slots(&r, &listed)),
            [(1, Some("AKIA1")), (2, Some("AKIA2"))]
        );
    }

    #[test]
    fn same_second_resolved_by_status() {
        let r = row([Some((at(10, 0), false)), Some((at(10, 0), true))]);
        let listed = [
            key("AKIA_ACTIVE", at(10, 100), true),
            key("AKIA_INACTIVE", at(10, 200), false),
        ];
        let m = match_slots(&r, &listed);
        assert_eq!(
            ids(&m),
            [(1, Some("AKIA_INACTIVE")), (2, Some("AKIA_ACTIVE"))]
        );
        assert!(m.iter().all(|m| !m.ambiguous));
    }

    #[test]
    fn same_second_same_status_is_flagged_ambiguous() {
        let r = row([Some((at(10, 0), true)), Some((at(10, 0), true))]);
        let listed = [key("AKIAA", at(10, 1), true), key("AKIAB", at(10, 2), true)];
        let m = match_slots(&r, &listed);
        let got: std::collections::BTreeSet<_> =
            m.iter().filter_map(|m| m.key_id.clone()).collect();
        assert_eq!(got.len(), 2, "each key is used once: {m:?}");
        assert!(m[0].ambiguous);
    }

    #[test]
    fn key_deleted_since_report_matches_nothing() {
        let r = row([Some((at(10, 0), true)), Some((at(20, 0), true))]);
        let listed = [key("AKIA2", at(20, 0), true)];
        assert_eq!(
            ids(&match_slots(&r, &listed)),
            [(1, None), (2, Some("AKIA2"))]
        );
    }

    #[test]
    fn key_created_since_report_is_ignored() {
        let r = row([Some((at(10, 0), true)), None]);
        let listed = [
            key("AKIA1", at(10, 0), true),
            key("AKIANEW", at(59, 0), true),
        ];
        assert_eq!(ids(&match_slots(&r, &listed)), [(1, Some("AKIA1"))]);
    }

    #[test]
    fn status_changed_since_report_still_matches_by_time() {
        let r = row([Some((at(10, 0), true)), None]);
        let listed = [key("AKIA1", at(10, 0), false)];
        assert_eq!(ids(&match_slots(&r, &listed)), [(1, Some("AKIA1"))]);
    }

    #[test]
    fn slot_two_only() {
        let r = row([None, Some((at(30, 0), false))]);
        let listed = [key("AKIA9", at(30, 0), false)];
        assert_eq!(ids(&match_slots(&r, &listed)), [(2, Some("AKIA9"))]);
    }

    #[test]
    fn rotation_replaced_the_key_in_the_same_slot() {
        // Report still shows the old key; ListAccessKeys shows only a newer one.
        let r = row([Some((at(10, 0), true)), None]);
        let listed = [key("AKIANEW", at(11, 0), true)];
        assert_eq!(ids(&match_slots(&r, &listed)), [(1, None)]);
    }
}
