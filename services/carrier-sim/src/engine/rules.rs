//! The carrier-side rules a change must pass, enforced here independently
//! of the adapters (card state, repeat windows and spacing, quotas,
//! thresholds, directional limits).

use super::*;

impl Engine {
    /// The carrier-side rules for a change on a card.
    pub(super) fn check(
        &self,
        p: &Platform,
        card: &CardRecord,
        change: &Change,
        now: DateTime<Utc>,
    ) -> Result<(), Refusal> {
        use SimStatus::*;
        let c = p.carrier;
        let rules = &self.config.rules;
        if card.status == Closed {
            return Err(Refusal::IllegalState("card is closed".into()));
        }
        if c == Carrier::Cmcc
            && change.is_status_change()
            && let Some(last) = card.last_status_change
            && now - last < Duration::seconds(rules.cmcc_status_spacing_s)
        {
            return Err(Refusal::TooSoon);
        }
        let need = |ok: bool, what: &str| {
            if ok {
                Ok(())
            } else {
                Err(Refusal::IllegalState(format!(
                    "needs {what}, card is {}",
                    card.status.code()
                )))
            }
        };
        match change {
            Change::Activate => need(
                matches!(card.status, Testable | Activatable | NotActivated),
                "10, 11 or 13",
            ),
            Change::Stop => {
                if card.pending_stop {
                    return Err(Refusal::PendingStop);
                }
                need(card.status == InUse, "20")
            }
            Change::Resume => {
                if card.pending_stop {
                    return Err(Refusal::PendingStop);
                }
                match (card.status, card.stop_reason) {
                    (Stopped, StopReason::OnRequest) => Ok(()),
                    (Stopped, _) => Err(Refusal::ResumeNotAllowed),
                    (Testable | Activatable | NotActivated, _) => Err(Refusal::AwaitingActivation),
                    _ => need(false, "14 with reason 5"),
                }
            }
            Change::Rebind { imei, fixed } => match c {
                Carrier::Cmcc => {
                    if *fixed {
                        return Err(Refusal::BadParam("only normal rebinds".into()));
                    }
                    need(
                        card.status == Stopped
                            && matches!(
                                card.stop_reason,
                                StopReason::Violation | StopReason::DeviceSeparation
                            ),
                        "14 with reason 6 or 7",
                    )
                }
                Carrier::Ct => {
                    if *fixed
                        && imei
                            .as_deref()
                            .is_none_or(|i| gsl_domain::Imei::parse(i).is_err())
                    {
                        return Err(Refusal::BadParam("fixed rebind needs a valid imei".into()));
                    }
                    need(card.status == InUse, "20")?;
                    let used = card.rebinds.get(&month_key(now)).copied().unwrap_or(0);
                    if used >= rules.ct_rebinds_per_month {
                        return Err(Refusal::RebindQuota);
                    }
                    Ok(())
                }
                _ => Err(Refusal::NotOffered),
            },
            Change::Speed { kbps } => match c {
                Carrier::Ct => {
                    if speed::ct_code(*kbps).is_none() {
                        return Err(Refusal::BadParam(format!("speed {kbps}")));
                    }
                    need(card.status == InUse, "20")
                }
                Carrier::Cu => {
                    if !speed::offered(Carrier::Cu, *kbps) {
                        return Err(Refusal::BadParam(format!("speed {kbps}")));
                    }
                    if !card.real_named {
                        return Err(Refusal::RealNameRequired);
                    }
                    need(card.status == InUse, "20")
                }
                _ => Err(Refusal::NotOffered),
            },
            Change::CutNet | Change::RestoreNet => {
                if c == Carrier::Ct {
                    Ok(())
                } else {
                    Err(Refusal::NotOffered)
                }
            }
            Change::ThresholdAdd { mb } | Change::ThresholdModify { mb } => {
                self.threshold_allowed(c, card)?;
                if *mb < -1 {
                    return Err(Refusal::BadParam(format!("quota {mb}")));
                }
                let exists = card.threshold_mb != -1;
                match change {
                    Change::ThresholdAdd { .. } if exists => Err(Refusal::AlreadySubscribed),
                    Change::ThresholdModify { .. } if !exists => Err(Refusal::NotSubscribed),
                    _ => Ok(()),
                }
            }
            Change::ThresholdCancel => {
                self.threshold_allowed(c, card)?;
                if card.threshold_mb == -1 {
                    return Err(Refusal::NotSubscribed);
                }
                Ok(())
            }
            Change::RegionBind { code } => {
                if c != Carrier::Cmcc {
                    return Err(Refusal::NotOffered);
                }
                let r = Region::parse(&code.to_string())
                    .map_err(|e| Refusal::BadParam(e.to_string()))?;
                if !r.bindable() {
                    return Err(Refusal::RegionForbidden);
                }
                need(card.status == InUse, "20")
            }
            Change::SwitchNetwork { target } => {
                if c != Carrier::Trinet {
                    return Err(Refusal::NotOffered);
                }
                if *target == Carrier::Trinet {
                    return Err(Refusal::BadParam("target must be cmcc, ct or cu".into()));
                }
                self.switch_spacing(card, now)
            }
            Change::SwitchPolicy { policy } => {
                if c != Carrier::Trinet {
                    return Err(Refusal::NotOffered);
                }
                let policies = p.world.policies.lock().expect("policies lock");
                let pol = policies
                    .get(policy)
                    .ok_or_else(|| Refusal::PolicyUnusable(format!("no policy {policy}")))?;
                if !pol.enabled {
                    return Err(Refusal::PolicyUnusable("policy disabled".into()));
                }
                if Some(pol.version) != card.trinet_version {
                    return Err(Refusal::PolicyUnusable(
                        "policy is for the other card version".into(),
                    ));
                }
                drop(policies);
                self.switch_spacing(card, now)
            }
            Change::Close => need(
                matches!(card.status, NotActivated | Activatable | InUse | Stopped),
                "11, 13, 20 or 14",
            ),
            Change::Directional { .. } => Ok(()),
        }
    }

    pub(super) fn threshold_allowed(&self, c: Carrier, card: &CardRecord) -> Result<(), Refusal> {
        match c {
            Carrier::Ct => Ok(()),
            Carrier::Cmcc | Carrier::Cu if card.pooled => Ok(()),
            Carrier::Cmcc | Carrier::Cu => Err(Refusal::NotPooled),
            Carrier::Trinet => Err(Refusal::NotOffered),
        }
    }

    pub(super) fn switch_spacing(
        &self,
        card: &CardRecord,
        now: DateTime<Utc>,
    ) -> Result<(), Refusal> {
        if card.trinet_version == Some(TriNetVersion::NoSdk)
            && let Some(last) = card.last_switch
            && now - last < Duration::seconds(self.config.rules.trinet_switch_spacing_s)
        {
            return Err(Refusal::SwitchTooSoon);
        }
        Ok(())
    }

    pub(super) fn check_directional(
        &self,
        p: &Platform,
        batch: &str,
        plan: &DirChange,
    ) -> Result<(), Refusal> {
        let batches = p.world.batches.lock().expect("batches lock");
        let b = batches.get(batch).ok_or(Refusal::BatchUnknown)?;
        let eligible = directional::batch_eligible(b.purchase_type, b.directional_data);
        let change = match plan {
            DirChange::Add { entries } => DirPlan::Add(entries),
            DirChange::Modify { id, entry } => DirPlan::Modify { id, entry },
            DirChange::Delete { ids } => DirPlan::Delete(ids),
        };
        directional::plan_change(p.carrier, eligible, &b.entries, &change)
            .map(|_| ())
            .map_err(Refusal::Directional)
    }
}
