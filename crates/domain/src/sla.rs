//! The SLA table: what each carrier promises for each operation.
//!
//! `max` is the promise (the SLA deadline); `min` is the earliest a change
//! usually completes (the simulator draws completion times between the two).
//! Rows marked [`Source::Project`] fill gaps the documentation leaves; the
//! reason is in `note`.

use crate::calendar::Calendar;
use crate::carrier::Carrier;
use crate::operation::OperationKind;
use chrono::{DateTime, Duration, Utc};

/// A span of time as carriers state it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Span {
    Minutes(u32),
    /// Working time: 24 h of each China business day.
    WorkingDays(u32),
    CalendarDays(u32),
}

impl Span {
    /// The instant this span after `start` reaches.
    pub fn after(self, cal: &Calendar, start: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Span::Minutes(m) => start + Duration::minutes(i64::from(m)),
            Span::WorkingDays(d) => cal.add_working_time(start, Duration::days(i64::from(d))),
            Span::CalendarDays(d) => start + Duration::days(i64::from(d)),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// From the reference service's documentation.
    Documented,
    /// Not documented: the project's choice.
    Project,
}

/// What the promise is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    Ops(&'static [OperationKind]),
    PoolCreation,
    AddOnPackage,
    /// Must be placed before the 20th of the month.
    Renewal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlaRow {
    pub subject: Subject,
    pub carriers: &'static [Carrier],
    pub min: Span,
    pub max: Span,
    pub source: Source,
    pub note: &'static str,
}

use Carrier::*;
use OperationKind as K;
use Span::*;

const ALL: &[Carrier] = &[Cmcc, Ct, Cu, Trinet];
const LIFECYCLE: &[OperationKind] = &[K::Activate, K::Stop, K::Resume];
const DIRECTIONAL: &[OperationKind] = &[
    K::DirectionalAdd,
    K::DirectionalModify,
    K::DirectionalDelete,
];

pub static SLA: &[SlaRow] = &[
    SlaRow {
        subject: Subject::Ops(LIFECYCLE),
        carriers: &[Ct, Cu],
        min: WorkingDays(1),
        max: WorkingDays(2),
        source: Source::Documented,
        note: "1-2 working days",
    },
    SlaRow {
        subject: Subject::Ops(LIFECYCLE),
        carriers: &[Cmcc],
        min: WorkingDays(1),
        max: WorkingDays(5),
        source: Source::Documented,
        note: "1-2 working days, up to about a week",
    },
    SlaRow {
        subject: Subject::Ops(LIFECYCLE),
        carriers: &[Trinet],
        min: WorkingDays(1),
        max: WorkingDays(2),
        source: Source::Project,
        note: "applied to the active profile; the common 1-2 working days",
    },
    SlaRow {
        subject: Subject::Ops(&[K::Rebind]),
        carriers: &[Cmcc],
        min: WorkingDays(1),
        max: WorkingDays(3),
        source: Source::Documented,
        note: "done by the carrier within 3 working days",
    },
    SlaRow {
        subject: Subject::Ops(&[K::Rebind]),
        carriers: &[Cu],
        min: WorkingDays(1),
        max: WorkingDays(3),
        source: Source::Documented,
        note: "carrier handled, 1-3 working days",
    },
    SlaRow {
        subject: Subject::Ops(&[K::Rebind]),
        carriers: &[Ct],
        min: Minutes(1),
        max: Minutes(10),
        source: Source::Documented,
        note: "applies in minutes; restart the device 5 minutes after success",
    },
    SlaRow {
        subject: Subject::Ops(DIRECTIONAL),
        carriers: &[Ct],
        min: WorkingDays(3),
        max: WorkingDays(5),
        source: Source::Documented,
        note: "about 5 working days",
    },
    SlaRow {
        subject: Subject::Ops(DIRECTIONAL),
        carriers: &[Cu],
        min: WorkingDays(5),
        max: WorkingDays(7),
        source: Source::Documented,
        note: "about 7 working days",
    },
    SlaRow {
        subject: Subject::Ops(DIRECTIONAL),
        carriers: &[Cmcc],
        min: CalendarDays(28),
        max: CalendarDays(42),
        source: Source::Documented,
        note: "about 6 weeks",
    },
    SlaRow {
        subject: Subject::Ops(DIRECTIONAL),
        carriers: &[Trinet],
        min: WorkingDays(3),
        max: WorkingDays(5),
        source: Source::Documented,
        note: "about 5 working days",
    },
    SlaRow {
        subject: Subject::Ops(&[
            K::SpeedLimit,
            K::NetworkCutoff,
            K::NetworkRestore,
            K::SetUsageThreshold,
            K::CancelUsageThreshold,
        ]),
        carriers: ALL,
        min: Minutes(1),
        max: WorkingDays(1),
        source: Source::Project,
        note: "function toggles: not documented; one working day",
    },
    SlaRow {
        subject: Subject::Ops(&[K::RegionBind]),
        carriers: &[Cmcc],
        min: WorkingDays(1),
        max: WorkingDays(3),
        source: Source::Project,
        note: "China Mobile back-office process, like its rebind",
    },
    SlaRow {
        subject: Subject::Ops(&[K::SwitchNetwork, K::SwitchPolicy]),
        carriers: &[Trinet],
        min: Minutes(1),
        max: Minutes(5),
        source: Source::Project,
        note: "a switch is spaced 5 minutes apart; it should be done within that",
    },
    SlaRow {
        subject: Subject::Ops(&[K::CloseCard]),
        carriers: ALL,
        min: WorkingDays(1),
        max: WorkingDays(2),
        source: Source::Project,
        note: "a lifecycle change like stop",
    },
    SlaRow {
        subject: Subject::PoolCreation,
        carriers: ALL,
        min: WorkingDays(1),
        max: WorkingDays(5),
        source: Source::Documented,
        note: "5 working days",
    },
    SlaRow {
        subject: Subject::AddOnPackage,
        carriers: ALL,
        min: Minutes(1),
        max: Minutes(5),
        source: Source::Documented,
        note: "about 5 minutes",
    },
    SlaRow {
        subject: Subject::Renewal,
        carriers: ALL,
        min: WorkingDays(1),
        max: WorkingDays(3),
        source: Source::Documented,
        note: "3 working days; must be placed before the 20th",
    },
];

/// The SLA row for an operation on a carrier.
pub fn for_op(op: OperationKind, carrier: Carrier) -> Option<&'static SlaRow> {
    SLA.iter().find(|r| {
        r.carriers.contains(&carrier) && matches!(r.subject, Subject::Ops(ops) if ops.contains(&op))
    })
}

