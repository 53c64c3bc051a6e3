//! The access log: one JSON line per answered request on stderr, in the same shape as every
//! other log line (`timestamp`, `level`, `message`, the fields, `target`), written by warden
//! itself rather than through the tracing JSON formatter.
//!
//! Why its own writer: the access log is on by default, so its line is paid on every request.
//! Here a line is formatted into a buffer each thread keeps and reuses, numbers and strings
//! written straight into it (no field visitor, no map, no allocation once the buffer has grown),
//! and handed to stderr in one `write`. Whether a line is written is still the logging filter's
//! decision: the line's target is this module, so
//! `WARDEN_LOG=info,warden_server::outcome::access_log=off` turns the access log off and leaves
//! the other lines on.
//!
//! Bounds: a line holds only bounded fields (the path is bounded by the transport's URI limit,
//! the request id by its header limit) and the reused buffer is shrunk back when one long line
//! grew it, so a thread keeps at most [`KEPT_CAPACITY`] bytes between lines. A write that fails
//! (stderr closed) is dropped: the log never fails or delays an answer beyond its one write.

use std::cell::RefCell;
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use super::answered::Answered;

/// The buffer a thread keeps between lines; a longer line's buffer is shrunk back to this.
const KEPT_CAPACITY: usize = 4096;

thread_local! {
    static LINE: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(512));
}

/// Whether the logging filter lets access-log lines through (checked per line: the filter's
/// answer is cached per call site, so this is one load when it does not change).
fn enabled() -> bool {
    tracing::enabled!(tracing::Level::INFO)
}

/// Writes `answered`'s line on stderr, when the filter lets it through.
pub(crate) fn write(answered: &Answered<'_>) {
    if !enabled() {
        return;
    }
    LINE.with(|line| {
        // A re-entrant call (impossible today: nothing here logs) would find the buffer
        // borrowed; it writes into a fresh one rather than panicking.
        let mut fresh = Vec::new();
        let mut borrowed = line.try_borrow_mut();
        let buffer = match borrowed.as_deref_mut() {
            Ok(buffer) => buffer,
            Err(_) => &mut fresh,
        };
        buffer.clear();
        format_line(buffer, answered, SystemTime::now());
        let _ = std::io::stderr().lock().write_all(buffer);
        if buffer.capacity() > KEPT_CAPACITY {
            buffer.clear();
            buffer.shrink_to(KEPT_CAPACITY);
        }
    });
}

/// `answered`'s line at time `now`, newline included, appended to `out`. Fields without a
/// value (no model answered, no error) are left out, as the tracing formatter leaves out a
/// `None`.
fn format_line(out: &mut Vec<u8>, answered: &Answered<'_>, now: SystemTime) {
    let served = answered.served;
    let timings = served.and_then(|s| s.timings);
    out.extend_from_slice(b"{\"timestamp\":\"");
    timestamp(out, now);
    out.extend_from_slice(b"\",\"level\":\"INFO\",\"message\":\"request\"");
    string(out, "request_id", answered.request_id);
    string(out, "protocol", answered.protocol);
    string(out, "method", answered.method);
    string(out, "path", answered.path);
    // The HTTP status as a number, the gRPC status by name.
    match answered.status.parse::<u16>() {
        Ok(http) => number(out, "status", http),
        Err(_) => string(out, "status", answered.status),
    }
    float(out, "duration_ms", answered.elapsed.as_secs_f64() * 1e3);
    if let Some(served) = served {
        string(out, "model", &served.model.name);
        number(out, "version", served.model.version);
    }
    if let Some(timings) = timings {
        float(out, "queue_ms", timings.queue.as_secs_f64() * 1e3);
        float(out, "inference_ms", timings.inference.as_secs_f64() * 1e3);
        number(out, "batch_rows", timings.batch_rows);
    }
    if let Some(code) = answered.code {
        string(out, "code", code.as_str());
    }
    string(out, "target", module_path!());
    out.extend_from_slice(b"}\n");
}

fn key(out: &mut Vec<u8>, key: &str) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":");
}

