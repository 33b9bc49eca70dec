//! Answers every carrier gives the same meaning.

use gsl_adapter_kit::carrier::CallError;
use gsl_adapter_kit::http::retry_after;

/// HTTP statuses that mean "nothing happened, try again": 429 (over the
/// limit, honouring Retry-After, 1 s without one), 502, 503, 504 and other
/// 5xx. A `retry_after` is set exactly when the carrier asked to wait: the
/// carrier is there (readiness probes count that as reachable).
pub fn transient_status(resp: &reqwest::Response) -> Option<CallError> {
    let s = resp.status();
    if s.as_u16() == 429 || s.is_server_error() {
        let wait =
            retry_after(resp).or((s.as_u16() == 429).then_some(std::time::Duration::from_secs(1)));
        Some(CallError::Transient {
            reason: format!("carrier answered HTTP {s}"),
            retry_after: wait,
        })
    } else {
        None
    }
}

/// A readiness probe's verdict on a call: reachable unless the transport
/// failed or the carrier refused our credentials.
pub fn reachable<T>(r: &Result<T, CallError>) -> bool {
    matches!(
        r,
        Ok(_)
            | Err(CallError::Transient {
                retry_after: Some(_),
                ..
            })
    )
}

/// A JSON body, or "unknown outcome" when it cannot be read (the request
/// reached the carrier).
pub async fn json(resp: reqwest::Response) -> Result<serde_json::Value, CallError> {
    let body = gsl_adapter_kit::http::Http::body(resp).await?;
    serde_json::from_slice(&body).map_err(|e| CallError::Unknown {
        reason: format!("unreadable answer: {e}"),
    })
}

/// The string value of a JSON field ("" when absent).
pub fn s<'a>(v: &'a serde_json::Value, k: &str) -> &'a str {
    v.get(k).and_then(|x| x.as_str()).unwrap_or("")
}
