//! The capability / precondition table: which operation each carrier offers,
//! and what the card must look like for it (domain.md, "Operations a work
//! order can carry").
//!
//! One row per operation, one [`Rule`] per carrier in `[cmcc, ct, cu, trinet]`
//! order. Where the documentation says "not stated", the project refuses the
//! operation ([`Support::NotStated`]) with a message that says so: we do not
//! send a carrier a request nobody documented.

use crate::card::{CardFacts, SimStatus, StopReason};
use crate::carrier::Carrier;
use crate::codes::ErrorCode;
use crate::operation::{BindType, Operation, OperationKind};
use crate::speed;
use thiserror::Error;

/// Whether a carrier offers an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    Yes,
    No,
    /// The documentation does not say; refused.
    NotStated,
}

/// One condition on the card or the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    /// `sim_status` is one of these.
    StatusIn(&'static [SimStatus]),
    /// Stopped (14) for one of these reasons.
    StoppedFor(&'static [StopReason]),
    /// The card is in a forward pool.
    Pooled,
    /// Personal real-name verification done.
    RealNamed,
    /// The rebind bind type is one of these.
    BindTypes(&'static [BindType]),
}

/// A carrier's cell in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub support: Support,
    pub requires: &'static [Requirement],
}

/// One row: an operation and its rule per carrier.
#[derive(Debug, Clone, Copy)]
pub struct CapabilityRow {
    pub op: OperationKind,
    /// `[cmcc, ct, cu, trinet]`
    pub carriers: [Rule; 4],
}

const fn yes(requires: &'static [Requirement]) -> Rule {
    Rule {
        support: Support::Yes,
        requires,
    }
}
const NO: Rule = Rule {
    support: Support::No,
    requires: &[],
};
const NOT_STATED: Rule = Rule {
    support: Support::NotStated,
    requires: &[],
};

use Requirement::*;
use SimStatus::*;

const IN_USE: Requirement = StatusIn(&[InUse]);
const ACTIVATABLE: Requirement = StatusIn(&[Testable, Activatable]);
const STOPPED_ON_REQUEST: Requirement = StoppedFor(&[StopReason::OnRequest]);
const CLOSABLE: Requirement = StatusIn(&[NotActivated, Activatable, InUse, Stopped]);

/// The table. Row order follows domain.md.
pub static CAPABILITIES: &[CapabilityRow] = &[
    CapabilityRow {
        op: OperationKind::Activate,
        carriers: [yes(&[ACTIVATABLE]); 4],
    },
    CapabilityRow {
        op: OperationKind::Stop,
        carriers: [yes(&[IN_USE]); 4],
    },
    CapabilityRow {
        op: OperationKind::Resume,
        // China Mobile: "not for reasons 6/7", which reason 5 already excludes.
        carriers: [yes(&[STOPPED_ON_REQUEST]); 4],
    },
    CapabilityRow {
        op: OperationKind::Rebind,
        carriers: [
            // only when stopped for violation / separation, only "normal" type
            yes(&[
                StoppedFor(&[StopReason::Violation, StopReason::DeviceSeparation]),
                BindTypes(&[BindType::Normal]),
            ]),
            // only when in use, normal or fixed IMEI (2 per month: see cooldown)
            yes(&[IN_USE, BindTypes(&[BindType::Normal, BindType::FixedImei])]),
            // the carrier unbinds on its own
            NO,
            NOT_STATED,
        ],
    },
    CapabilityRow {
        op: OperationKind::SpeedLimit,
        carriers: [NO, yes(&[IN_USE]), yes(&[IN_USE, RealNamed]), NOT_STATED],
    },
    CapabilityRow {
        op: OperationKind::NetworkCutoff,
        carriers: [NO, yes(&[]), NO, NOT_STATED],
    },
    CapabilityRow {
        op: OperationKind::NetworkRestore,
        carriers: [NO, yes(&[]), NO, NOT_STATED],
    },
    CapabilityRow {
        op: OperationKind::SetUsageThreshold,
        carriers: [yes(&[Pooled]), yes(&[]), yes(&[Pooled]), NOT_STATED],
    },
    CapabilityRow {
        op: OperationKind::CancelUsageThreshold,
        carriers: [yes(&[Pooled]), yes(&[]), yes(&[Pooled]), NOT_STATED],
    },
    CapabilityRow {
        op: OperationKind::RegionBind,
        carriers: [yes(&[IN_USE]), NO, NO, NO],
    },
    CapabilityRow {
        op: OperationKind::DirectionalAdd,
        carriers: [yes(&[]); 4],
    },
    CapabilityRow {
        op: OperationKind::DirectionalModify,
        carriers: [yes(&[]); 4],
    },
    CapabilityRow {
        op: OperationKind::DirectionalDelete,
        carriers: [yes(&[]); 4],
    },
    CapabilityRow {
        op: OperationKind::SwitchNetwork,
        carriers: [NO, NO, NO, yes(&[])],
    },
    CapabilityRow {
        op: OperationKind::SwitchPolicy,
        carriers: [NO, NO, NO, yes(&[])],
    },
    CapabilityRow {
        op: OperationKind::CloseCard,
        carriers: [yes(&[CLOSABLE]); 4],
    },
];

/// The row for an operation.
pub fn row(op: OperationKind) -> &'static CapabilityRow {
    CAPABILITIES
        .iter()
        .find(|r| r.op == op)
        .expect("every operation has a row (tested)")
}

