//! # gsl-adapter: the four carrier adapters
//!
//! One binary, started once per carrier (`GSL_CARRIER=cmcc|ct|cu|trinet`):
//! the shared machinery is `gsl-adapter-kit`; what differs per carrier is
//! one module here that maps operations to the carrier's API and its answers
//! to our codes.
//!
//! ## Layout
//!
//! * [`cmcc`]: China Mobile OneLink (token, `transid`, back-office requests);
//! * [`ct`]: China Telecom CMP (signing, add-to-modify and forced-activation fallbacks);
//! * [`cu`]: China Unicom Jasper (`PUT` devices, 429 with `Retry-After`);
//! * [`trinet`]: the tri-net platform (switches, policies, active profile);
//! * [`common`]: answers every carrier gives the same meaning.
#![forbid(unsafe_code)]

pub mod cmcc;
pub mod common;
pub mod ct;
pub mod cu;
pub mod trinet;

use gsl_adapter_kit::carrier::CarrierApi;
use gsl_adapter_kit::config::AdapterConfig;
use gsl_domain::Carrier;
use std::sync::Arc;

/// The module for the configured carrier.
pub fn module_for(cfg: &AdapterConfig) -> Arc<dyn CarrierApi> {
    let (url, user, secret, t) = (
        &cfg.carrier_url,
        &cfg.carrier_user,
        &cfg.carrier_secret,
        cfg.call_timeout,
    );
    match cfg.carrier {
        Carrier::Cmcc => Arc::new(cmcc::Cmcc::new(url, user, secret, t)),
        Carrier::Ct => Arc::new(ct::Ct::new(url, user, secret, t)),
        Carrier::Cu => Arc::new(cu::Cu::new(url, user, secret, t)),
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
            let cmcc_unknown = matches!(crate::cmcc::map_status(&code, &msg), CallError::Unknown { .. });
            let ct_unknown = matches!(crate::ct::map_code(&code, &msg), CallError::Unknown { .. });
            prop_assert!(!cmcc_unknown);
            prop_assert!(!ct_unknown);
        }

        #[test]
        fn rest_refusals(status in 100u16..600, body in json()) {
            let _ = crate::cu::Cu::refusal(status, &body);
            let _ = crate::trinet::Trinet::refusal(status, &body);
            let _ = crate::common::s(&body, "status");
        }
    }
}
