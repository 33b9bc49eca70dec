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
