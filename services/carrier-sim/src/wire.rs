//! Query-string decoding shared by the platforms that take parameters in a
//! URL or a form body (China Mobile's GET form, China Telecom's 5GCMP GET
//! and DCP form).

use std::collections::HashMap;

/// `k=v&k=v` pairs, percent-decoded; a pair with a broken escape is dropped
/// (the platform then sees the parameter as missing).
pub fn query_pairs(q: &str) -> HashMap<String, String> {
    q.split('&')
        .filter(|kv| !kv.is_empty())
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            Some((decode(k)?, decode(v)?))
        })
        .collect()
}

/// Percent-decoding of a query component (`+` is a space). `None` on a
/// truncated or non-hex escape or on invalid UTF-8.
pub fn decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = b.get(i + 1..i + 3)?;
                let h = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(h, 16).ok()?);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}
