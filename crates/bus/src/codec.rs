//! Protobuf encode / decode for bus messages.

use bytes::Bytes;
use thiserror::Error;

/// A message that could not be decoded. Consumers dead-letter it at once:
/// decoding it again will not help.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CodecError {
    #[error("cannot decode {what}: {reason}")]
    Decode { what: &'static str, reason: String },
    #[error("{what} is missing required field {field}")]
    Missing {
        what: &'static str,
        field: &'static str,
    },
}

pub fn encode<M: prost::Message>(m: &M) -> Bytes {
    Bytes::from(m.encode_to_vec())
}

pub fn decode<M: prost::Message + Default>(what: &'static str, b: &[u8]) -> Result<M, CodecError> {
    M::decode(b).map_err(|e| CodecError::Decode {
        what,
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use gsl_proto::v1;

    #[test]
    fn round_trip_and_garbage() {
        let item = v1::WorkItem {
            work_order_id: 7,
            card: "8986".into(),
            ..Default::default()
        };
        let b = encode(&item);
        let back: v1::WorkItem = decode("WorkItem", &b).unwrap();
        assert_eq!(back, item);
        let err = decode::<v1::WorkItem>("WorkItem", &[0xff, 0xff, 0xff]).unwrap_err();
        assert!(matches!(
            err,
            CodecError::Decode {
                what: "WorkItem",
                ..
            }
        ));
    }
}
