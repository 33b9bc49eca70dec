//! # gsl-domain: the rules of IoT SIM work orders, as data
//!
//! This crate is the executable form of `domain.md`. It does no I/O (the only
//! exception is [`clock::Clock::now`], which reads the system clock), so every
//! service (gateway, adapters, carrier simulator, CLI) applies exactly the same
//! rules, and every rule has a unit test next to it.
//!
//! ## Layout
//!
//! | module | holds |
//! |---|---|
//! | [`ids`] | ICCID (Luhn, `89` prefix, printed-letter rule), IMEI, container ids, [`ids::CardId`] |
//! | [`carrier`] | the four carriers, issuer prefixes, APNs |
//! | [`card`] | `sim_status` and `operator_status` codes, [`card::CardFacts`] the rules look at |
//! | [`operation`] | the operations a work order can carry and their parameters |
//! | [`capability`] | **the capability / precondition table** (operation x carrier) |
//! | [`speed`], [`threshold`], [`region`] | per-operation parameter value sets |
//! | [`directional`] | directional-config entry parser, per-carrier limits, entry states |
//! | [`limits`] | batch limits per operation |
//! | [`sla`] | **the SLA table** |
//! | [`cooldown`] | per-card cooldowns and quotas (CT's 2 rebinds per month) |
//! | [`calendar`] | China business-day calendar (data file), UTC+8 month keys, CU billing month |
//! | [`clock`] | a scalable clock so tests can run "2 working days" in seconds |
//! | [`codes`] | **every error code the system emits**, one table |
//! | [`workorder`] | work-order and item statuses and their legal transitions |
//!
//! Rule tables are `static` slices of plain structs: a reader can check them
//! against `domain.md` row by row, and the tests in each module walk every row.
//!
//! Adding a carrier or an operation touches these tables first; the full
//! checklists (every file) are in the adapter service's crate doc
//! (`services/adapter/src/lib.rs`, "Adding a carrier", "Adding an operation").
#![forbid(unsafe_code)]

pub mod calendar;
pub mod capability;
pub mod card;
pub mod carrier;
pub mod clock;
pub mod codes;
pub mod cooldown;
pub mod directional;
pub mod ids;
pub mod limits;
pub mod operation;
pub mod region;
pub mod sla;
pub mod speed;
pub mod threshold;
pub mod workorder;

pub use capability::{RuleViolation, check_capability};
pub use card::{CardFacts, SimStatus, StopReason};
pub use carrier::Carrier;
pub use codes::ErrorCode;
pub use ids::{CardId, Iccid, IdError, Imei};
pub use operation::{Operation, OperationKind};
