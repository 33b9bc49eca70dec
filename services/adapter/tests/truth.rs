//! The carrier path tells the truth, checked against the simulator's ground
//! truth: a carrier that applies a change and then answers HTTP 500 (or
//! drops the connection) never gets a false outcome, nothing is changed
//! twice, no batch is sent again before its members were read; and an
//! adapter SIGKILLed mid-way under the scaled clock finishes every card once.

mod common;

use common::*;
use gsl_adapter_kit::config::Rate;
use gsl_carrier_sim::inventory::CardRecord;
use gsl_domain::Carrier;
use gsl_domain::card::{SimStatus, StopReason};
use gsl_proto::v1;
use std::sync::atomic::Ordering;
use std::time::Duration;

fn in_use(c: &mut CardRecord) {
    c.status = SimStatus::InUse;
    c.stop_reason = StopReason::Normal;
}

fn spawn_adapter(env: &[(String, String)]) -> tokio::process::Child {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_gsl-adapter"));
    cmd.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    cmd.spawn().expect("spawn gsl-adapter")
}

async fn all_succeeded(s: &Stack, id: u64, n: u64, within: Duration) {
    let w = s.settled(id, within).await;
    assert_eq!(
        (w.succeeded, w.failed),
        (n, 0),
        "{:?}",
        s.items(id)
            .await
            .iter()
            .filter_map(|i| i.problem.clone())
            .take(5)
            .collect::<Vec<_>>()
    );
}

/// China Mobile applies the first batch of stops, then answers HTTP 500.
/// The adapter takes that as an unknown outcome: it reads the members back
/// (after the repeat window) and finds them stopped, instead of sending the
/// same batch again (which the carrier refuses whole, after which the
/// members were split, re-sent about twenty times and all failed although
/// the carrier had stopped each of them).
#[tokio::test]
async fn a_cmcc_batch_applied_then_answered_500_is_read_back_not_resent() {
    const N: u64 = 250;
    let opts = Opts {
        carriers: vec![Carrier::Cmcc],
        cmcc_window_s: Some(2),
        ..Default::default()
    };
    let s = stack(opts).await;
    let mut cards = Vec::new();
    for i in 0..N {
        cards.push(s.card(Carrier::Cmcc, 6000 + i, in_use).await);
    }
    let p = s.sim.engine.platform(Carrier::Cmcc);
    p.faults.error_change_answers.store(1, Ordering::SeqCst);
    let o = s
        .submit("cmcc-500", v1::operation::Kind::Stop(v1::Stop {}), &cards)
        .await;
    all_succeeded(&s, o.id, N, Duration::from_secs(120)).await;
    for card in &cards {
        let t = s.sim.engine.truth(Carrier::Cmcc, card);
        assert_eq!(
            t.applied.get("stop"),
            Some(&1),
            "{card} stopped once: {t:?}"
        );
    }
    assert_eq!(
        p.probes.batch_refusals.load(Ordering::SeqCst),
        0,
        "a batch was sent again into its members' repeat window"
    );
    let jobs = p.world.jobs.lock().unwrap().len();
    assert_eq!(jobs, 3, "{N} cards in 3 batch calls, none re-sent");
}

/// China Telecom applies single stops and answers HTTP 500 (or drops the
/// connection): each card is read back and reported succeeded, stopped once.
#[tokio::test]
async fn ct_changes_applied_then_lost_are_read_back() {
    const N: u64 = 6;
    let opts = Opts {
        carriers: vec![Carrier::Ct],
        ..Default::default()
    };
    let s = stack(opts).await;
    let mut cards = Vec::new();
    for i in 0..N {
        cards.push(s.card(Carrier::Ct, 6100 + i, in_use).await);
    }
    let p = s.sim.engine.platform(Carrier::Ct);
    p.faults.error_change_answers.store(3, Ordering::SeqCst);
    p.faults.drop_change_answers.store(3, Ordering::SeqCst);
    let o = s
        .submit("ct-500", v1::operation::Kind::Stop(v1::Stop {}), &cards)
        .await;
    all_succeeded(&s, o.id, N, Duration::from_secs(60)).await;
    for card in &cards {
        let t = s.sim.engine.truth(Carrier::Ct, card);
        assert_eq!(
            t.applied.get("stop"),
            Some(&1),
            "{card} stopped once: {t:?}"
        );
    }
}

/// An adapter SIGKILLed during a China Mobile stop, under the scaled clock
/// (60x: a 10-minute repeat window is 10 real seconds). Batches recorded but
/// never sent, and the batch whose answer was lost, wait out the window on
/// the one clock the services share (before, the wait was computed from the
/// wall clock against a scaled start, every delivery waited the full 600
/// real seconds, and the cards were still processing 10 minutes later).
/// Every card finishes, changed once.
#[tokio::test]
async fn a_kill_under_the_scaled_clock_finishes_every_card_once() {
    const N: u64 = 450;
    let opts = Opts {
        carriers: vec![],
        rate_change: Rate::per_second(2),
        time_scale: Some(60.0),
        cmcc_window_s: Some(600),
        ..Default::default()
    };
    let s = stack(opts.clone()).await;
    let env = s.adapter_env(Carrier::Cmcc, &opts);
    let mut cards = Vec::new();
    for i in 0..N {
        cards.push(s.card(Carrier::Cmcc, 6500 + i, in_use).await);
    }
    let p = s.sim.engine.platform(Carrier::Cmcc);
    p.faults.drop_change_answers.store(1, Ordering::SeqCst);
    let o = s
        .submit(
            "kill-scaled",
            v1::operation::Kind::Stop(v1::Stop {}),
            &cards,
        )
        .await;
    let mut a = spawn_adapter(&env);
    for _ in 0..1500 {
        if p.world.jobs.lock().unwrap().len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    a.start_kill().unwrap();
    a.wait().await.unwrap();
    let _b = spawn_adapter(&env);
    all_succeeded(&s, o.id, N, Duration::from_secs(150)).await;
    for card in &cards {
        let t = s.sim.engine.truth(Carrier::Cmcc, card);
        assert_eq!(
            t.applied.get("stop"),
            Some(&1),
            "{card} stopped once: {t:?}"
        );
    }
    assert_eq!(p.probes.batch_refusals.load(Ordering::SeqCst), 0);
}
