//! A violation: one thing wrong with a request, located precisely enough that a client can fix
//! it without guessing; and [`Violations`], the bounded list a request is answered with.
//!
//! Requests are answered with every violation found, not only the first, but never with an
//! answer whose size the client controls: a request may hold millions of bad values or
//! megabyte-long names, so the list keeps the first [`MAX_LISTED_VIOLATIONS`] (within
//! [`MAX_LISTED_BYTES`]) and counts the rest, and every name or value quoted back is clipped to
//! [`MAX_QUOTED_CHARS`] characters. The bound is built into the types, so no caller can forget it.

use std::borrow::Cow;

use serde::Serialize;

/// The most violations an answer lists; the rest are only counted.
pub const MAX_LISTED_VIOLATIONS: usize = 100;
/// The most bytes the listed violations take, serialised as JSON.
pub(crate) const MAX_LISTED_BYTES: usize = 32 * 1024;
/// The most characters of a client's name or value quoted back in a message or location.
pub const MAX_QUOTED_CHARS: usize = 64;
/// The most characters of one violation's message.
pub(crate) const MAX_MESSAGE_CHARS: usize = 512;

/// `text` cut to its first `max` characters, with `…` marking the cut.
pub fn clip_to(text: &str, max: usize) -> Cow<'_, str> {
    match text.char_indices().nth(max) {
        None => Cow::Borrowed(text),
        Some((end, _)) => Cow::Owned(format!("{}…", &text[..end])),
    }
}

/// A client's name or value as it may be quoted back: at most [`MAX_QUOTED_CHARS`] characters.
pub fn clip(text: &str) -> Cow<'_, str> {
    clip_to(text, MAX_QUOTED_CHARS)
}

/// One step of a violation's location: an object key or an array index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum LocSegment {
    Key(String),
    Index(usize),
}

impl From<&str> for LocSegment {
    /// A key of the request; a client's key longer than [`MAX_QUOTED_CHARS`] is clipped.
    fn from(key: &str) -> Self {
        LocSegment::Key(clip(key).into_owned())
    }
}

impl From<usize> for LocSegment {
    fn from(index: usize) -> Self {
        LocSegment::Index(index)
    }
}

/// The kind of a violation; its snake_case name is part of the public error format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ViolationType {
    /// A value of the wrong JSON type (a string for a number, an integer for a category, ...).
    TypeError,
    /// A value of the right type that is not allowed (null where not nullable).
    ValueError,
    /// A number outside the feature's declared `min`/`max`.
    RangeError,
    /// A category value not among the declared `values`.
    CategoryError,
    /// A required field or input is absent.
    Missing,
    /// A field or input the contract does not know.
    ExtraForbidden,
    /// A tensor's datatype disagrees with the graph's.
    DatatypeMismatch,
    /// A tensor's shape disagrees with its data or with the graph's rank.
    ShapeMismatch,
    /// A tensor's rows have a different number of values than the graph takes per row.
    WidthMismatch,
}

impl ViolationType {
    /// Every type, in declaration order.
    pub const ALL: [ViolationType; 9] = [
        ViolationType::TypeError,
        ViolationType::ValueError,
        ViolationType::RangeError,
        ViolationType::CategoryError,
        ViolationType::Missing,
        ViolationType::ExtraForbidden,
        ViolationType::DatatypeMismatch,
        ViolationType::ShapeMismatch,
        ViolationType::WidthMismatch,
    ];

    /// The snake_case name, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            ViolationType::TypeError => "type_error",
            ViolationType::ValueError => "value_error",
            ViolationType::RangeError => "range_error",
            ViolationType::CategoryError => "category_error",
            ViolationType::Missing => "missing",
            ViolationType::ExtraForbidden => "extra_forbidden",
            ViolationType::DatatypeMismatch => "datatype_mismatch",
            ViolationType::ShapeMismatch => "shape_mismatch",
            ViolationType::WidthMismatch => "width_mismatch",
        }
    }
}

/// One problem in a request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Violation {
    pub loc: Vec<LocSegment>,
    pub msg: String,
    #[serde(rename = "type")]
    pub kind: ViolationType,
}

impl Violation {
    /// A violation at `loc`; a message over [`MAX_MESSAGE_CHARS`] is clipped.
    pub fn new(loc: Vec<LocSegment>, kind: ViolationType, msg: impl Into<String>) -> Violation {
        let mut msg = msg.into();
        if let Cow::Owned(clipped) = clip_to(&msg, MAX_MESSAGE_CHARS) {
            msg = clipped;
        }
        Violation { loc, msg, kind }
    }

