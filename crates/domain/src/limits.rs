//! Batch limits per operation (domain.md, "Batch limits").

use crate::operation::OperationKind;

/// Where a limit comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Documented,
    Project,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimit {
    pub op: OperationKind,
    pub max_items: usize,
    pub source: Source,
}

use OperationKind as K;

/// Cards per work order. Directional config acts on one purchase batch per
/// order (the "item" is the batch).
pub static BATCH_LIMITS: &[BatchLimit] = &[
    BatchLimit {
        op: K::Activate,
        max_items: 100_000,
        source: Source::Documented,
    },
    BatchLimit {
        op: K::Stop,
        max_items: 10_000,
        source: Source::Documented,
    },
    BatchLimit {
        op: K::Resume,
        max_items: 10_000,
        source: Source::Documented,
    },
    BatchLimit {
        op: K::Rebind,
        max_items: 10_000,
        source: Source::Documented,
    },
    BatchLimit {
        op: K::SetUsageThreshold,
        max_items: 10_000,
        source: Source::Documented,
    },
    BatchLimit {
        op: K::CancelUsageThreshold,
        max_items: 10_000,
        source: Source::Documented,
    },
    BatchLimit {
        op: K::RegionBind,
        max_items: 10_000,
        source: Source::Documented,
    },
    BatchLimit {
        op: K::SwitchNetwork,
        max_items: 10_000,
        source: Source::Documented,
    },
    BatchLimit {
        op: K::SwitchPolicy,
        max_items: 10_000,
        source: Source::Documented,
    },
    BatchLimit {
        op: K::CloseCard,
        max_items: 10_000,
        source: Source::Documented,
    },
    BatchLimit {
        op: K::SpeedLimit,
        max_items: 10_000,
        source: Source::Project,
    },
    BatchLimit {
        op: K::NetworkCutoff,
        max_items: 10_000,
        source: Source::Project,
    },
    BatchLimit {
        op: K::NetworkRestore,
        max_items: 10_000,
        source: Source::Project,
    },
    BatchLimit {
        op: K::DirectionalAdd,
        max_items: 1,
        source: Source::Project,
    },
    BatchLimit {
        op: K::DirectionalModify,
        max_items: 1,
        source: Source::Project,
    },
    BatchLimit {
        op: K::DirectionalDelete,
        max_items: 1,
        source: Source::Project,
    },
];

/// The console's typed-in list: at most 100 container ids, comma separated.
pub const TYPED_IN_MAX: usize = 100;
/// A console action on this many cards at once is the small-batch path.
pub const SMALL_BATCH: usize = 30;
/// Batch files: xlsx, first sheet only, at most 10 MB.
pub const BATCH_FILE_MAX_BYTES: usize = 10 * 1024 * 1024;

pub fn max_items(op: OperationKind) -> usize {
    BATCH_LIMITS
        .iter()
        .find(|l| l.op == op)
        .map(|l| l.max_items)
        .expect("every operation has a batch limit (tested)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_has_one_limit() {
        for op in OperationKind::ALL {
            assert_eq!(
                BATCH_LIMITS.iter().filter(|l| l.op == op).count(),
                1,
                "{op}"
            );
        }
    }

    #[test]
    fn documented_rows() {
        assert_eq!(max_items(K::Activate), 100_000);
        for op in [
            K::Stop,
            K::Resume,
            K::Rebind,
            K::SetUsageThreshold,
            K::CancelUsageThreshold,
            K::RegionBind,
            K::SwitchNetwork,
            K::SwitchPolicy,
            K::CloseCard,
        ] {
            assert_eq!(max_items(op), 10_000, "{op}");
            assert_eq!(
                BATCH_LIMITS.iter().find(|l| l.op == op).unwrap().source,
                Source::Documented
            );
        }
        assert_eq!(TYPED_IN_MAX, 100);
        assert_eq!(BATCH_FILE_MAX_BYTES, 10_485_760);
    }
}