/// The SLA deadline for a change the carrier accepted at `accepted`.
pub fn deadline(
    cal: &Calendar,
    op: OperationKind,
    carrier: Carrier,
    accepted: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    for_op(op, carrier).map(|r| r.max.after(cal, accepted))
}

/// Renewals must be placed before the 20th of the CST month.
pub fn renewal_allowed(at: DateTime<Utc>) -> bool {
    use chrono::Datelike;
    crate::calendar::cst_date(at).day() < 20
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capability::{Support, rule};

    #[test]
    fn every_offered_operation_has_exactly_one_row() {
        for op in OperationKind::ALL {
            for c in Carrier::ALL {
                let n = SLA
                    .iter()
                    .filter(|r| {
                        r.carriers.contains(&c)
                            && matches!(r.subject, Subject::Ops(ops) if ops.contains(&op))
                    })
                    .count();
                if rule(op, c).support == Support::Yes {
                    assert_eq!(n, 1, "{op} on {c}");
                } else {
                    assert!(n <= 1, "{op} on {c}");
                }
            }
        }
    }

    #[test]
    fn rows_from_domain_md() {
        let cases: &[(OperationKind, Carrier, Span)] = &[
            (K::Activate, Ct, WorkingDays(2)),
            (K::Stop, Cu, WorkingDays(2)),
            (K::Resume, Ct, WorkingDays(2)),
            (K::Activate, Cmcc, WorkingDays(5)),
            (K::Stop, Cmcc, WorkingDays(5)),
            (K::Rebind, Cmcc, WorkingDays(3)),
            (K::Rebind, Cu, WorkingDays(3)),
            (K::Rebind, Ct, Minutes(10)),
            (K::DirectionalAdd, Ct, WorkingDays(5)),
            (K::DirectionalModify, Cu, WorkingDays(7)),
            (K::DirectionalDelete, Cmcc, CalendarDays(42)),
            (K::DirectionalAdd, Trinet, WorkingDays(5)),
        ];
        for (op, c, max) in cases {
            let r = for_op(*op, *c).unwrap();
            assert_eq!(r.max, *max, "{op} on {c}");
            assert_eq!(r.source, Source::Documented, "{op} on {c}");
        }
        let pool = SLA
            .iter()
            .find(|r| r.subject == Subject::PoolCreation)
            .unwrap();
        assert_eq!(pool.max, WorkingDays(5));
        let addon = SLA
            .iter()
            .find(|r| r.subject == Subject::AddOnPackage)
            .unwrap();
        assert_eq!(addon.max, Minutes(5));
        let renewal = SLA.iter().find(|r| r.subject == Subject::Renewal).unwrap();
        assert_eq!(renewal.max, WorkingDays(3));
        for r in SLA {
            let cal = Calendar::builtin();
            let t = Utc::now();
            assert!(r.min.after(cal, t) <= r.max.after(cal, t), "{}", r.note);
        }
    }

    #[test]
    fn deadlines_in_working_days() {
        let cal = Calendar::builtin();
        // Friday 2026-11-27 10:00 CST, CT stop: 2 working days -> Tuesday 10:00 CST
        let fri = DateTime::parse_from_rfc3339("2026-11-27T02:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let d = deadline(cal, K::Stop, Ct, fri).unwrap();
        assert_eq!(
            d,
            DateTime::parse_from_rfc3339("2026-12-01T02:00:00Z")
                .unwrap()
                .with_timezone(&Utc)
        );
        let ct_rebind = deadline(cal, K::Rebind, Ct, fri).unwrap();
        assert_eq!(ct_rebind - fri, Duration::minutes(10));
        assert!(deadline(cal, K::Rebind, Trinet, fri).is_none());
    }

    #[test]
    fn renewal_before_the_20th() {
        let d19 = DateTime::parse_from_rfc3339("2026-11-19T15:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let d20 = DateTime::parse_from_rfc3339("2026-11-19T16:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert!(renewal_allowed(d19));
        assert!(!renewal_allowed(d20));
    }
}
