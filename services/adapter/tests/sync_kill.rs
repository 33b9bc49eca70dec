//! A China Telecom sweep under the carrier's strict 5 calls/s, with a work
//! order running beside it: the carrier never answers "over the limit", and
//! an adapter killed (SIGKILL) mid-sweep is followed by one that goes on
//! from the stored cursor instead of starting the sweep again.

mod common;

use common::*;
use gsl_adapter_kit::config::Rate;
use gsl_adapter_kit::sync::sweep::SweepState;
use gsl_carrier_sim::config::{ApiClass, Limit, Limits};
use gsl_domain::Carrier;
use gsl_proto::{convert, v1};
use std::time::Duration;

fn spawn_adapter(env: &[(String, String)]) -> tokio::process::Child {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_gsl-adapter"));
    cmd.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    cmd.spawn().expect("spawn gsl-adapter")
}

async fn sweep_state(kv: &async_nats::jetstream::kv::Store) -> SweepState {
    match kv.get("ct.sweep").await {
        Ok(Some(v)) => serde_json::from_slice(&v).unwrap_or_default(),
        _ => SweepState::default(),
    }
}

#[tokio::test]
async fn a_sweep_under_a_strict_limit_never_goes_over_and_resumes_after_sigkill() {
    const SWEPT: u64 = 60;
    const ORDERED: u64 = 10;
    let strict = Limits {
        change: Limit::per_second(5),
        query: Limit::per_second(5),
        list: Limit::per_second(5),
        shared: false,
    };
    let opts = Opts {
        carriers: vec![],
        sim_limits: Some(strict),
        rate_change: Rate::per_second(5),
        ..Default::default()
    };
    let s = stack(opts.clone()).await;
    let mut env = s.adapter_env(Carrier::Ct, &opts);
    for (k, v) in [
        ("GSL_SYNC", "on"),
        ("GSL_SYNC_INTERVAL_SECS", "30"),
        ("GSL_SYNC_CHUNK", "5"),
        ("GSL_RATE_QUERY", "5"),
    ] {
        env.push((k.into(), v.into()));
    }
    // Cards with their access numbers, as an import from the carrier's
    // records gives them (no look-ups).
    let mut swept = Vec::new();
    let mut ordered = Vec::new();
    let mut import = Vec::new();
    for i in 0..SWEPT + ORDERED {
        let mut card = s.sim.engine.page(Carrier::Ct, 3000 + i, 1).remove(0);
        card.status = gsl_domain::card::SimStatus::InUse;
        card.stop_reason = gsl_domain::card::StopReason::Normal;
        s.sim.engine.put_card(Carrier::Ct, card.clone());
        let mut c = registry_card(Carrier::Ct, &card);
        c.access_number = card.msisdn.clone();
        import.push(c);
        if i < SWEPT {
            swept.push(card.id);
        } else {
            ordered.push(card.id);
        }
    }
    let r = s
        .registry()
        .await
        .import_cards(authed(v1::ImportCardsRequest { cards: import }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.imported, SWEPT + ORDERED, "{:?}", r.refused);
    let o = s
        .submit(
            "stop-beside-sweep",
            v1::operation::Kind::Stop(v1::Stop {}),
            &ordered,
        )
        .await;
    let (_c, js) = gsl_bus::connect(&gsl_bus::BusConfig::new(s.nats.url(), "t"))
        .await
        .unwrap();
    let kv = js.get_key_value(gsl_bus::names::KV_SYNC).await.ok();

    let mut a = spawn_adapter(&env);
    // Kill it a third of the way through the sweep.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let kv = loop {
        let kv = match &kv {
            Some(kv) => kv.clone(),
            None => match js.get_key_value(gsl_bus::names::KV_SYNC).await {
                Ok(kv) => kv,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        if sweep_state(&kv).await.done >= SWEPT / 3 {
            break kv;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the sweep never got going"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    a.start_kill().unwrap();
    a.wait().await.unwrap();
    let killed_at = chrono::Utc::now();
    let at_kill = sweep_state(&kv).await;
    assert!(at_kill.done < SWEPT, "killed mid-sweep: {at_kill:?}");

    let _b = spawn_adapter(&env);
    let w = s.settled(o.id, Duration::from_secs(60)).await;
    assert_eq!(w.status, v1::WorkOrderStatus::Completed as i32, "{w:?}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let st = sweep_state(&kv).await;
        if st.last_complete_ms > 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the sweep never completed: {st:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Resumed, not restarted: the cards read before the kill were not read
    // again in this sweep, and those after the cursor were read after it.
    let mut reg = s.registry().await;
    let mut before = 0;
    let mut after = 0;
    for id in &swept {
        let c = reg
            .get_card(authed(v1::GetCardRequest { id: id.clone() }))
            .await
            .unwrap()
            .into_inner();
        let Some(t) = c.synced_at.as_ref().and_then(convert::from_timestamp) else {
            // Claimed by the killed adapter and never read: at most a chunk.
            continue;
        };
        if t < killed_at {
            before += 1;
            assert!(
                id.as_str() <= at_kill.after.as_str(),
                "{id} read before the kill lies before the cursor"
            );
        } else {
            after += 1;
            assert!(
                id.as_str() > at_kill.after.as_str(),
                "{id} read again after the restart"
            );
        }
    }
    assert!(before >= SWEPT / 3 - 5, "read before the kill: {before}");
    assert!(
        before + after >= SWEPT - 5,
        "read in the sweep: {before} + {after}"
    );
    // Never over the limit, sweep and order together.
    let limiter = &s.sim.engine.platform(Carrier::Ct).access.limiter;
    assert_eq!(limiter.over_limit(ApiClass::Query), 0, "over-limit queries");
    assert_eq!(
        limiter.over_limit(ApiClass::Change),
        0,
        "over-limit changes"
    );
    s.shutdown().await;
}
