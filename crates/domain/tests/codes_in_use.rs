//! `docs/errors.md` and the code agree both ways: every listed code is
//! produced somewhere in the services' own (non-test) code, and every code
//! the code produces is listed. (A code listed but never produced misleads
//! whoever looks it up; one produced but not listed cannot be looked up.)

use gsl_domain::codes::ErrorCode;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every `.rs` file under `dir`, except test directories.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if p.is_dir() {
            if !matches!(name, "tests" | "target" | "benches" | "examples") {
                sources(&p, out);
            }
        } else if name.ends_with(".rs") {
            out.push(p);
        }
    }
}

/// The text of a source file without its inline test module (by this
/// project's convention, everything from `#[cfg(test)]` on).
fn non_test(p: &Path) -> String {
    let s = std::fs::read_to_string(p).unwrap();
    match s.find("#[cfg(test)]") {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}

fn listed_codes() -> Vec<String> {
    let doc = std::fs::read_to_string(root().join("docs/errors.md")).unwrap();
    let mut v: Vec<String> = doc
        .match_indices("GSL.000")
        .map(|(i, _)| doc[i..i + 12].to_owned())
        .filter(|c| c[4..].chars().all(|ch| ch.is_ascii_digit()))
        .collect();
    v.sort();
    v.dedup();
    v
}

#[test]
fn every_listed_code_is_produced_and_every_produced_code_is_listed() {
    let mut files = Vec::new();
    for d in ["services", "crates"] {
        sources(&root().join(d), &mut files);
    }
    let codes_rs = root()
        .join("crates/domain/src/codes.rs")
        .canonicalize()
        .unwrap();
    let text: String = files
        .iter()
        .filter(|p| p.canonicalize().unwrap() != codes_rs)
        .map(|p| non_test(p))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(text.len() > 100_000, "the sources were found");
    let listed = listed_codes();
    assert_eq!(listed.len(), ErrorCode::ALL.len(), "{listed:?}");
    for c in ErrorCode::ALL {
        assert!(listed.contains(&c.code().to_owned()), "{c:?} not listed");
        let used = [
            format!("ErrorCode::{c:?}"),
            format!("codes::ErrorCode::{c:?}"),
        ]
        .iter()
        .any(|n| {
            text.match_indices(n.as_str()).any(|(i, _)| {
                // A whole name, not a prefix of a longer one.
                !text[i + n.len()..]
                    .chars()
                    .next()
                    .is_some_and(|ch| ch.is_ascii_alphanumeric() || ch == '_')
            })
        });
        assert!(
            used,
            "{} ({c:?}) is listed in docs/errors.md but nothing produces it",
            c.code()
        );
    }
    // Codes written out literally must be listed too.
    for (i, _) in text.match_indices("\"GSL.000") {
        let code = &text[i + 1..i + 13];
        if code[4..].chars().all(|ch| ch.is_ascii_digit()) {
            assert!(
                listed.iter().any(|l| l == code),
                "{code} is produced but not listed in docs/errors.md"
            );
        }
    }
}
