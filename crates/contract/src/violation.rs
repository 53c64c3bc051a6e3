//! A violation: one thing wrong with a request, located precisely enough that a client can fix
//! it without guessing. Requests are answered with every violation found, not only the first.

use serde::Serialize;

/// One step of a violation's location: an object key or an array index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum LocSegment {
    Key(String),
    Index(usize),
}

impl From<&str> for LocSegment {
    fn from(key: &str) -> Self {
        LocSegment::Key(key.to_owned())
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
    /// A violation at `loc`.
    pub fn new(loc: Vec<LocSegment>, kind: ViolationType, msg: impl Into<String>) -> Violation {
        Violation {
            loc,
            msg: msg.into(),
            kind,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
