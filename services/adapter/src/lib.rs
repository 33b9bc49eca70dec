//! # gsl-adapter: the four carrier adapters
//!
//! One binary, started once per carrier (`GSL_CARRIER=cmcc|ct|cu|trinet`):
//! the shared machinery is `gsl-adapter-kit`; what differs per carrier is
//! one module here that maps operations to the carrier's API and its answers
//! to our codes.
//!
//! ## Layout
//!
//! * [`cmcc`]: China Mobile OneLink EC v5 (token, `transid`, state-picked
//!   `operType`, order status strings, back-office operations);
//! * [`ct`]: China Telecom 5GCMP + DCP (both signatures, four answer
//!   shapes, completion by reading the card);
//! * [`cu`]: China Unicom Jasper (synchronous `PUT` devices, one budget,
//!   one call in flight, plans by mapping);
//! * [`trinet`]: the tri-net platform (switches, policies, active profile);
//! * [`common`]: answers every carrier gives the same meaning;
//! * [`sync`]: card sync reads per carrier (plans, read calls, parsers).
//!
//! ## Adding a carrier
//!
//! Everything below is needed; the compiler finds the `match`es on
//! [`gsl_domain::Carrier`] once step 1 is done, and the string lists are
//! derived from `Carrier::ALL`.
//!
//! 1. The contract: `../shared/carriers/<c>.md` (facts with sources).
//! 2. Types: `proto/gsl/v1/common.proto` (`Carrier`),
//!    `crates/domain/src/carrier.rs` (`ALL`, name, ICCID issuer prefixes),
//!    `crates/proto/src/convert.rs` (to and from the wire).
//! 3. Rule tables (data): `crates/domain/src/{capability,sla,cooldown,directional,speed}.rs`.
//! 4. The module: `services/adapter/src/<c>.rs` (settings, request
//!    builders and parsers, `answers()` from its contract, the
//!    `CarrierApi` impl), and its arm in [`module_for`] here.
//! 5. The simulator, independently from the contract:
//!    `services/carrier-sim/src/<c>.rs` (with its gate `STYLE`), its router
//!    in `services/carrier-sim/src/lib.rs`, credentials in `config.rs`, id
//!    formats in `inventory.rs`.
//! 6. Fixtures both sides are tested against: `tests/contracts/<c>.json`.
//! 7. Deploy and scripts: `deploy/k8s/base/{adapter-<c>.yaml,kustomization.yaml,networkpolicy.yaml}`,
//!    the overlays, `deploy/k8s/nats-values.yaml` (render it with
//!    `scripts/nats-values-users.sh`), `docker-compose.yml`,
//!    `scripts/{stack.sh,nats-users-conf.sh,nats-values-users.sh,demo.sh}`.
//! 8. Docs: `docs/carriers.md` (how each operation is done, what its
//!    answers mean), `docs/carrier-sim.md`, `docs/operations.md`.
//!
//! ## Adding an operation
//!
//! 1. `proto/gsl/v1/common.proto`: the `Operation` oneof message and the
//!    `OperationKind` value.
//! 2. `crates/domain/src/operation.rs` (`OperationKind`, `Operation`), its
//!    rows in `capability.rs`, `sla.rs`, `limits.rs` (and `cooldown.rs`).
//! 3. `crates/proto/src/convert.rs` (kind and operation to the domain) and
//!    **`crates/proto/src/ops.rs`**, the one catalogue the intake, gslctl,
//!    the per-card values and the contract tests share (`build`,
//!    `REQUIRED`, `with_card`).
//! 4. The gateway: `services/gateway/src/validate.rs` (whole-request
//!    checks) and `registry.rs` (what a success changes on the card).
//! 5. Each carrier module that offers it (`services/adapter/src/*.rs`), or
//!    its `back_office` answer; each simulated platform
//!    (`services/carrier-sim/src/*.rs` and `engine/`).
//! 6. gslctl: a flag in `services/gslctl/src/ops.rs` if it takes a new
//!    parameter; output names in `output.rs`.
//! 7. Fixtures (`tests/contracts/*.json`, `services/adapter/tests/contracts.rs`'s
//!    fixture names) and docs (`docs/intake.md`'s schema, `docs/carriers.md`).
#![forbid(unsafe_code)]

pub mod cmcc;
pub mod common;
pub mod ct;
pub mod cu;
pub mod sync;
pub mod trinet;

use gsl_adapter_kit::carrier::CarrierApi;
use gsl_adapter_kit::config::AdapterConfig;
use gsl_domain::Carrier;
use std::sync::Arc;

/// The module for the configured carrier.
pub fn module_for(cfg: &AdapterConfig) -> Arc<dyn CarrierApi> {
    let (url, secret) = (&cfg.carrier_url, &cfg.carrier_secret);
    // One request stack per module: per-attempt timeout, attempts.
    let answers = match cfg.carrier {
        Carrier::Cmcc => cmcc::answers(cfg),
        Carrier::Ct => ct::answers(cfg),
        Carrier::Cu => cu::answers(cfg),
        Carrier::Trinet => trinet::answers(cfg),
    };
    let t = gsl_adapter_kit::http::Http::new(cfg.call_timeout, cfg.call_attempts)
        .with_max_answer(cfg.max_answer)
        .with_policy(answers);
    match cfg.carrier {
        Carrier::Cmcc => Arc::new(cmcc::Cmcc::new(
            url,
            cmcc::CmccSettings::from_config(cfg),
            t,
        )),
        Carrier::Ct => Arc::new(ct::Ct::new(url, ct::CtSettings::from_config(cfg), t)),
        Carrier::Cu => Arc::new(cu::Cu::new(url, cu::CuSettings::from_config(cfg), t)),
        Carrier::Trinet => Arc::new(trinet::Trinet::new(url, secret, t)),
    }
}

#[cfg(test)]
mod answer_parsing {
    //! Carrier answers are outside our control: whatever comes back maps to
    //! an outcome, never a panic.
    use gsl_adapter_kit::carrier::CallError;
    use proptest::prelude::*;

    fn json() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            "\\PC{0,16}".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
                proptest::collection::btree_map("[a-zA-Z]{0,12}", inner, 0..4)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        #[test]
        fn cmcc_and_ct_codes(code in "\\PC{0,12}", msg in "\\PC{0,40}") {
            // A status code is an answer: never "outcome unknown".
            let env = serde_json::json!({"status": code, "message": msg});
            let cmcc_unknown = matches!(crate::cmcc::envelope(&env), Err(CallError::Unknown { .. }));
            prop_assert!(!cmcc_unknown);
            let a = crate::ct::Answer { code: code.clone(), desc: msg.clone(), txn: String::new() };
            let ct_unknown = matches!(crate::ct::refusal(&a), CallError::Unknown { .. });
            prop_assert!(!ct_unknown);
            let _ = crate::ct::parse_answer(&msg);
            let _ = crate::ct::parse_answer(&format!("<SvcCont><RspCode>{code}</RspCode>{msg}"));
        }

        #[test]
        fn rest_refusals(status in 100u16..600, body in json()) {
            let _ = crate::cu::refusal(status, &body);
            let _ = crate::cmcc::parse_change("change/sim-status", &body);
            let _ = crate::cmcc::parse_order(&body);
            let _ = crate::trinet::Trinet::refusal(status, &body);
            let _ = crate::common::s(&body, "status");
        }
    }
}