/// A JSON string, escaped as serde_json escapes it (client-sent text such as the path and
/// the request id cannot break the line or the JSON).
fn string(out: &mut Vec<u8>, name: &str, value: &str) {
    key(out, name);
    serde_json::to_writer(&mut *out, value).expect("writing to a Vec cannot fail");
}

fn number(out: &mut Vec<u8>, name: &str, value: impl itoa::Integer) {
    key(out, name);
    out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
}

/// A finite float in its shortest form (durations are never NaN or infinite).
fn float(out: &mut Vec<u8>, name: &str, value: f64) {
    key(out, name);
    out.extend_from_slice(ryu::Buffer::new().format_finite(value).as_bytes());
}

/// `now` as RFC 3339 in UTC with microseconds, as the other log lines stamp it:
/// `2026-12-05T07:52:21.013828Z`.
fn timestamp(out: &mut Vec<u8>, now: SystemTime) {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = since.as_secs();
    let (year, month, day) = civil_from_days((seconds / 86_400) as i64);
    let in_day = seconds % 86_400;
    let _ = write!(
        out,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        in_day / 3600,
        in_day / 60 % 60,
        in_day % 60,
        since.subsec_micros()
    );
}

/// The proleptic Gregorian date of a day counted from 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * shifted_month + 2) / 5 + 1) as u32;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::{Value, json};

    use super::*;
    use crate::outcome::error::ErrorCode;

    fn line(answered: &Answered<'_>, now: SystemTime) -> Value {
        let mut out = Vec::new();
        format_line(&mut out, answered, now);
        assert_eq!(out.last(), Some(&b'\n'));
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1);
        serde_json::from_slice(&out).expect("the line is one JSON object")
    }

    fn answered<'a>(path: &'a str, request_id: &'a str, status: &'a str) -> Answered<'a> {
        Answered {
            request_id,
            protocol: "http",
            method: "POST",
            path,
            route: "/v2/models/{model}/infer",
            status,
            served: None,
            code: Some(ErrorCode::UnsupportedMediaType),
            violation_types: &[],
            elapsed: Duration::from_micros(71_965),
        }
    }

    #[test]
    fn a_line_has_the_shape_of_every_other_log_line() {
        let now = UNIX_EPOCH + Duration::new(1_796_457_141, 13_828_999);
        let got = line(&answered("/v2/models/nope/infer", "abc", "415"), now);
        assert_eq!(
            got,
            json!({
                "timestamp": "2026-12-05T07:52:21.013828Z",
                "level": "INFO",
                "message": "request",
                "request_id": "abc",
                "protocol": "http",
                "method": "POST",
                "path": "/v2/models/nope/infer",
                "status": 415,
                "duration_ms": 71.965,
                "code": "unsupported_media_type",
                "target": "warden_server::outcome::access_log",
            })
        );
        let order: Vec<&str> = got
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(order[..3], ["timestamp", "level", "message"]);
        assert_eq!(order.last(), Some(&"target"));
    }

    #[test]
    fn client_sent_text_cannot_break_the_line() {
        let hostile = "x\"\n\u{0}\\\u{1b}[31m\u{2028}é";
        let mut grpc = answered(hostile, hostile, "INVALID_ARGUMENT");
        grpc.protocol = "grpc";
        let got = line(&grpc, UNIX_EPOCH);
        assert_eq!(got["path"], hostile);
        assert_eq!(got["request_id"], hostile);
        assert_eq!(got["status"], "INVALID_ARGUMENT");
        assert_eq!(got["timestamp"], "1970-01-01T00:00:00.000000Z");
    }

    #[test]
    fn dates_follow_the_gregorian_calendar() {
        // Leap days, a century that is not a leap year, one that is, and a year's last day.
        for (days, date) in [
            (0, (1970, 1, 1)),
            (11_016, (2000, 2, 29)),
            (11_017, (2000, 3, 1)),
            (47_540, (2100, 2, 28)),
            (47_541, (2100, 3, 1)),
            (20_818, (2026, 12, 31)),
            (20_819, (2027, 1, 1)),
            (-1, (1969, 12, 31)),
        ] {
            assert_eq!(civil_from_days(days), date, "day {days}");
        }
    }
}
