//! China Mobile, OneLink EC API v5.
//!
//! Token from `get/token` cached for its TTL and refreshed on `12021` (then
//! the call is retried once). `transid` = appid + `yyyyMMddHHmmss` (China
//! time) + 8 digits from one per-process sequence that starts at a random
//! point, so no two calls of one process share a transid (the carrier refuses
//! a transid reused for another card) and replicas rarely meet. A change's
//! transid is made once and kept in the execution record, so a repeat of that
//! change carries the same one. Rebind, region binding and directional config are
//! back-office requests followed to completion like any other change.

use crate::common::{json, s, transient_status};
use chrono::{DateTime, Utc};
use gsl_adapter_kit::carrier::{
    Accepted, CallCtx, CallError, CallResult, CarrierApi, Item, Progress,
};
use gsl_adapter_kit::http::Http;
use gsl_domain::Carrier;
use gsl_domain::calendar::cst;
use gsl_domain::codes::ErrorCode;
use gsl_proto::v1::operation::Kind as O;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub struct Cmcc {
    base: String,
    appid: String,
    password: String,
    http: Http,
    /// Held while fetching, so concurrent items share one token request.
    token: tokio::sync::Mutex<Option<(String, Instant)>>,
    seq: AtomicU32,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Change,
    Query,
}

/// China Mobile's status codes, as our outcome.
/// Where a process's transid sequence starts: from the clock and the pid, so
/// two replicas started together still start apart.
fn sequence_start() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() ^ (d.as_secs() as u32).rotate_left(16))
        .unwrap_or(0);
    (nanos ^ std::process::id().wrapping_mul(2_654_435_761)) % 100_000_000
}

pub(crate) fn map_status(code: &str, msg: &str) -> CallError {
    let r = |c: ErrorCode| CallError::refused(c, code, msg);
    match code {
        "10000" => CallError::transient(format!("carrier busy: {msg}")),
        "12006" => CallError::Transient {
            reason: format!("over the rate limit: {msg}"),
            retry_after: Some(Duration::from_secs(1)),
        },
        "11000" => r(ErrorCode::BadParameter),
        "12009" | "12010" => r(ErrorCode::CardNotFound),
        "12089" | "12098" => r(ErrorCode::IllegalState),
        "12090" => r(ErrorCode::StatusChangeTooSoon),
        "12091" => r(ErrorCode::RegionNotAllowed),
        "12092" => r(ErrorCode::NotSupported),
        "12093" => r(ErrorCode::PooledCardsOnly),
        "12094" => r(ErrorCode::DirectionalLimit),
        "12096" => r(ErrorCode::RebindQuotaExhausted),
        _ => r(ErrorCode::CarrierRejected),
    }
}

impl Cmcc {
    pub fn new(base: &str, appid: &str, password: &str, timeout: Duration) -> Cmcc {
        Cmcc {
            base: base.trim_end_matches('/').to_owned(),
            appid: appid.to_owned(),
            password: password.to_owned(),
            http: Http::new(timeout),
            token: tokio::sync::Mutex::new(None),
            seq: AtomicU32::new(sequence_start()),
        }
    }

    fn stamp(&self) -> String {
        Utc::now()
            .with_timezone(&cst())
            .format("%Y%m%d%H%M%S")
            .to_string()
    }

    /// The next transid of this process.
    fn transid(&self) -> String {
        let n = self.seq.fetch_add(1, Ordering::Relaxed) % 100_000_000;
        format!("{}{}{n:08}", self.appid, self.stamp())
    }

    async fn envelope(
        &self,
        op: &str,
        params: &[(&str, String)],
    ) -> CallResult<(String, String, serde_json::Value)> {
        let url = format!("{}/v5/ec/{op}", self.base);
        let resp = self
            .http
            .send(self.http.client.get(url).query(params))
            .await?;
        if let Some(e) = transient_status(&resp) {
            return Err(e);
        }
        let v = json(resp).await?;
        Ok((
            s(&v, "status").to_owned(),
            s(&v, "message").to_owned(),
            v.get("result").cloned().unwrap_or_default(),
        ))
    }

