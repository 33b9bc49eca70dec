//! Answers every carrier gives the same meaning.

use gsl_adapter_kit::carrier::CallError;

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
