//! NaN and infinity in requests, in every spelling they arrive in.
//!
//! JSON has no NaN, but Python's `json.dumps` writes bare `NaN`, `Infinity` and `-Infinity`
//! by default, and clients also send them as strings (`"nan"`, `"inf"`). A parser that only
//! knows strict JSON would call such a body malformed; warden instead reads the bare tokens as
//! marked strings so validation can answer what is really wrong: a non-finite value
//! (`value_error`) at a precise location.

/// The marker a bare non-finite token becomes: a NUL before the token. Only the three exact
/// marked tokens count as marks, so a client's own string is misread only if it is exactly
/// `"\u0000NaN"` (or the two infinities), and then only as what it spells.
const MARK: char = '\u{0}';
const TOKENS: [&str; 3] = ["-Infinity", "Infinity", "NaN"];

/// If `body` holds bare `NaN`, `Infinity` or `-Infinity` tokens outside strings, the body
/// with each replaced by a marked string; `None` when it holds none.
pub fn mark_bare_non_finite(body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(body.len() + 16);
    let mut in_string = false;
    let mut escaped = false;
    let mut replaced = false;
    let mut i = 0;
    while i < body.len() {
        let byte = body[i];
        if in_string {
            match (escaped, byte) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
        } else if byte == b'"' {
            in_string = true;
        } else if let Some(token) = TOKENS.iter().find(|t| body[i..].starts_with(t.as_bytes())) {
            out.extend_from_slice(b"\"\\u0000");
            out.extend_from_slice(token.as_bytes());
            out.push(b'"');
            i += token.len();
            replaced = true;
            continue;
        }
        out.push(byte);
        i += 1;
    }
    replaced.then_some(out)
}

/// Whether `text` is a marked bare token (a JSON `NaN` that was never a string).
pub fn is_bare_token(text: &str) -> bool {
    bare_token(text).is_some()
}

fn bare_token(text: &str) -> Option<&str> {
    text.strip_prefix(MARK)
        .filter(|token| TOKENS.contains(token))
}

/// The spelling of a non-finite number in `text` (a marked bare token, or a string such as
/// `"nan"`, `"-Infinity"`, `"inf"`), or `None` when `text` is not one.
pub fn non_finite_spelling(text: &str) -> Option<&str> {
    if let Some(token) = bare_token(text) {
        return Some(token);
    }
    let lower = text.trim().to_ascii_lowercase();
    let unsigned = lower.trim_start_matches(['+', '-']);
    matches!(unsigned, "nan" | "inf" | "infinity").then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_tokens_outside_strings_are_marked_and_strings_are_left_alone() {
        let body = br#"{"a": NaN, "b": [-Infinity, Infinity], "c": "NaN \" NaN"}"#;
        let marked = mark_bare_non_finite(body).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&marked).unwrap();
        assert_eq!(
            non_finite_spelling(value["a"].as_str().unwrap()),
            Some("NaN")
        );
        assert_eq!(
            non_finite_spelling(value["b"][0].as_str().unwrap()),
            Some("-Infinity")
        );
        assert_eq!(value["c"], "NaN \" NaN");
        assert_eq!(mark_bare_non_finite(br#"{"a": "NaN"}"#), None);
        assert!(!is_bare_token("\u{0}anything else"));
    }

    #[test]
    fn every_spelling_is_recognised() {
        for text in [
            "nan",
            "NaN",
            "-nan",
            "inf",
            "+Inf",
            "-Infinity",
            " infinity ",
        ] {
            assert!(non_finite_spelling(text).is_some(), "{text}");
        }
        for text in ["", "0", "naan", "info", "US"] {
            assert!(non_finite_spelling(text).is_none(), "{text}");
        }
    }
}