    async fn token(&self, ctx: &CallCtx<'_>) -> CallResult<String> {
        let mut cached = self.token.lock().await;
        if let Some((t, exp)) = cached.clone()
            && exp > Instant::now()
        {
            return Ok(t);
        }
        ctx.pace.query().await;
        let params = [
            ("appid", self.appid.clone()),
            ("password", self.password.clone()),
            ("transid", self.transid()),
        ];
        let (status, msg, result) = self.envelope("get/token", &params).await?;
        if status != "0" {
            return Err(map_status(&status, &msg));
        }
        let token = result[0]
            .get("token")
            .and_then(|t| t.as_str())
            .unwrap_or_default()
            .to_owned();
        let ttl: u64 = result[0]
            .get("ttl")
            .and_then(|t| t.as_str())
            .and_then(|t| t.parse().ok())
            .unwrap_or(60);
        // Refresh a little before the carrier expires it.
        let exp = Instant::now() + Duration::from_secs(ttl.saturating_sub(ttl / 10).max(1));
        *cached = Some((token.clone(), exp));
        Ok(token)
    }

    /// An authenticated call; on `12021` (token expired) refresh and retry once.
    async fn call(
        &self,
        ctx: &CallCtx<'_>,
        class: Class,
        op: &str,
        transid: &str,
        params: &[(&str, String)],
    ) -> CallResult<(String, String, serde_json::Value)> {
        for attempt in 0..2 {
            let token = self.token(ctx).await?;
            match class {
                Class::Change => ctx.change_slot().await,
                Class::Query => ctx.pace.query().await,
            }
            let mut all = vec![("transid", transid.to_owned()), ("token", token)];
            all.extend(params.iter().cloned());
            let r = self.envelope(op, &all).await?;
            if r.0 == "12021" && attempt == 0 {
                *self.token.lock().await = None;
                continue;
            }
            return Ok(r);
        }
        Err(CallError::transient("token refused twice"))
    }

    async fn order_info(
        &self,
        ctx: &CallCtx<'_>,
        params: &[(&str, String)],
    ) -> CallResult<Option<serde_json::Value>> {
        let (status, msg, result) = self
            .call(
                ctx,
                Class::Query,
                "query/order-info",
                &self.transid(),
                params,
            )
            .await?;
        match status.as_str() {
            "0" => Ok(result.get(0).cloned()),
            "12097" => Ok(None),
            _ => Err(map_status(&status, &msg)),
        }
    }
}

#[tonic::async_trait]
impl CarrierApi for Cmcc {
    fn carrier(&self) -> Carrier {
        Carrier::Cmcc
    }

    /// appid + China time of the first attempt + the process sequence. Made
    /// once and stored before the call, so it need not be derivable from the
    /// item (an earlier hash of the item id could repeat within a second).
    fn make_txn(&self, _item: &Item, _now: DateTime<Utc>) -> String {
        self.transid()
    }