/// The rule for an operation on a carrier.
pub fn rule(op: OperationKind, carrier: Carrier) -> Rule {
    row(op).carriers[carrier.index()]
}

/// Why an operation may not run on a card.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RuleViolation {
    #[error("{carrier} does not offer {op}")]
    NotSupported { op: OperationKind, carrier: Carrier },
    #[error("{carrier}'s documentation does not state support for {op}; refused")]
    NotStated { op: OperationKind, carrier: Carrier },
    #[error("card is {status} (stop reason {reason}): {op} needs {needs}")]
    IllegalState {
        op: OperationKind,
        status: SimStatus,
        reason: i8,
        needs: String,
    },
    #[error("{op} on {carrier} is for pooled cards only")]
    NotPooled { op: OperationKind, carrier: Carrier },
    #[error("{op} on {carrier} needs personal real-name verification")]
    NotRealNamed { op: OperationKind, carrier: Carrier },
    #[error("{carrier} does not offer bind type {bind_type:?}")]
    BindTypeNotOffered {
        carrier: Carrier,
        bind_type: BindType,
    },
    #[error("a fixed-IMEI rebind needs the IMEI")]
    ImeiRequired,
    #[error("{carrier} does not offer {kbps} Kbps (offered: {offered:?})")]
    SpeedNotOffered {
        carrier: Carrier,
        kbps: u32,
        offered: Vec<u32>,
    },
    #[error("region {0} may not be bound")]
    RegionNotAllowed(String),
    #[error("card is closed (拆机): no operation is possible")]
    Closed,
    #[error(
        "{carrier} cannot resume a card stopped for reason {reason} (violation or device separation): it needs a rebind (机卡重绑)"
    )]
    NeedsRebind { carrier: Carrier, reason: i8 },
}

impl RuleViolation {
    pub fn code(&self) -> ErrorCode {
        match self {
            RuleViolation::NotSupported { .. } | RuleViolation::NotStated { .. } => {
                ErrorCode::NotSupported
            }
            RuleViolation::IllegalState { .. }
            | RuleViolation::Closed
            | RuleViolation::NeedsRebind { .. } => ErrorCode::IllegalState,
            RuleViolation::NotPooled { .. } => ErrorCode::PooledCardsOnly,
            RuleViolation::NotRealNamed { .. } => ErrorCode::RealNameRequired,
            RuleViolation::BindTypeNotOffered { .. } => ErrorCode::BindTypeNotOffered,
            RuleViolation::ImeiRequired => ErrorCode::InvalidItemParameter,
            RuleViolation::SpeedNotOffered { .. } => ErrorCode::SpeedNotOffered,
            RuleViolation::RegionNotAllowed(_) => ErrorCode::RegionNotAllowed,
        }
    }
}

/// Whether the carrier offers the operation at all (no card needed). Used to
/// refuse early, and by adapters to refuse items sent to the wrong carrier.
pub fn check_offered(op: OperationKind, carrier: Carrier) -> Result<(), RuleViolation> {
    match rule(op, carrier).support {
        Support::Yes => Ok(()),
        Support::No => Err(RuleViolation::NotSupported { op, carrier }),
        Support::NotStated => Err(RuleViolation::NotStated { op, carrier }),
    }
}

