//! A carrier endpoint that answers 50 MiB to every call: the adapter reads
//! no more than its cap (`GSL_MAX_ANSWER_BYTES`, 1 MiB), treats the call as
//! a carrier fault with the reason on the item, and its process stays under
//! its pod limit (128 MiB in deploy/k8s).

mod common;

use common::*;
use gsl_domain::Carrier;
use gsl_domain::card::{SimStatus, StopReason};
use gsl_proto::v1;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Answers every request with `HTTP 200` and `len` bytes of JSON-looking
/// text, streamed; counts the requests.
async fn huge_answers(len: usize) -> (String, Arc<AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let served = Arc::new(AtomicUsize::new(0));
    let count = served.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let count = count.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                // One request per connection: read its head.
                if s.read(&mut buf).await.unwrap_or(0) == 0 {
                    return;
                }
                count.fetch_add(1, Ordering::SeqCst);
                let head: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n{\"status\":\"0\",\"pad\":\"";
                if s.write_all(head).await.is_err() {
                    return;
                }
                let chunk = vec![b'a'; 256 * 1024];
                let mut left = len;
                while left > 0 {
                    let n = left.min(chunk.len());
                    if s.write_all(&chunk[..n]).await.is_err() {
                        return;
                    }
                    left -= n;
                }
                let _ = s.write_all(b"\"}").await;
            });
        }
    });
    (format!("http://{addr}"), served)
}

fn vm_hwm_mib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap()
        / 1024
}

#[tokio::test]
async fn a_fifty_mib_carrier_answer_stays_under_the_pod_limit() {
    const POD_LIMIT_MIB: u64 = 128;
    let opts = Opts {
        carriers: vec![],
        ..Default::default()
    };
    let s = stack(opts.clone()).await;
    let card = s
        .card(Carrier::Cu, 7100, |c| {
            c.status = SimStatus::InUse;
            c.stop_reason = StopReason::Normal;
        })
        .await;
    let (url, served) = huge_answers(50 * 1024 * 1024).await;
    let mut env = s.adapter_env(Carrier::Cu, &opts);
    for (k, v) in env.iter_mut() {
        if k == "GSL_CARRIER_URL" {
            *v = url.clone();
        }
    }
    env.push(("GSL_MAX_DELIVER".into(), "2".into()));
    env.push(("GSL_CALL_ATTEMPTS".into(), "1".into()));
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_gsl-adapter"))
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn gsl-adapter");
    let pid = child.id().unwrap();
    let o = s
        .submit(
            "huge-answer",
            v1::operation::Kind::Stop(v1::Stop {}),
            &[card],
        )
        .await;
    // The change call, then the reads that try to learn its outcome: each
    // answered with 50 MiB.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while served.load(Ordering::SeqCst) < 2 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let calls = served.load(Ordering::SeqCst);
    let peak = vm_hwm_mib(pid);
    println!(
        "adapter peak RSS {peak} MiB after {calls} answers of 50 MiB (pod limit {POD_LIMIT_MIB} MiB)"
    );
    assert!(calls >= 2, "the change and a read of its outcome ({calls})");
    assert!(
        child.try_wait().unwrap().is_none(),
        "the adapter is still running"
    );
    assert!(peak < POD_LIMIT_MIB, "adapter peak RSS {peak} MiB");
    // The item does not end as a success nor as a refusal: the outcome of a
    // change whose answer was cut off is unknown, and the reason says why.
    let w = s.settled(o.id, Duration::from_secs(90)).await;
    let items = s.items(o.id).await;
    let p = items[0].problem.clone().unwrap_or_default();
    assert_eq!(w.succeeded, 0, "{items:?}");
    assert!(p.message.contains("cap"), "{p:?}");
    let _ = child.start_kill();
}
