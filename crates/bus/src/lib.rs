//! # gsl-bus: everything about NATS JetStream in one place
//!
//! NATS JetStream is the only stateful dependency. This crate names every
//! stream, subject, bucket and header, creates them (idempotently), encodes the
//! protobuf bus messages, publishes many messages with many acks in flight, and
//! carries W3C trace context through NATS headers.
//!
//! ## Layout
//!
//! | module | holds |
//! |---|---|
//! | [`names`] | stream, subject, bucket and header names; subject builders |
//! | [`topology`] | [`topology::ensure`]: create or update every stream and bucket |
//! | [`connect`] | connection settings from the environment, a JetStream context with backpressure |
//! | [`codec`] | protobuf encode / decode with typed errors |
//! | [`publish`] | pipelined publishing (many acks in flight) with de-duplication ids |
//! | [`kv`] | compare-and-set helpers: atomic create, update on revision, retry loops |
//! | [`trace`] | W3C `traceparent` injector / extractor for NATS headers |
#![forbid(unsafe_code)]

pub mod backoffice;
pub mod codec;
pub mod connect;
pub mod kv;
pub mod names;
pub mod permissions;
pub mod publish;
pub mod topology;
pub mod trace;

pub use connect::{BusConfig, TopologyMode, connect};
pub use topology::{Buckets, Topology};

use thiserror::Error;

/// Errors from bus operations, by what failed.
#[derive(Debug, Error)]
pub enum BusError {
    #[error("cannot connect to NATS at {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("cannot create or update {what}: {reason}")]
    Topology { what: String, reason: String },
    #[error("publish to {subject} failed: {reason}")]
    Publish { subject: String, reason: String },
    #[error("key-value {op} on {key} failed: {reason}")]
    Kv {
        op: &'static str,
        key: String,
        reason: String,
    },
    #[error("compare-and-set on {key} lost {attempts} times in a row")]
    Contended { key: String, attempts: u32 },
    #[error(transparent)]
    Codec(#[from] codec::CodecError),
}

impl BusError {
    pub fn kv(op: &'static str, key: impl Into<String>, e: impl std::fmt::Display) -> BusError {
        BusError::Kv {
            op,
            key: key.into(),
            reason: e.to_string(),
        }
    }
}