    /// Its size serialised as JSON, in bytes.
    fn json_len(&self) -> usize {
        serde_json::to_vec(self).map_or(MAX_LISTED_BYTES, |json| json.len())
    }
}

/// The violations of one request: the first ones listed in full, within
/// [`MAX_LISTED_VIOLATIONS`] and [`MAX_LISTED_BYTES`], the rest counted.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Violations {
    listed: Vec<Violation>,
    listed_bytes: usize,
    omitted: usize,
}

impl Violations {
    /// No violations yet.
    pub fn new() -> Violations {
        Violations::default()
    }

    /// Whether another violation would only be counted, not listed.
    pub fn is_full(&self) -> bool {
        self.listed.len() >= MAX_LISTED_VIOLATIONS
    }

    /// Records a violation: listed while there is room, counted after.
    pub fn push(&mut self, violation: Violation) {
        if self.is_full() {
            self.omitted += 1;
            return;
        }
        let size = violation.json_len();
        if self.listed_bytes + size > MAX_LISTED_BYTES {
            self.omitted += 1;
        } else {
            self.listed_bytes += size;
            self.listed.push(violation);
        }
    }

    /// Records a violation made only when it can be listed, for loops over many values.
    pub fn push_with(&mut self, make: impl FnOnce() -> Violation) {
        if self.is_full() {
            self.omitted += 1;
        } else {
            self.push(make());
        }
    }

    /// Records every violation of `other`, after this one's.
    pub fn append(&mut self, other: Violations) {
        for violation in other.listed {
            self.push(violation);
        }
        self.omitted += other.omitted;
    }

    /// Whether nothing was found.
    pub fn is_empty(&self) -> bool {
        self.listed.is_empty() && self.omitted == 0
    }

    /// How many were found, listed or not.
    pub fn total(&self) -> usize {
        self.listed.len() + self.omitted
    }

    /// The ones listed in full, in the order found.
    pub fn listed(&self) -> &[Violation] {
        &self.listed
    }

    /// How many were found beyond the listed ones.
    pub fn omitted(&self) -> usize {
        self.omitted
    }

    /// `Ok(value)` when nothing was found, else these violations.
    pub fn into_result<T>(self, value: T) -> Result<T, Violations> {
        if self.is_empty() {
            Ok(value)
        } else {
            Err(self)
        }
    }
}

impl From<Violation> for Violations {
    fn from(violation: Violation) -> Violations {
        let mut violations = Violations::new();
        violations.push(violation);
        violations
    }
}

impl FromIterator<Violation> for Violations {
    fn from_iter<I: IntoIterator<Item = Violation>>(iter: I) -> Violations {
        let mut violations = Violations::new();
        for violation in iter {
            violations.push(violation);
        }
        violations
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_is_bounded_and_the_rest_counted() {
        let mut violations = Violations::new();
        for i in 0..1000 {
            violations.push(Violation::new(
                vec![LocSegment::Index(i)],
                ViolationType::RangeError,
                "out of range",
            ));
        }
        assert_eq!(violations.listed().len(), MAX_LISTED_VIOLATIONS);
        assert_eq!(violations.omitted(), 900);
        assert_eq!(violations.total(), 1000);
        let huge = "x".repeat(5000);
        let mut big = Violations::new();
        for _ in 0..100 {
            big.push(Violation::new(vec![], ViolationType::TypeError, &*huge));
        }
        let bytes = serde_json::to_vec(big.listed()).unwrap().len();
        assert!(bytes <= MAX_LISTED_BYTES + 2, "{bytes} bytes listed");
        assert_eq!(big.total(), 100);
    }

    #[test]
    fn names_and_messages_are_clipped() {
        let long = "é".repeat(100);
        let LocSegment::Key(key) = LocSegment::from(long.as_str()) else {
            panic!("a key")
        };
        assert_eq!(key.chars().count(), MAX_QUOTED_CHARS + 1);
        assert!(key.ends_with('…'));
        assert_eq!(clip("short"), "short");
        let violation = Violation::new(vec![], ViolationType::TypeError, "m".repeat(10_000));
        assert_eq!(violation.msg.chars().count(), MAX_MESSAGE_CHARS + 1);
    }

    #[test]
    fn as_str_is_the_serialized_name() {
        for kind in ViolationType::ALL {
            assert_eq!(
                serde_json::to_value(kind).ok(),
                Some(serde_json::Value::from(kind.as_str()))
            );
        }
    }
}
