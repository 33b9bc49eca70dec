//! An adapter process killed (SIGKILL) in the middle of a batch and started
//! again: every item gets exactly one final outcome, and the carrier applied
//! each change exactly once, under one transaction id.

mod common;

use common::*;
use gsl_adapter_kit::config::Rate;
use gsl_carrier_sim::inventory::CardRecord;
use gsl_domain::Carrier;
use gsl_domain::card::{SimStatus, StopReason};
use gsl_proto::v1;
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

#[tokio::test]
async fn adapter_killed_mid_batch_loses_and_repeats_nothing() {
    const N: u64 = 200;
    let opts = Opts {
        carriers: vec![],
        rate_change: Rate::per_second(40),
        ..Default::default()
    };
    let s = stack(Opts {
        carriers: vec![],
        rate_change: Rate::per_second(40),
        ..Default::default()
    })
    .await;
    let env = s.adapter_env(Carrier::Ct, &opts);
    let mut cards = Vec::new();
    for i in 0..N {
        cards.push(s.card(Carrier::Ct, 2000 + i, in_use).await);
    }
    let o = s
        .submit("kill-batch", v1::operation::Kind::Stop(v1::Stop {}), &cards)
        .await;
    let mut a = spawn_adapter(&env);
    let mut c = s.orders().await;
    let mut done_at_kill = 0;
    for _ in 0..600 {
        let w = c
            .get(authed(v1::GetRequest { id: o.id }))
            .await
            .unwrap()
            .into_inner();
        done_at_kill = w.succeeded + w.failed;
        if done_at_kill >= N / 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    a.start_kill().unwrap();
    a.wait().await.unwrap();
    assert!(
        done_at_kill < N,
        "killed mid-batch ({done_at_kill} of {N} done)"
    );
    let _b = spawn_adapter(&env);
    let w = s.settled(o.id, Duration::from_secs(120)).await;
    assert_eq!(
        (w.succeeded, w.failed),
        (N, 0),
        "{:?}",
        s.items(o.id)
            .await
            .iter()
            .map(code)
            .filter(|c| !c.is_empty())
            .collect::<Vec<_>>()
    );
    for card in &cards {
        let t = s.sim.engine.truth(Carrier::Ct, card);
        assert_eq!(
            t.applied.get("stop"),
            Some(&1),
            "{card} applied once: {t:?}"
        );
        assert_eq!(
            t.txns.len(),
            1,
            "{card}: one transaction id, a repeat is a replay: {t:?}"
        );
    }
    // Exactly one final outcome event per item.
    let client = async_nats::connect(s.nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let stream = js.get_stream(gsl_bus::names::STREAM_EVENTS).await.unwrap();
    let consumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig {
            filter_subject: gsl_bus::names::order_events_filter("acme", o.id),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut msgs = futures::StreamExt::boxed(consumer.messages().await.unwrap());
    let mut finals = std::collections::HashMap::<String, u32>::new();
    while let Ok(Some(Ok(m))) =
        tokio::time::timeout(Duration::from_secs(2), futures::StreamExt::next(&mut msgs)).await
    {
        let e: v1::WorkOrderEvent = gsl_bus::codec::decode("WorkOrderEvent", &m.payload).unwrap();
        if let Some(v1::work_order_event::Event::Item(i)) = e.event
            && (i.kind == v1::OutcomeKind::Succeeded as i32
                || i.kind == v1::OutcomeKind::Failed as i32)
        {
            *finals.entry(i.card).or_default() += 1;
        }
    }
    assert_eq!(finals.len() as u64, N);
    assert!(finals.values().all(|n| *n == 1), "one final event per item");
}

/// China Mobile stops go in batch calls of up to 100 MSISDNs. The answer of
/// the first batch is lost (the carrier did the work), and the adapter is
/// SIGKILLed while batches are in flight. Started again, it reads the lost
/// batch's cards back after the repeat window instead of calling again:
/// every card is stopped exactly once, has one final outcome, and no batch
/// is refused because of our own retry.
#[tokio::test]
async fn cmcc_batches_survive_a_kill_and_a_lost_answer() {
    const N: u64 = 450;
    let opts = Opts {
        carriers: vec![],
        rate_change: Rate::per_second(2),
        cmcc_window_s: Some(3),
        ..Default::default()
    };
    let s = stack(opts.clone()).await;
    let env = s.adapter_env(Carrier::Cmcc, &opts);
    let mut cards = Vec::new();
    for i in 0..N {
        cards.push(s.card(Carrier::Cmcc, 5000 + i, in_use).await);
    }
    let p = s.sim.engine.platform(Carrier::Cmcc);
    p.faults
        .drop_change_answers
        .store(1, std::sync::atomic::Ordering::SeqCst);
    let o = s
        .submit("kill-cmcc", v1::operation::Kind::Stop(v1::Stop {}), &cards)
        .await;
    let mut a = spawn_adapter(&env);
    // Kill once the lost batch and at least one more were called.
    for _ in 0..1500 {
        if p.world.jobs.lock().unwrap().len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    a.start_kill().unwrap();
    a.wait().await.unwrap();
    let at_kill = p.world.jobs.lock().unwrap().len();
    assert!(at_kill >= 1, "no batch before the kill");
    assert!(at_kill < 5, "killed mid-way ({at_kill} batches)");
    let _b = spawn_adapter(&env);
    let w = s.settled(o.id, Duration::from_secs(120)).await;
    assert_eq!(
        (w.succeeded, w.failed),
        (N, 0),
        "{:?}",
        s.items(o.id)
            .await
            .iter()
            .map(code)
            .filter(|c| !c.is_empty())
            .collect::<Vec<_>>()
    );
    for card in &cards {
        let t = s.sim.engine.truth(Carrier::Cmcc, card);
        assert_eq!(
            t.applied.get("stop"),
            Some(&1),
            "{card} stopped once: {t:?}"
        );
    }
    assert_eq!(
        p.probes
            .batch_refusals
            .load(std::sync::atomic::Ordering::SeqCst),
        0,
        "a batch was refused: a card went into a batch inside its repeat window"
    );
    let jobs = p.world.jobs.lock().unwrap().len();
    assert!(
        (5..=8).contains(&jobs),
        "{N} cards in {jobs} batch calls (5 full ones, a few more after the kill)"
    );
}

#[tokio::test]
async fn sigterm_drains_a_busy_adapter_and_loses_nothing() {
    const N: u64 = 60;
    // 10 calls per second: items wait for the budget, so the adapter holds work when told to stop.
    let opts = Opts {
        carriers: vec![],
        rate_change: Rate::per_second(10),
        ..Default::default()
    };
    let s = stack(Opts {
        carriers: vec![],
        rate_change: Rate::per_second(10),
        ..Default::default()
    })
    .await;
    let env = s.adapter_env(Carrier::Ct, &opts);
    let mut cards = Vec::new();
    for i in 0..N {
        cards.push(s.card(Carrier::Ct, 3000 + i, in_use).await);
    }
    let o = s
        .submit("drain", v1::operation::Kind::Stop(v1::Stop {}), &cards)
        .await;
    let mut a = spawn_adapter(&env);
    let mut c = s.orders().await;
    for _ in 0..500 {
        let w = c
            .get(authed(v1::GetRequest { id: o.id }))
            .await
            .unwrap()
            .into_inner();
        if w.succeeded >= 10 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    gsl_testkit::signal(a.id().unwrap(), "TERM").unwrap();
    let started = std::time::Instant::now();
    let status = tokio::time::timeout(Duration::from_secs(30), a.wait())
        .await
        .expect("exits after draining")
        .unwrap();
    assert!(status.success(), "clean exit: {status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "drained within the ack wait: {:?}",
        started.elapsed()
    );
    let mid = c
        .get(authed(v1::GetRequest { id: o.id }))
        .await
        .unwrap()
        .into_inner();
    assert!(
        mid.succeeded < N,
        "stopped with work left ({} of {N})",
        mid.succeeded
    );
    let _b = spawn_adapter(&env);
    let w = s.settled(o.id, Duration::from_secs(120)).await;
    assert_eq!((w.succeeded, w.failed), (N, 0));
    for card in &cards {
        let t = s.sim.engine.truth(Carrier::Ct, card);
        assert_eq!(t.applied.get("stop"), Some(&1), "{card}: {t:?}");
    }
}
