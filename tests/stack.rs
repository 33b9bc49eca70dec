//! The local stack script end to end: start, ready, one order through every
//! service, NATS authentication, a clean stop.

use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

/// A base port with the next 10 ports free.
fn free_base() -> u16 {
    for _ in 0..200 {
        let base = 20_000 + (std::process::id() as u16 % 200) * 100 + (rand_u16() % 90);
        if (0..10).all(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok()) {
            return base;
        }
    }
    panic!("no free port range")
}

fn rand_u16() -> u16 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u16
}

/// Kills a process group when dropped (a failing test leaves nothing behind).
struct KillGroup(u32);

impl Drop for KillGroup {
    fn drop(&mut self) {
        // `--`: without it `kill` reads the negative group id as an option.
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--"])
            .arg(format!("-{}", self.0))
            .status();
    }
}

#[tokio::test]
async fn stack_script_starts_serves_an_order_and_stops_cleanly() {
    let root = gsl_testkit::workspace_root();
    let dir = tempfile::tempdir().unwrap();
    let base = free_base();
    let mut stack = tokio::process::Command::new("bash")
        .arg(root.join("scripts/stack.sh"))
        .env("GSL_STACK_DIR", dir.path())
        .env("GSL_STACK_PORT_BASE", base.to_string())
        .env("GSL_STACK_SKIP_BUILD", "1")
        .env("RUST_LOG", "warn")
        .current_dir(&root)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        // Its own process group: if this test fails, the guard below stops
        // every process the script started, not only bash.
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let _group = KillGroup(stack.id().unwrap());
    let mut lines = BufReader::new(stack.stdout.take().unwrap()).lines();
    let ready = tokio::time::timeout(Duration::from_secs(120), async {
        while let Ok(Some(l)) = lines.next_line().await {
            if l == "[stack] ready" {
                return true;
            }
        }
        false
    })
    .await
    .expect("stack ready within 120 s");
    assert!(ready, "stack exited before it was ready");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

    let env: Vec<(String, String)> = std::fs::read_to_string(dir.path().join("stack.env"))
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
        .collect();
    let get = |k: &str| {
        env.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    // One in-use China Telecom card from the simulator's demo inventory.
    let cards: Vec<serde_json::Value> = reqwest::get(format!(
        "{}/admin/ct/cards?offset=0&limit=200",
        get("GSL_SIM")
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let card = cards.iter().find(|c| c["status"] == "in_use").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = tokio::process::Command::new(gsl_e2e::binary("gslctl"))
        .args(["submit", "stop", &card, "--watch", "-o", "json"])
        .env("GSL_GATEWAY", get("GSL_GATEWAY"))
        .env("GSL_TOKEN", get("GSL_TOKEN"))
        .output()
        .await
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let last: serde_json::Value =
        serde_json::from_str(&text[text.rfind("\n{").map(|i| i + 1).unwrap_or(0)..]).unwrap();
    assert_eq!(
        (last["status"].as_str(), last["succeeded"].as_u64()),
        (Some("completed"), Some(1)),
        "{text}"
    );
    // NATS requires credentials.
    let anonymous = async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(2))
        .connect(get("GSL_NATS_URL"))
        .await;
    assert!(anonymous.is_err(), "anonymous connection refused");
    // An adapter's user may not publish work orders on the intake.
    let secrets: Vec<(String, String)> = std::fs::read_to_string(dir.path().join("secrets.env"))
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
        .collect();
    let pw = secrets
        .iter()
        .find(|(k, _)| k == "NATS_PW_CT")
        .unwrap()
        .1
        .clone();
    let adapter = async_nats::ConnectOptions::with_user_and_password("adapter-ct".into(), pw)
        .connect(get("GSL_NATS_URL"))
        .await
        .unwrap();
    let js = async_nats::jetstream::new(adapter);
    let denied = match js.publish("gsl.intake.acme", "{}".into()).await {
        Err(_) => true,
        Ok(ack) => tokio::time::timeout(Duration::from_secs(3), ack)
            .await
            .map(|r| r.is_err())
            .unwrap_or(true),
    };
    assert!(denied, "adapter-ct cannot publish on the intake");
    // The demo, in its smoke form, reaches its end by itself (playing the
    // operator for the China Mobile rebind), twice against the same stack.
    for round in 1..=2 {
        let demo = tokio::process::Command::new("bash")
            .arg(root.join("scripts/demo.sh"))
            .env("GSL_STACK_DIR", dir.path())
            .env("DEMO_SMOKE", "1")
            .current_dir(&root)
            .output();
        let demo = tokio::time::timeout(Duration::from_secs(180), demo)
            .await
            .expect("the demo ends within 180 s")
            .unwrap();
        let text = String::from_utf8_lossy(&demo.stdout);
        assert_eq!(
            demo.status.code(),
            Some(0),
            "demo round {round}: {text}{}",
            String::from_utf8_lossy(&demo.stderr)
        );
        assert!(
            text.contains("demo: every order reached its end\n"),
            "demo round {round}: {text}"
        );
        assert!(text.contains("the demo plays the operator"), "{text}");
        assert!(!text.contains("skipped"), "demo round {round}: {text}");
    }
    // Stop it as a supervisor would (TERM; Ctrl-C's INT takes the same
    // trap, but a shell started in the background ignores INT, and so would
    // this test's stack when the suite itself runs in the background):
    // everything stops, ports are released.
    gsl_testkit::signal(stack.id().unwrap(), "TERM").unwrap();
    let status = tokio::time::timeout(Duration::from_secs(60), stack.wait())
        .await
        .expect("stack stops within 60 s")
        .unwrap();
    assert!(status.success(), "{status:?}");
    for i in 0..10 {
        assert!(
            std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok(),
            "port {} still held",
            base + i
        );
    }
}
