//! hyper's own answers, given warden's JSON body.
//!
//! When an HTTP/1 request head cannot be parsed (a bad or repeated `Content-Length`, a header
//! that is not a token, a head over 64 KiB) hyper answers by itself before any service sees the
//! request: `400`/`431`/`414` with `connection: close`, `content-length: 0` and a `date`
//! header, and closes. hyper has
//! no hook for that answer, so a client got an empty body where every other error is JSON with
//! a `code`. The connection's socket recognises exactly that answer as hyper writes it (a status
//! line and no header but those three) and writes warden's instead, given to the transport as
//! [`CannedAnswers`] (made from the error table by the HTTP layer). No answer a route produces
//! has that shape: routes answer JSON with a `content-type`.

/// The answers the transport writes by itself, as whole HTTP/1.1 responses that close the
/// connection.
#[derive(Debug, Clone, Default)]
pub struct CannedAnswers {
    /// A request hyper could not parse (its 400).
    pub bad_request: Vec<u8>,
    /// A request head over the limit (hyper's 431 and 414).
    pub head_too_large: Vec<u8>,
    /// A connection refused at the cap (503 with `Retry-After`).
    pub over_capacity: Vec<u8>,
}

/// The answer to write instead of `written`, when `written` is hyper's own error answer.
pub(super) fn replacement<'a>(answers: &'a CannedAnswers, written: &[u8]) -> Option<&'a [u8]> {
    let head = written.strip_suffix(b"\r\n\r\n")?;
    let text = std::str::from_utf8(head).ok()?;
    let mut lines = text.split("\r\n");
    let status = lines.next()?.strip_prefix("HTTP/1.1 ")?.get(..3)?;
    let mut content_length_zero = false;
    for line in lines {
        let (name, value) = line.split_once(':')?;
        match name.to_ascii_lowercase().as_str() {
            "content-length" if value.trim() == "0" => content_length_zero = true,
            "date" => {}
            "connection" if value.trim().eq_ignore_ascii_case("close") => {}
            _ => return None,
        }
    }
    if !content_length_zero {
        return None;
    }
    let answer = match status {
        "431" | "414" => &answers.head_too_large,
        "400" => &answers.bad_request,
        _ => return None,
    };
    (!answer.is_empty()).then_some(answer.as_slice())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answers() -> CannedAnswers {
        CannedAnswers {
            bad_request: b"400 json".to_vec(),
            head_too_large: b"431 json".to_vec(),
            over_capacity: b"503 json".to_vec(),
        }
    }

    #[test]
    fn hypers_own_answers_are_replaced() {
        let answers = answers();
        // As hyper 1.12 writes it.
        let hyper = b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\ndate: Fri, 04 Dec 2026 17:27:56 GMT\r\n\r\n";
        assert_eq!(replacement(&answers, hyper), Some(&b"400 json"[..]));
        let too_large =
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        assert_eq!(replacement(&answers, too_large), Some(&b"431 json"[..]));
    }

    #[test]
    fn answers_with_a_body_or_other_headers_are_left_alone() {
        let answers = answers();
        for written in [
            &b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 0\r\n\r\n"[..],
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 2\r\n\r\n{}",
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 400 Bad Request\r\ndate: x\r\n\r\n",
        ] {
            assert_eq!(
                replacement(&answers, written),
                None,
                "{}",
                String::from_utf8_lossy(written)
            );
        }
    }
}
