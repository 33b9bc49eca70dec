//! Answers every carrier gives the same meaning.

use gsl_adapter_kit::carrier::CallError;

/// A JSON body, or "unknown outcome" when it cannot be read (the request
/// reached the carrier).
pub async fn json(
    http: &gsl_adapter_kit::http::Http,
    resp: reqwest::Response,
) -> Result<serde_json::Value, CallError> {
    let body = http.body(resp).await?;
    serde_json::from_slice(&body).map_err(|e| CallError::Unknown {
        reason: format!("unreadable answer: {e}"),
    })
}

/// The string value of a JSON field ("" when absent).
pub fn s<'a>(v: &'a serde_json::Value, k: &str) -> &'a str {
    v.get(k).and_then(|x| x.as_str()).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Deeply nested JSON (1,000,000 levels) is refused by the parser's
    /// recursion limit as an unreadable answer: no stack overflow, no panic.
    #[tokio::test]
    async fn deeply_nested_answers_are_harmless() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            let depth = 1_000_000;
            let body = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            s.write_all(head.as_bytes()).await.unwrap();
            s.write_all(body.as_bytes()).await.unwrap();
        });
        let http = gsl_adapter_kit::http::Http::new(Duration::from_secs(5), 4)
            .with_max_answer(4 * 1024 * 1024);
        let resp = http
            .send(http.client.get(format!("http://{addr}/")))
            .await
            .unwrap();
        match json(&http, resp).await {
            Err(CallError::Unknown { reason }) => {
                assert!(reason.contains("unreadable"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
    }
}
