//! `gsl-bench [name...]`: run benchmarks, print one `BENCH {json}` line per
//! figure. `BENCH_MODE=smoke` runs each briefly (CI); the default is a full
//! run. Benchmarks never assert: they measure and print.
//!
//! Services run as separate processes (release binaries next to this one), as
//! they would in production, so a figure includes real sockets and real
//! process boundaries. Every throughput figure has a baseline measured in the
//! same run on the same machine, and is a median of several rounds.
#![forbid(unsafe_code)]

mod cardlist;
mod cards;
mod carrier;
mod common;
mod e2e;
mod gateway;
mod push;
mod rate;
mod sim;
mod sync;

use std::collections::BTreeMap;

type BenchFn = fn(&common::Mode) -> futures::future::BoxFuture<'_, Result<(), String>>;

fn registry() -> BTreeMap<&'static str, BenchFn> {
    let mut m: BTreeMap<&'static str, BenchFn> = BTreeMap::new();
    m.insert("sim", |mode| Box::pin(sim::run(mode)));
    m.insert("carrier", |mode| Box::pin(carrier::run(mode)));
    m.insert("cards", |mode| Box::pin(cards::run(mode)));
    m.insert("e2e", |mode| Box::pin(e2e::run(mode)));
    m.insert("gateway", |mode| Box::pin(gateway::run(mode)));
    m.insert("rate", |mode| Box::pin(rate::run(mode)));
    m.insert("sync", |mode| Box::pin(sync::run(mode)));
    m.insert("push", |mode| Box::pin(push::run(mode)));
    m
}

#[tokio::main]
async fn main() {
    let mode = common::Mode::from_env();
    let reg = registry();
    let mut names: Vec<String> = std::env::args().skip(1).collect();
    if names.is_empty() || names.iter().any(|n| n == "all") {
        names = reg.keys().map(|s| s.to_string()).collect();
    }
    let mut failed = false;
    for n in &names {
        // A benchmark is named by its group or by one of its figures.
        let group = reg
            .keys()
            .find(|g| n == *g || n.starts_with(&format!("{g}_")))
            .copied();
        let Some(group) = group else {
            eprintln!(
                "unknown benchmark {n:?}; known: {}",
                reg.keys().copied().collect::<Vec<_>>().join(", ")
            );
            std::process::exit(2);
        };
        eprintln!("== bench {group} ({:?})", mode.kind);
        if let Err(e) = reg[group](&mode).await {
            eprintln!("bench {group} failed: {e}");
            failed = true;
        }
    }
    match common::write_summary(&mode) {
        Ok(path) => eprintln!("figures written to {path}"),
        Err(e) => eprintln!("could not write the figures: {e}"),
    }
    if failed {
        std::process::exit(1);
    }
}
