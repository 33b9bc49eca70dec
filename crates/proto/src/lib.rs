//! # gsl-proto: the wire protocol
//!
//! Generated from `proto/gsl/v1/*.proto` (services `WorkOrders`, `Registry`,
//! `Results`; bus messages `WorkItem`, `ItemOutcome`, `WorkOrderEvent`,
//! `IntakeRequest`, `DeadLetter`), plus the conversions between wire enums and
//! the domain types, so that no service converts by hand.
//!
//! ## Layout
//!
//! * [`v1`]: the generated code (`gsl.v1` package);
//! * [`convert`]: wire <-> domain conversions and timestamp helpers;
//! * [`ops`]: the one catalogue of operations at the edges (intake JSON,
//!   `gslctl` flags, contract fixtures, per-card values);
//! * [`FILE_DESCRIPTOR_SET`]: for gRPC server reflection.
#![forbid(unsafe_code)]

/// The `gsl.v1` package.
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod v1 {
    tonic::include_proto!("gsl.v1");
}

pub mod convert;
pub mod ops;

/// Encoded descriptors of every message and service, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("gsl_descriptor");
