//! The JSON both HTTP protocols accept: strict (no duplicate keys, checked without building a
//! tree), with bare `NaN`/`Infinity` tokens (as Python's `json.dumps` writes them) marked so
//! validation can refuse them as non-finite values at their exact location rather than call the
//! whole body malformed.

use bytes::Bytes;
use warden_contract::{check_strict, mark_bare_non_finite};

use crate::outcome::error::{ApiError, ErrorCode};

/// The text the decoders read: `bytes` itself when it is strict JSON, or with its bare
/// non-finite tokens marked; else `malformed_json` with the line and column.
pub(crate) fn strict_text(bytes: Bytes) -> Result<Bytes, ApiError> {
    let Err(err) = check_strict(&bytes) else {
        return Ok(bytes);
    };
    mark_bare_non_finite(&bytes)
        .filter(|marked| check_strict(marked).is_ok())
        .map(Bytes::from)
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::MalformedJson,
                format!("the body is not valid JSON: {err}"),
            )
        })
}