    async fn submit(&self, ctx: &CallCtx<'_>, item: &Item) -> CallResult<Accepted> {
        let card = ("iccid", item.card.clone());
        let status_change = |t: &str| {
            (
                "change/sim-status",
                vec![card.clone(), ("operType", t.to_owned())],
            )
        };
        let (op, params): (&str, Vec<(&str, String)>) = match item.op.kind.as_ref() {
            Some(O::Activate(_)) => status_change("6"),
            Some(O::Stop(_)) => status_change("0"),
            Some(O::Resume(_)) => status_change("1"),
            Some(O::CloseCard(_)) => status_change("7"),
            Some(O::SetUsageThreshold(t)) => (
                "limit/group-member-data-usage",
                vec![
                    card.clone(),
                    ("operType", "1".into()),
                    ("limitValue", t.threshold_mb.to_string()),
                ],
            ),
            Some(O::CancelUsageThreshold(_)) => (
                "limit/group-member-data-usage",
                vec![card.clone(), ("operType", "2".into())],
            ),
            Some(O::Rebind(r)) => (
                "backoffice/rebind",
                vec![card.clone(), ("imei", r.imei.clone())],
            ),
            Some(O::RegionBind(r)) => {
                let code = r.region.split('_').next().unwrap_or("").to_owned();
                (
                    "backoffice/region-bind",
                    vec![card.clone(), ("provinceCode", code)],
                )
            }
            Some(O::DirectionalAdd(a)) => (
                "backoffice/directional",
                vec![
                    ("batchNo", item.batch_no.clone()),
                    ("action", "add".into()),
                    ("entries", a.entries.join(",")),
                ],
            ),
            Some(O::DirectionalModify(m)) => (
                "backoffice/directional",
                vec![
                    ("batchNo", item.batch_no.clone()),
                    ("action", "modify".into()),
                    ("entryId", m.entry_id.clone()),
                    ("entry", m.entry.clone()),
                ],
            ),
            Some(O::DirectionalDelete(d)) => (
                "backoffice/directional",
                vec![
                    ("batchNo", item.batch_no.clone()),
                    ("action", "delete".into()),
                    ("entryIds", d.entry_ids.join(",")),
                ],
            ),
            _ => {
                return Err(CallError::refused(
                    ErrorCode::NotSupported,
                    "",
                    "China Mobile does not offer this operation",
                ));
            }
        };
        let (status, msg, result) = self.call(ctx, Class::Change, op, ctx.txn, &params).await?;
        if status != "0" {
            return Err(map_status(&status, &msg));
        }
        let order = result
            .get(0)
            .map(|r| s(r, "orderNum").to_owned())
            .unwrap_or_default();
        if order.is_empty() {
            return Err(CallError::Unknown {
                reason: "accepted without an order number".into(),
            });
        }
        Ok(Accepted {
            ticket: order.clone(),
            poll_ref: order,
        })
    }

    async fn poll(&self, ctx: &CallCtx<'_>, _item: &Item, acc: &Accepted) -> CallResult<Progress> {
        let o = self
            .order_info(ctx, &[("orderNum", acc.poll_ref.clone())])
            .await?
            .ok_or_else(|| {
                CallError::refused(
                    ErrorCode::CarrierFailed,
                    "12097",
                    "the carrier has no such order",
                )
            })?;
        Ok(match s(&o, "orderStatus") {
            "2" => Progress::Succeeded,
            "3" => Progress::Failed {
                carrier_code: "3".into(),
                message: "order failed at the carrier".into(),
            },
            _ => Progress::Pending,
        })
    }

    async fn lookup(&self, ctx: &CallCtx<'_>, _item: &Item) -> CallResult<Option<Accepted>> {
        Ok(self
            .order_info(ctx, &[("origTransid", ctx.txn.to_owned())])
            .await?
            .map(|o| {
                let n = s(&o, "orderNum").to_owned();
                Accepted {
                    ticket: n.clone(),
                    poll_ref: n,
                }
            }))
    }

    async fn ping(&self) -> Result<(), String> {
        let params = [
            ("appid", self.appid.clone()),
            ("password", self.password.clone()),
            ("transid", self.transid()),
        ];
        match self.envelope("get/token", &params).await {
            Ok((status, _, _)) if status == "0" => Ok(()),
            Ok((status, msg, _)) => Err(format!("token refused: {status} {msg}")),
            Err(e) => Err(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn item(card: &str) -> Item {
        Item {
            work_order_id: 7,
            card: card.to_owned(),
            index: 0,
            tenant: "t".into(),
            carrier: Carrier::Cmcc,
            op: Default::default(),
            batch_no: String::new(),
        }
    }

    #[test]
    fn transids_have_the_carrier_format_and_never_repeat_in_one_process() {
        let c = Cmcc::new("http://x", "app1", "pw", Duration::from_secs(1));
        let mut seen = HashSet::new();
        for i in 0..20_000 {
            let t = if i % 2 == 0 {
                c.make_txn(&item(&format!("8986{i:016}")), Utc::now())
            } else {
                c.transid()
            };
            let rest = t.strip_prefix("app1").expect("appid prefix");
            assert_eq!(rest.len(), 22, "{t}");
            assert!(rest.bytes().all(|b| b.is_ascii_digit()), "{t}");
            // The 8-digit tail alone must not repeat (the timestamp may).
            assert!(seen.insert(rest[14..].to_owned()), "repeated {t}");
        }
    }
}