/// Check an operation (with its parameters) against a card: capability,
/// preconditions, and the carrier's value sets. Cooldowns and quotas need
/// shared state and are checked elsewhere (see [`crate::cooldown`]).
pub fn check_capability(op: &Operation, card: &CardFacts) -> Result<(), RuleViolation> {
    let kind = op.kind();
    let carrier = card.carrier;
    check_offered(kind, carrier)?;
    if card.status == SimStatus::Closed && !kind.is_directional() {
        return Err(RuleViolation::Closed);
    }
    for req in rule(kind, carrier).requires {
        if let Err(e) = check_requirement(kind, *req, op, card) {
            return Err(needs_rebind(kind, card).unwrap_or(e));
        }
    }
    check_parameters(op, carrier)
}

/// Stops no resume lifts on a carrier: the card needs a rebind (domain.md:
/// "A card stopped for violation or device separation on China Mobile
/// cannot be resumed: it needs a rebind").
pub static RESUME_NEEDS_REBIND: &[(Carrier, &[StopReason])] = &[(
    Carrier::Cmcc,
    &[StopReason::Violation, StopReason::DeviceSeparation],
)];

fn needs_rebind(kind: OperationKind, card: &CardFacts) -> Option<RuleViolation> {
    (kind == OperationKind::Resume && card.status == SimStatus::Stopped)
        .then(|| {
            RESUME_NEEDS_REBIND
                .iter()
                .find(|(c, reasons)| *c == card.carrier && reasons.contains(&card.stop_reason))
        })
        .flatten()
        .map(|_| RuleViolation::NeedsRebind {
            carrier: card.carrier,
            reason: card.stop_reason.code(),
        })
}

fn check_requirement(
    kind: OperationKind,
    req: Requirement,
    op: &Operation,
    card: &CardFacts,
) -> Result<(), RuleViolation> {
    let illegal = |needs: String| RuleViolation::IllegalState {
        op: kind,
        status: card.status,
        reason: card.stop_reason.code(),
        needs,
    };
    match req {
        StatusIn(list) => {
            if !list.contains(&card.status) {
                let names: Vec<String> = list.iter().map(|s| s.code().to_string()).collect();
                return Err(illegal(format!("status {}", names.join(" or "))));
            }
        }
        StoppedFor(reasons) => {
            if card.status != SimStatus::Stopped || !reasons.contains(&card.stop_reason) {
                let names: Vec<String> = reasons.iter().map(|r| r.code().to_string()).collect();
                return Err(illegal(format!(
                    "status 14 with stop reason {}",
                    names.join(" or ")
                )));
            }
        }
        Pooled => {
            if !card.pooled {
                return Err(RuleViolation::NotPooled {
                    op: kind,
                    carrier: card.carrier,
                });
            }
        }
        RealNamed => {
            if !card.real_named {
                return Err(RuleViolation::NotRealNamed {
                    op: kind,
                    carrier: card.carrier,
                });
            }
        }
        BindTypes(types) => {
            if let Operation::Rebind { bind_type, .. } = op
                && !types.contains(bind_type)
            {
                return Err(RuleViolation::BindTypeNotOffered {
                    carrier: card.carrier,
                    bind_type: *bind_type,
                });
            }
        }
    }
    Ok(())
}

