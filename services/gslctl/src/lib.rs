//! # gslctl: the operator CLI
//!
//! ```text
//! gslctl submit stop 8986031... 8986031...            submit for cards given inline
//! gslctl submit rebind --file cards.xlsx --watch       from a batch file, then follow it
//! gslctl submit stop --file cards.csv --validate-only  report every bad row, send nothing
//! gslctl get 42 | list | items 42 | history <card> | cancel 42 | approve 42 | watch 42
//! gslctl cards import cards.csv | cards get <card>
//! ```
//!
//! Settings: flags, then `GSL_GATEWAY` / `GSL_TOKEN`, then the config file
//! (`--config`, default `$HOME/.config/gslctl/config`, lines `gateway = ...`,
//! `token = ...`). Output: `--output table` (default) or `--output json`.
//!
//! Exit codes scripts can rely on: [`EXIT_OK`] 0, [`EXIT_FAILED`] 1 (transport
//! or server error), [`EXIT_INVALID`] 2 (usage error, bad file, bad rows),
//! [`EXIT_ITEMS_FAILED`] 3 (the order finished with failed items, or was
//! rejected), [`EXIT_REFUSED`] 4 (the gateway refused the request as a whole).
//!
//! ## Layout
//!
//! * [`cli`]: the command line (flags, settings, the credential of each
//!   role, dispatch);
//! * [`cmd`]: one file per command group (submit, orders, cards, back office);
//! * [`batch`]: CSV / xlsx batch files and their row-by-row validation;
//! * [`ops`]: operations from flags;
//! * [`output`]: tables and JSON;
//! * [`watch`]: the progress bar that survives a dropped connection.
#![forbid(unsafe_code)]

pub mod batch;
pub mod cli;
pub mod cmd;
pub mod ops;
pub mod output;
pub mod watch;

pub const EXIT_OK: i32 = 0;
pub const EXIT_FAILED: i32 = 1;
pub const EXIT_INVALID: i32 = 2;
pub const EXIT_ITEMS_FAILED: i32 = 3;
pub const EXIT_REFUSED: i32 = 4;

/// The exit code for a gRPC error: refusals of the request are 4, the rest 1.
pub fn exit_for(s: &tonic::Status) -> i32 {
    match s.code() {
        tonic::Code::InvalidArgument
        | tonic::Code::FailedPrecondition
        | tonic::Code::ResourceExhausted
        | tonic::Code::AlreadyExists
        | tonic::Code::NotFound
        | tonic::Code::PermissionDenied
        | tonic::Code::Unauthenticated => EXIT_REFUSED,
        _ => EXIT_FAILED,
    }
}

/// A request with the bearer token.
pub fn authed<T>(token: &str, m: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(m);
    if let Ok(v) = format!("Bearer {token}").parse() {
        r.metadata_mut().insert("authorization", v);
    }
    r
}