/// Parameter checks that depend on the carrier but not on the card.
pub fn check_parameters(op: &Operation, carrier: Carrier) -> Result<(), RuleViolation> {
    match op {
        Operation::Rebind {
            bind_type: BindType::FixedImei,
            imei: None,
        } => Err(RuleViolation::ImeiRequired),
        Operation::SpeedLimit { kbps } if !speed::offered(carrier, *kbps) => {
            Err(RuleViolation::SpeedNotOffered {
                carrier,
                kbps: *kbps,
                offered: speed::values(carrier),
            })
        }
        Operation::RegionBind { region } if !region.bindable() => {
            Err(RuleViolation::RegionNotAllowed(region.to_string()))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::card::TriNetVersion;
    use crate::ids::Imei;
    use crate::region::Region;
    use crate::threshold::Threshold;
    use Carrier::*;
    use OperationKind as K;

    /// domain.md's table, transcribed independently of CAPABILITIES:
    /// y = yes, n = no, ? = not stated. Order: cmcc, ct, cu, trinet.
    const MATRIX: &[(OperationKind, [char; 4])] = &[
        (K::Activate, ['y', 'y', 'y', 'y']),
        (K::Stop, ['y', 'y', 'y', 'y']),
        (K::Resume, ['y', 'y', 'y', 'y']),
        (K::Rebind, ['y', 'y', 'n', '?']),
        (K::SpeedLimit, ['n', 'y', 'y', '?']),
        (K::NetworkCutoff, ['n', 'y', 'n', '?']),
        (K::NetworkRestore, ['n', 'y', 'n', '?']),
        (K::SetUsageThreshold, ['y', 'y', 'y', '?']),
        (K::CancelUsageThreshold, ['y', 'y', 'y', '?']),
        (K::RegionBind, ['y', 'n', 'n', 'n']),
        (K::DirectionalAdd, ['y', 'y', 'y', 'y']),
        (K::DirectionalModify, ['y', 'y', 'y', 'y']),
        (K::DirectionalDelete, ['y', 'y', 'y', 'y']),
        (K::SwitchNetwork, ['n', 'n', 'n', 'y']),
        (K::SwitchPolicy, ['n', 'n', 'n', 'y']),
        (K::CloseCard, ['y', 'y', 'y', 'y']),
    ];

    #[test]
    fn every_operation_has_exactly_one_row() {
        for k in OperationKind::ALL {
            assert_eq!(CAPABILITIES.iter().filter(|r| r.op == k).count(), 1, "{k}");
        }
        assert_eq!(MATRIX.len(), OperationKind::ALL.len());
    }

    #[test]
    fn support_matrix_matches_domain_md() {
        for (op, cells) in MATRIX {
            for c in Carrier::ALL {
                let want = match cells[c.index()] {
                    'y' => Support::Yes,
                    'n' => Support::No,
                    _ => Support::NotStated,
                };
                assert_eq!(rule(*op, c).support, want, "{op} on {c}");
                let res = check_offered(*op, c);
                match want {
                    Support::Yes => assert!(res.is_ok()),
                    Support::No => assert!(matches!(res, Err(RuleViolation::NotSupported { .. }))),
                    Support::NotStated => {
                        assert!(matches!(res, Err(RuleViolation::NotStated { .. })))
                    }
                }
                if let Err(e) = res {
                    assert_eq!(e.code(), ErrorCode::NotSupported);
                }
            }
        }
    }

    fn card(carrier: Carrier, status: SimStatus, reason: StopReason) -> CardFacts {
        CardFacts {
            status,
            stop_reason: reason,
            ..CardFacts::in_use(carrier)
        }
    }

    fn code_of(op: &Operation, c: &CardFacts) -> Option<ErrorCode> {
        check_capability(op, c).err().map(|e| e.code())
    }

    #[test]
    fn activate_needs_10_or_13() {
        for c in Carrier::ALL {
            for s in SimStatus::ALL {
                let ok = matches!(s, Testable | Activatable);
                let res = check_capability(&Operation::Activate, &card(c, s, StopReason::Normal));
                assert_eq!(res.is_ok(), ok, "{c} {s}");
            }
        }
    }

    #[test]
    fn stop_needs_in_use() {
        for c in Carrier::ALL {
            for s in SimStatus::ALL {
                let res = check_capability(&Operation::Stop, &card(c, s, StopReason::Normal));
                assert_eq!(res.is_ok(), s == InUse, "{c} {s}");
            }
        }
    }

    #[test]
    fn resume_needs_stop_reason_5() {
        for c in Carrier::ALL {
            for r in StopReason::ALL {
                let res = check_capability(&Operation::Resume, &card(c, Stopped, r));
                assert_eq!(res.is_ok(), r == StopReason::OnRequest, "{c} {r:?}");
            }
            // China Mobile: violation / separation cannot be resumed
            assert_eq!(
                code_of(&Operation::Resume, &card(c, Stopped, StopReason::Violation)),
                Some(ErrorCode::IllegalState)
            );
            assert!(
                check_capability(&Operation::Resume, &card(c, InUse, StopReason::Normal)).is_err()
            );
        }
    }

    #[test]
    fn cmcc_violation_and_separation_stops_need_a_rebind() {
        for c in Carrier::ALL {
            for r in StopReason::ALL {
                let res = check_capability(&Operation::Resume, &card(c, Stopped, r));
                let rebind = matches!(res, Err(RuleViolation::NeedsRebind { .. }));
                let want = c == Carrier::Cmcc
                    && matches!(r, StopReason::Violation | StopReason::DeviceSeparation);
                assert_eq!(rebind, want, "{c} {r:?}: {res:?}");
                if rebind {
                    assert!(res.unwrap_err().to_string().contains("rebind"));
                }
            }
        }
    }

    #[test]
    fn rebind_rows() {
        let normal = Operation::Rebind {
            bind_type: BindType::Normal,
            imei: None,
        };
        let fixed = Operation::Rebind {
            bind_type: BindType::FixedImei,
            imei: Some(Imei::from_payload("35209900176148").unwrap()),
        };
        // China Mobile: only when stopped for violation or separation, only normal
        assert!(check_capability(&normal, &card(Cmcc, Stopped, StopReason::Violation)).is_ok());
        assert!(
            check_capability(&normal, &card(Cmcc, Stopped, StopReason::DeviceSeparation)).is_ok()
        );
        assert_eq!(
            code_of(&normal, &card(Cmcc, InUse, StopReason::Normal)),
            Some(ErrorCode::IllegalState)
        );
        assert_eq!(
            code_of(&normal, &card(Cmcc, Stopped, StopReason::OnRequest)),
            Some(ErrorCode::IllegalState)
        );
        assert_eq!(
            code_of(&fixed, &card(Cmcc, Stopped, StopReason::Violation)),
            Some(ErrorCode::BindTypeNotOffered)
        );
        // China Telecom: only in use, normal or fixed IMEI
        assert!(check_capability(&normal, &card(Ct, InUse, StopReason::Normal)).is_ok());
        assert!(check_capability(&fixed, &card(Ct, InUse, StopReason::Normal)).is_ok());
        assert_eq!(
            code_of(&normal, &card(Ct, Stopped, StopReason::OnRequest)),
            Some(ErrorCode::IllegalState)
        );
        let fixed_no_imei = Operation::Rebind {
            bind_type: BindType::FixedImei,
            imei: None,
        };
        assert_eq!(
            code_of(&fixed_no_imei, &card(Ct, InUse, StopReason::Normal)),
            Some(ErrorCode::InvalidItemParameter)
        );
        // China Unicom: not supported; tri-net: not stated
        assert_eq!(
            code_of(&normal, &card(Cu, InUse, StopReason::Normal)),
            Some(ErrorCode::NotSupported)
        );
        assert!(matches!(
            check_capability(&normal, &CardFacts::in_use(Trinet)),
            Err(RuleViolation::NotStated { .. })
        ));
    }

    #[test]
    fn speed_limit_rows() {
        let op = Operation::SpeedLimit { kbps: 512 };
        assert_eq!(
            code_of(&op, &CardFacts::in_use(Cmcc)),
            Some(ErrorCode::NotSupported)
        );
        assert!(check_capability(&op, &CardFacts::in_use(Ct)).is_ok());
        assert_eq!(
            code_of(
                &Operation::SpeedLimit { kbps: 2048 },
                &CardFacts::in_use(Ct)
            ),
            Some(ErrorCode::SpeedNotOffered)
        );
        // CU: only with personal real-name verification
        let mut cu = CardFacts::in_use(Cu);
        assert_eq!(code_of(&op, &cu), Some(ErrorCode::RealNameRequired));
        cu.real_named = true;
        assert!(check_capability(&op, &cu).is_ok());
        cu.status = Stopped;
        assert_eq!(code_of(&op, &cu), Some(ErrorCode::IllegalState));
        assert_eq!(
            code_of(&op, &CardFacts::in_use(Trinet)),
            Some(ErrorCode::NotSupported)
        );
    }

    #[test]
    fn cutoff_and_restore_rows() {
        for op in [Operation::NetworkCutoff, Operation::NetworkRestore] {
            assert!(check_capability(&op, &CardFacts::in_use(Ct)).is_ok());
            assert!(check_capability(&op, &card(Ct, Stopped, StopReason::OnRequest)).is_ok());
            for c in [Cmcc, Cu, Trinet] {
                assert_eq!(
                    code_of(&op, &CardFacts::in_use(c)),
                    Some(ErrorCode::NotSupported),
                    "{c}"
                );
            }
        }
    }

    #[test]
    fn threshold_rows() {
        let set = Operation::SetUsageThreshold {
            threshold: Threshold::Megabytes(100),
        };
        for op in [set, Operation::CancelUsageThreshold] {
            for c in [Cmcc, Cu] {
                let mut f = CardFacts::in_use(c);
                assert_eq!(code_of(&op, &f), Some(ErrorCode::PooledCardsOnly), "{c}");
                f.pooled = true;
                assert!(check_capability(&op, &f).is_ok());
            }
            assert!(check_capability(&op, &CardFacts::in_use(Ct)).is_ok());
            assert_eq!(
                code_of(&op, &CardFacts::in_use(Trinet)),
                Some(ErrorCode::NotSupported)
            );
        }
    }

    #[test]
    fn region_bind_rows() {
        let ok = Operation::RegionBind {
            region: Region::parse("240_辽宁省").unwrap(),
        };
        assert!(check_capability(&ok, &CardFacts::in_use(Cmcc)).is_ok());
        assert_eq!(
            code_of(&ok, &card(Cmcc, Stopped, StopReason::OnRequest)),
            Some(ErrorCode::IllegalState)
        );
        for forbidden in ["991", "891", "471"] {
            let op = Operation::RegionBind {
                region: Region::parse(forbidden).unwrap(),
            };
            assert_eq!(
                code_of(&op, &CardFacts::in_use(Cmcc)),
                Some(ErrorCode::RegionNotAllowed)
            );
        }
        for c in [Ct, Cu, Trinet] {
            assert!(matches!(
                check_capability(&ok, &CardFacts::in_use(c)),
                Err(RuleViolation::NotSupported { .. })
            ));
        }
    }

    #[test]
    fn directional_rows_offered_everywhere() {
        let ops = [
            Operation::DirectionalAdd {
                entries: vec!["10.1.2.3".into()],
            },
            Operation::DirectionalModify {
                entry_id: "1".into(),
                entry: "10.1.2.4".into(),
            },
            Operation::DirectionalDelete {
                entry_ids: vec!["1".into()],
            },
        ];
        for op in ops {
            for c in Carrier::ALL {
                assert!(check_capability(&op, &CardFacts::in_use(c)).is_ok(), "{c}");
            }
        }
    }

    #[test]
    fn trinet_only_rows() {
        let ops = [
            Operation::SwitchNetwork { target: Cu },
            Operation::SwitchPolicy {
                policy_id: "p1".into(),
            },
        ];
        for op in ops {
            let mut f = CardFacts::in_use(Trinet);
            assert!(check_capability(&op, &f).is_ok());
            f.trinet_version = Some(TriNetVersion::Sdk);
            assert!(check_capability(&op, &f).is_ok());
            for c in [Cmcc, Ct, Cu] {
                assert_eq!(
                    code_of(&op, &CardFacts::in_use(c)),
                    Some(ErrorCode::NotSupported)
                );
            }
        }
    }

    #[test]
    fn close_needs_11_13_20_or_14() {
        for c in Carrier::ALL {
            for s in SimStatus::ALL {
                let ok = matches!(s, NotActivated | Activatable | InUse | Stopped);
                let res = check_capability(&Operation::CloseCard, &card(c, s, StopReason::Normal));
                assert_eq!(res.is_ok(), ok, "{c} {s}");
            }
        }
    }

    #[test]
    fn closed_cards_take_nothing() {
        let closed = card(Ct, Closed, StopReason::Normal);
        for op in [
            Operation::NetworkCutoff,
            Operation::CancelUsageThreshold,
            Operation::Stop,
        ] {
            assert_eq!(code_of(&op, &closed), Some(ErrorCode::IllegalState));
        }
    }
}
