//! Value validation: the JSON rows of a request checked against the declared features, turned
//! into typed columns, or rejected with every violation found; and V2 tensors, already decoded
//! into typed columns, checked against the same features.
//!
//! Both paths check each value with one set of per-value rules ([`check_scalar`]: nullable,
//! integral, range, category). A row's JSON value first passes the rules only JSON has
//! ([`json_scalar`]: its JSON type, NaN and infinity spelled as strings or bare tokens); a
//! tensor's type was settled against the graph when it was decoded.
//!
//! Nothing is coerced. A category sent as an integer, a number sent as a string, a boolean sent
//! where a number is declared: each is a violation, because a silently coerced value is a
//! silently wrong prediction.

use std::borrow::Cow;
use std::fmt;

use serde_json::Value;

use crate::manifest::{Feature, FeatureType, HandleUnknown};
use crate::non_finite::{is_bare_token, non_finite_spelling};
use crate::violation::{LocSegment, Violation, ViolationType, Violations, clip};

/// One feature's values for every row of a request.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnValues {
    /// `float` features (null, where allowed, is NaN).
    Float(Vec<f64>),
    Int(Vec<i64>),
    Bool(Vec<bool>),
    /// `string` and `category` features.
    Text(Vec<String>),
}

/// A validated column, named after its feature.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureColumn {
    pub name: String,
    pub values: ColumnValues,
}

/// A validated request: one column per feature, in manifest order, each `rows` long.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureColumns {
    pub rows: usize,
    pub columns: Vec<FeatureColumn>,
}

/// The rows of a request, one JSON value each, read one at a time: a decoder that keeps its
/// body as text hands rows over as they are parsed, so a request never exists in memory as one
/// JSON tree many times its size.
pub trait RowSource {
    /// How many rows there are.
    fn rows(&self) -> usize;
    /// Row `index` (below [`RowSource::rows`]) as JSON, or why it cannot be read.
    fn row(&self, index: usize) -> Result<Cow<'_, Value>, Violation>;
}

impl RowSource for Vec<Value> {
    fn rows(&self) -> usize {
        self.len()
    }

    fn row(&self, index: usize) -> Result<Cow<'_, Value>, Violation> {
        Ok(Cow::Borrowed(&self[index]))
    }
}

/// The violation for `instances` that is not an array of rows (`root`: the key it came under).
pub fn not_rows(root: &str, instances: &Value) -> Violations {
    Violation::new(
        vec![root.into()],
        ViolationType::TypeError,
        format!("expected an array of rows, got {}", describe(instances)),
    )
    .into()
}

/// The violation for an empty array of rows.
pub fn no_rows(root: &str) -> Violations {
    Violation::new(
        vec![root.into()],
        ViolationType::ValueError,
        "expected at least one row, got an empty array",
    )
    .into()
}

/// Checks `instances` (a JSON array of rows, each an object keyed by feature name or an array
/// of values in feature order) against `features`. `root` is the key the rows came under, used
/// as the first step of every violation's location.
pub fn validate_instances(
    features: &[Feature],
    instances: &Value,
    root: &str,
) -> Result<FeatureColumns, Violations> {
    let Value::Array(rows) = instances else {
        return Err(not_rows(root, instances));
    };
    validate_rows(features, rows, root)
}

/// Checks the rows of `source` against `features`, each parsed and dropped in turn, into typed
/// columns; or every violation found. `root` is the key the rows came under.
pub fn validate_rows(
    features: &[Feature],
    source: &dyn RowSource,
    root: &str,
) -> Result<FeatureColumns, Violations> {
    let count = source.rows();
    if count == 0 {
        return Err(no_rows(root));
    }
    let mut columns: Vec<ColumnBuilder> = features
        .iter()
        .map(|f| ColumnBuilder::new(f, count))
        .collect();
    let mut violations = Violations::new();
    for index in 0..count {
        let row = match source.row(index) {
            Ok(row) => row,
            Err(violation) => {
                violations.push(violation);
                continue;
            }
        };
        let at = |key: &str| vec![root.into(), LocSegment::Index(index), key.into()];
        match row.as_ref() {
            Value::Object(fields) => {
                for (feature, column) in features.iter().zip(&mut columns) {
                    match fields.get(&feature.name) {
                        Some(value) => {
                            column.push(feature, value, at(&feature.name), &mut violations)
                        }
                        None => violations.push_with(|| {
                            Violation::new(
                                at(&feature.name),
                                ViolationType::Missing,
                                format!("feature `{}` is required", feature.name),
                            )
                        }),
                    }
                }
                for key in fields.keys() {
                    if !features.iter().any(|f| &f.name == key) {
                        violations.push_with(|| {
                            Violation::new(
                                at(key),
                                ViolationType::ExtraForbidden,
                                format!(
                                    "unknown feature `{}`; the model's features are: {}",
                                    clip(key),
                                    feature_names(features)
                                ),
                            )
                        });
                    }
                }
            }
            Value::Array(values) if values.len() == features.len() => {
                for (position, ((feature, column), value)) in
                    features.iter().zip(&mut columns).zip(values).enumerate()
                {
                    let loc = vec![
                        root.into(),
                        LocSegment::Index(index),
                        LocSegment::Index(position),
                    ];
                    column.push(feature, value, loc, &mut violations);
                }
            }
            Value::Array(values) => violations.push_with(|| {
                Violation::new(
                    vec![root.into(), LocSegment::Index(index)],
                    ViolationType::ShapeMismatch,
                    format!(
                        "a row given as an array needs {} values ({}), got {}",
                        features.len(),
                        feature_names(features),
                        values.len()
                    ),
                )
            }),
            other => violations.push_with(|| {
                Violation::new(
                    vec![root.into(), LocSegment::Index(index)],
                    ViolationType::TypeError,
                    format!(
                        "expected a row object keyed by feature name, got {}",
                        describe(other)
                    ),
                )
            }),
        }
    }
    if !violations.is_empty() {
        return Err(violations);
    }
    Ok(FeatureColumns {
        rows: count,
        columns: features
            .iter()
            .zip(columns)
            .map(|(feature, column)| FeatureColumn {
                name: feature.name.clone(),
                values: column.values,
            })
            .collect(),
    })
}

/// The features' names for a message: the first [`LISTED_NAMES`], then how many more.
fn feature_names(features: &[Feature]) -> String {
    list_names(features.iter().map(|f| f.name.as_str()))
}

/// How many names a message lists before it only counts the rest.
const LISTED_NAMES: usize = 20;

/// `a, b, c` for at most [`LISTED_NAMES`] names, then `and N more`.
pub fn list_names<'a>(names: impl ExactSizeIterator<Item = &'a str>) -> String {
    let total = names.len();
    let mut listed: Vec<&str> = names.take(LISTED_NAMES).collect();
    let more = total - listed.len();
    let tail = format!("and {more} more");
    if more > 0 {
        listed.push(&tail);
    }
    listed.join(", ")
}

/// Describes a JSON value for a message: `integer 3`, `string "3"`, `boolean true`, ...
fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) if n.is_f64() => format!("number {n}"),
        Value::Number(n) => format!("integer {n}"),
        Value::String(s) if is_bare_token(s) => s[1..].to_owned(),
        Value::String(s) => format!("string {}", Value::String(clip(s).into_owned())),
        Value::Array(_) => "an array".to_owned(),
        Value::Object(_) => "an object".to_owned(),
    }
}

struct ColumnBuilder {
    values: ColumnValues,
}

impl ColumnBuilder {
    fn new(feature: &Feature, rows: usize) -> ColumnBuilder {
        let values = match feature.kind {
            FeatureType::Float => ColumnValues::Float(Vec::with_capacity(rows)),
            FeatureType::Int => ColumnValues::Int(Vec::with_capacity(rows)),
            FeatureType::Bool => ColumnValues::Bool(Vec::with_capacity(rows)),
            FeatureType::String | FeatureType::Category => {
                ColumnValues::Text(Vec::with_capacity(rows))
            }
        };
        ColumnBuilder { values }
    }

    fn push(
        &mut self,
        feature: &Feature,
        value: &Value,
        loc: Vec<LocSegment>,
        violations: &mut Violations,
    ) {
        let checked = json_scalar(feature, value)
            .and_then(|scalar| check_scalar(feature, scalar, Quote::Json(value)).map(|()| scalar));
        let scalar = match checked {
            Ok(scalar) => scalar,
            Err((kind, msg)) => {
                violations.push_with(|| Violation::new(loc, kind, msg));
                return;
            }
        };
        // The feature's type chose both the column's type and which scalars json_scalar lets
        // through; only an integral number below 9e15 reaches an int column.
        match (&mut self.values, scalar) {
            (ColumnValues::Float(v), Scalar::Number(x)) => v.push(x),
            (ColumnValues::Float(v), Scalar::Integer(x)) => v.push(x as f64),
            (ColumnValues::Float(v), Scalar::Null) => v.push(f64::NAN),
            (ColumnValues::Int(v), Scalar::Integer(x)) => v.push(x),
            (ColumnValues::Int(v), Scalar::Number(x)) => v.push(x as i64),
            (ColumnValues::Bool(v), Scalar::Bool(x)) => v.push(x),
            (ColumnValues::Text(v), Scalar::Text(x)) => v.push(x.to_owned()),
            _ => violations.push_with(|| {
                Violation::new(
                    loc,
                    ViolationType::TypeError,
                    "value does not fit the column",
                )
            }),
        }
    }
}

/// One value as both paths hold it once its JSON or tensor type is known: what the per-value
/// rules in [`check_scalar`] check.
#[derive(Debug, Clone, Copy)]
enum Scalar<'a> {
    /// A row's JSON `null`: a missing value.
    Null,
    /// NaN in a float tensor: a missing value (a tensor has no null).
    NaN,
    Number(f64),
    Integer(i64),
    Bool(bool),
    Text(&'a str),
}

/// How a message quotes the value it is about; spelled only when a violation is made.
#[derive(Debug, Clone, Copy)]
enum Quote<'a> {
    /// A row's value, as the JSON it was sent as (`150.0`), and with its JSON kind (`number
    /// 1.5`) where a message says which kind was expected.
    Json(&'a Value),
    /// A tensor's value, as its number: short for one that came from `f32` (see [`show`]).
    Tensor,
}

impl Quote<'_> {
    /// The value as sent, for a range message.
    fn sent(self, scalar: Scalar) -> String {
        match self {
            Quote::Json(value) => value.to_string(),
            Quote::Tensor => scalar.to_string(),
        }
    }

    /// The value for a message that names the kind expected.
    fn described(self, scalar: Scalar) -> String {
        match self {
            Quote::Json(value) => describe(value),
            Quote::Tensor => scalar.to_string(),
        }
    }
}

impl fmt::Display for Scalar<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Scalar::Null => f.write_str("null"),
            Scalar::NaN => f.write_str("NaN"),
            Scalar::Number(x) => f.write_str(&show(x)),
            Scalar::Integer(x) => write!(f, "{x}"),
            Scalar::Bool(x) => write!(f, "{x}"),
            Scalar::Text(x) => f.write_str(&clip(x)),
        }
    }
}

/// The rules of a JSON value alone, before [`check_scalar`]: its JSON type must be one the
/// feature's type takes, NaN and infinity (as strings or bare tokens) are refused, and an int
/// feature's number must be one an `i64` holds exactly.
fn json_scalar<'v>(
    feature: &Feature,
    value: &'v Value,
) -> Result<Scalar<'v>, (ViolationType, String)> {
    let type_error = |expected: &str| {
        Err((
            ViolationType::TypeError,
            format!("expected {expected}, got {}", describe(value)),
        ))
    };
    if let Value::String(text) = value {
        if feature.kind.is_numeric()
            && let Some(spelling) = non_finite_spelling(text)
        {
            return Err((
                ViolationType::ValueError,
                format!(
                    "expected a finite number, got {spelling}; NaN and infinity are refused{}",
                    if feature.nullable {
                        " (send null for a missing value)"
                    } else {
                        ""
                    }
                ),
            ));
        }
        if is_bare_token(text) {
            return type_error(if feature.kind == FeatureType::Category {
                "one of the category's values"
            } else {
                "a string"
            });
        }
    }
    let number = |n: &serde_json::Number| {
        n.as_i64()
            .map(Scalar::Integer)
            .or_else(|| n.as_f64().map(Scalar::Number))
    };
    match (feature.kind, value) {
        (_, Value::Null) => Ok(Scalar::Null),
        (FeatureType::Float, Value::Number(n)) => {
            number(n).map_or_else(|| type_error("a number"), Ok)
        }
        // A number read as a float becomes the `i64` of an int column only below 9e15, where
        // an `f64` still holds every integer: `1e16` is refused. (A tensor's float stays a
        // float on its way to the graph, so `check_columns` has no such bound.)
        (FeatureType::Int, Value::Number(n)) => match number(n) {
            Some(Scalar::Number(x)) if x.abs() < 9.0e15 => Ok(Scalar::Number(x)),
            Some(Scalar::Integer(x)) => Ok(Scalar::Integer(x)),
            _ => type_error("an integer"),
        },
        (FeatureType::Bool, Value::Bool(b)) => Ok(Scalar::Bool(*b)),
        (FeatureType::String | FeatureType::Category, Value::String(s)) => Ok(Scalar::Text(s)),
        (FeatureType::Float, _) => type_error("a number"),
        (FeatureType::Int, _) => type_error("an integer"),
        (FeatureType::Bool, _) => type_error("a boolean"),
        (FeatureType::String, _) => type_error("a string"),
        (FeatureType::Category, _) => Err((
            ViolationType::TypeError,
            format!("expected {}; got {}", one_of(feature), describe(value)),
        )),
    }
}

/// The per-value rules both paths share, each written once: a missing value only where the
/// feature is nullable, an int feature's number integral, numbers within `min`/`max`, a
/// category among its `values`. `quote` spells the value for a message; nothing is allocated
/// unless a rule is broken.
fn check_scalar(
    feature: &Feature,
    scalar: Scalar,
    quote: Quote,
) -> Result<(), (ViolationType, String)> {
    match scalar {
        Scalar::Null | Scalar::NaN if !feature.nullable => Err((
            ViolationType::ValueError,
            format!(
                "feature `{}` is not nullable; got {scalar} (a missing value: set `nullable = \
                 true` on the feature in warden.toml if the model handles one)",
                feature.name
            ),
        )),
        // A row's null becomes NaN in a float column; no other column type has a missing
        // value. A tensor's NaN already sits in a float tensor, so it is accepted for any
        // nullable feature (an int or bool bound to a float input), where null is refused.
        Scalar::Null if feature.kind != FeatureType::Float => Err((
            ViolationType::ValueError,
            format!(
                "null is only accepted for float features (as a missing value); `{}` is {}",
                feature.name,
                feature.kind.name()
            ),
        )),
        Scalar::Null | Scalar::NaN => Ok(()),
        Scalar::Number(x) if feature.kind == FeatureType::Int && x.fract() != 0.0 => Err((
            ViolationType::TypeError,
            format!("expected an integer, got {}", quote.described(scalar)),
        )),
        Scalar::Number(x) => check_range(feature, x, || quote.sent(scalar)),
        Scalar::Integer(x) => check_range(feature, x as f64, || quote.sent(scalar)),
        Scalar::Text(text) if feature.kind == FeatureType::Category => {
            check_category(feature, text)
        }
        Scalar::Text(_) | Scalar::Bool(_) => Ok(()),
    }
}

fn one_of(feature: &Feature) -> String {
    format!(
        "one of {}",
        feature.values.as_deref().unwrap_or_default().join(", ")
    )
}

fn check_category(feature: &Feature, value: &str) -> Result<(), (ViolationType, String)> {
    let allowed = feature.values.as_deref().unwrap_or_default();
    if feature.handle_unknown == HandleUnknown::Pass || allowed.iter().any(|a| a == value) {
        return Ok(());
    }
    Err((
        ViolationType::CategoryError,
        format!(
            "expected {}; got {} (if the model handles values it was not trained on, set \
             `handle_unknown = \"pass\"` on the feature in warden.toml)",
            one_of(feature),
            describe(&Value::String(value.to_owned()))
        ),
    ))
}

/// Checks columns that are already typed (decoded from V2 tensors) against the features'
/// value rules, the same `check_scalar` a row's values pass: an `int` must be integral,
/// numbers within `min`/`max`, categories among `values`, NaN (a tensor's missing value) only
/// where nullable. `locate(feature, row)` names where a value came from. A tensor's type was
/// matched with the graph's when it was decoded, so the rows' JSON type rules do not apply.
pub fn check_columns(
    features: &[Feature],
    columns: &[ColumnValues],
    locate: impl Fn(usize, usize) -> Vec<LocSegment>,
) -> Violations {
    let mut violations = Violations::new();
    for (index, (feature, column)) in features.iter().zip(columns).enumerate() {
        let mut check = |row: usize, scalar: Scalar| {
            if let Err((kind, msg)) = check_scalar(feature, scalar, Quote::Tensor) {
                violations.push_with(|| Violation::new(locate(index, row), kind, msg));
            }
        };
        match column {
            ColumnValues::Float(values) => {
                for (row, &x) in values.iter().enumerate() {
                    let scalar = if x.is_nan() {
                        Scalar::NaN
                    } else {
                        Scalar::Number(x)
                    };
                    check(row, scalar);
                }
            }
            ColumnValues::Int(values) => {
                for (row, &x) in values.iter().enumerate() {
                    check(row, Scalar::Integer(x));
                }
            }
            ColumnValues::Bool(values) => {
                for (row, &x) in values.iter().enumerate() {
                    check(row, Scalar::Bool(x));
                }
            }
            ColumnValues::Text(values) => {
                for (row, text) in values.iter().enumerate() {
                    check(row, Scalar::Text(text));
                }
            }
        }
    }
    violations
}

/// A number as short as it reads: values that came from an `f32` tensor print as the `f32`
/// they were (`-0.2`, not `-0.20000000298023224`), but never less precisely than the `f64`
/// (2^53 stays `9007199254740992`, not the `f32` spelling `9007199000000000`).
fn show(x: f64) -> String {
    let wide = x.to_string();
    let narrow = x as f32;
    if f64::from(narrow) == x {
        let short = narrow.to_string();
        if short.len() < wide.len() {
            return short;
        }
    }
    wide
}

/// Whether `x` is within the feature's `min`/`max`; `shown` spells it for the message.
fn check_range(
    feature: &Feature,
    x: f64,
    shown: impl FnOnce() -> String,
) -> Result<(), (ViolationType, String)> {
    // A value that is exactly an `f32` (from an FP32 tensor, as the graph will see it) is
    // compared with the bounds as `f32`s: `7.9` sent as FP32 is 7.900000095…, which must not
    // fail `max = 7.9` when the same row sent as JSON, cast to the same `f32`, passes.
    let as_f32 = |bound: f64| {
        if f64::from(x as f32) == x {
            f64::from(bound as f32)
        } else {
            bound
        }
    };
    let below = feature.min.is_some_and(|min| x < as_f32(min));
    let above = feature.max.is_some_and(|max| x > as_f32(max));
    if !(below || above) {
        return Ok(());
    }
    let bounds = match (feature.min, feature.max) {
        (Some(min), Some(max)) => format!("between {min} and {max}"),
        (Some(min), None) => format!("at least {min}"),
        (None, Some(max)) => format!("at most {max}"),
        (None, None) => unreachable!("out of range needs a bound"),
    };
    Err((
        ViolationType::RangeError,
        format!(
            "expected a value {bounds}; got {} (the feature's `min`/`max` in warden.toml)",
            shown()
        ),
    ))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn features() -> Vec<Feature> {
        let manifest = crate::Manifest::from_toml(
            r#"
            [[features]]
            name = "age"
            type = "float"
            min = 18.0
            max = 100.0
            [[features]]
            name = "children"
            type = "int"
            [[features]]
            name = "country"
            type = "category"
            values = ["US", "DE", "FR", "GB", "IN"]
            "#,
        )
        .unwrap();
        manifest.features
    }

    #[test]
    fn valid_rows_become_typed_columns_in_feature_order() {
        let rows = json!([
            {"country": "US", "age": 42, "children": 2},
            [30.5, 0, "DE"]
        ]);
        let columns = validate_instances(&features(), &rows, "instances").unwrap();
        assert_eq!(columns.rows, 2);
        assert_eq!(
            columns.columns[0].values,
            ColumnValues::Float(vec![42.0, 30.5])
        );
        assert_eq!(columns.columns[1].values, ColumnValues::Int(vec![2, 0]));
        assert_eq!(
            columns.columns[2].values,
            ColumnValues::Text(vec!["US".into(), "DE".into()])
        );
    }

    #[test]
    fn a_category_sent_as_an_integer_is_a_type_error() {
        let rows = json!([{"age": 42, "children": 1, "country": 3}]);
        let violations = validate_instances(&features(), &rows, "instances").unwrap_err();
        assert_eq!(
            serde_json::to_value(violations.listed()).unwrap(),
            json!([{
                "loc": ["instances", 0, "country"],
                "msg": "expected one of US, DE, FR, GB, IN; got integer 3",
                "type": "type_error"
            }])
        );
    }

    #[test]
    fn every_violation_in_the_request_is_reported() {
        let rows = json!([
            {"age": "42", "children": 1.5, "country": "XX", "colour": "red"},
            {"age": 150, "country": null},
            {"age": true, "children": 1, "country": "US"}
        ]);
        let violations = validate_instances(&features(), &rows, "instances").unwrap_err();
        let kinds: Vec<_> = violations
            .listed()
            .iter()
            .map(|v| (serde_json::to_value(&v.loc).unwrap(), v.kind))
            .collect();
        use ViolationType::*;
        assert_eq!(
            kinds,
            vec![
                (json!(["instances", 0, "age"]), TypeError),
                (json!(["instances", 0, "children"]), TypeError),
                (json!(["instances", 0, "country"]), CategoryError),
                (json!(["instances", 0, "colour"]), ExtraForbidden),
                (json!(["instances", 1, "age"]), RangeError),
                (json!(["instances", 1, "children"]), Missing),
                (json!(["instances", 1, "country"]), ValueError),
                (json!(["instances", 2, "age"]), TypeError),
            ]
        );
        assert_eq!(
            violations.listed()[4].msg,
            "expected a value between 18 and 100; got 150 (the feature's `min`/`max` in warden.toml)"
        );
    }

    #[test]
    fn typed_columns_follow_the_same_value_rules() {
        let columns = [
            ColumnValues::Float(vec![42.0, 150.0, f64::NAN]),
            ColumnValues::Float(vec![1.0, 1.5, 2.0]),
            ColumnValues::Text(vec!["US".into(), "XX".into(), "DE".into()]),
        ];
        let violations = check_columns(&features(), &columns, |feature, row| {
            vec![LocSegment::Index(feature), LocSegment::Index(row)]
        });
        let found: Vec<_> = violations
            .listed()
            .iter()
            .map(|v| (serde_json::to_value(&v.loc).unwrap(), v.kind))
            .collect();
        assert_eq!(
            found,
            vec![
                (json!([0, 1]), ViolationType::RangeError),
                (json!([0, 2]), ViolationType::ValueError),
                (json!([1, 1]), ViolationType::TypeError),
                (json!([2, 1]), ViolationType::CategoryError),
            ]
        );
    }

    #[test]
    fn nan_and_infinity_in_any_spelling_are_value_errors() {
        let body = br#"[{"age": NaN, "children": -Infinity, "country": "US"},
                        {"age": "nan", "children": "+inf", "country": "US"}]"#;
        let marked = crate::mark_bare_non_finite(body).unwrap();
        let rows: Value = serde_json::from_slice(&marked).unwrap();
        let violations = validate_instances(&features(), &rows, "instances").unwrap_err();
        let violations = violations.listed();
        assert_eq!(violations.len(), 4, "{violations:?}");
        assert!(
            violations
                .iter()
                .all(|v| v.kind == ViolationType::ValueError)
        );
        assert_eq!(
            violations[0].msg,
            "expected a finite number, got NaN; NaN and infinity are refused"
        );
        assert_eq!(
            violations[3].msg,
            "expected a finite number, got +inf; NaN and infinity are refused"
        );
    }

    #[test]
    fn the_shape_of_the_request_itself_is_checked() {
        let err = validate_instances(&features(), &json!({"age": 1}), "instances").unwrap_err();
        assert_eq!(err.listed()[0].kind, ViolationType::TypeError);
        let err = validate_instances(&features(), &json!([]), "instances").unwrap_err();
        assert_eq!(err.listed()[0].kind, ViolationType::ValueError);
        let err = validate_instances(&features(), &json!([[1.0]]), "instances").unwrap_err();
        assert_eq!(err.listed()[0].kind, ViolationType::ShapeMismatch);
    }

    #[test]
    fn a_flood_of_unknown_keys_answers_a_bounded_list() {
        let mut row = serde_json::Map::new();
        for i in 0..10_000 {
            row.insert(format!("{}{i}", "k".repeat(200)), json!(1));
        }
        let rows = Value::Array(vec![Value::Object(row)]);
        let err = validate_instances(&features(), &rows, "instances").unwrap_err();
        assert_eq!(err.total(), 10_000 + 3);
        assert_eq!(err.listed().len(), crate::MAX_LISTED_VIOLATIONS);
        let unknown = &err.listed()[3];
        assert_eq!(unknown.kind, ViolationType::ExtraForbidden);
        assert!(unknown.msg.len() < 200, "{}", unknown.msg);
    }

    #[test]
    fn an_fp32_value_at_a_bound_is_within_it() {
        let children = ColumnValues::Float(vec![1.0, 1.0]);
        let country = ColumnValues::Text(vec!["US".into(), "US".into()]);
        let mut features = features();
        features[0].min = Some(4.3);
        features[0].max = Some(7.9);
        let at_bounds = [
            ColumnValues::Float(vec![f64::from(7.9f32), f64::from(4.3f32)]),
            children.clone(),
            country.clone(),
        ];
        let violations = check_columns(&features, &at_bounds, |f, r| {
            vec![LocSegment::Index(f), LocSegment::Index(r)]
        });
        assert!(violations.is_empty(), "{violations:?}");
        let beyond = [
            ColumnValues::Float(vec![f64::from(7.9001f32), 7.9000001]),
            children,
            country,
        ];
        let violations = check_columns(&features, &beyond, |f, r| {
            vec![LocSegment::Index(f), LocSegment::Index(r)]
        });
        assert_eq!(violations.total(), 2, "{violations:?}");
    }

    /// The one violation a value gets as a row's JSON value of `feature`.
    fn as_row(feature: &Feature, value: Value) -> Option<(ViolationType, String)> {
        let rows = Value::Array(vec![Value::Array(vec![value])]);
        let found = validate_instances(std::slice::from_ref(feature), &rows, "instances").err()?;
        let [violation] = found.listed() else {
            panic!("one violation expected: {found:?}")
        };
        Some((violation.kind, violation.msg.clone()))
    }

    /// The one violation a value gets as the one value of `feature`'s decoded column.
    fn as_column(feature: &Feature, column: ColumnValues) -> Option<(ViolationType, String)> {
        let found = check_columns(std::slice::from_ref(feature), &[column], |_, row| {
            vec![LocSegment::Index(row)]
        });
        let [violation] = found.listed() else {
            assert!(found.is_empty(), "one violation at most: {found:?}");
            return None;
        };
        Some((violation.kind, violation.msg.clone()))
    }

    #[test]
    fn a_row_and_a_column_agree_on_each_kind_of_value() {
        let features = crate::Manifest::from_toml(
            r#"
            [[features]]
            name = "age"
            type = "float"
            min = 18.0
            max = 100.0
            [[features]]
            name = "children"
            type = "int"
            min = 0.0
            max = 20.0
            [[features]]
            name = "homeowner"
            type = "bool"
            [[features]]
            name = "city"
            type = "string"
            [[features]]
            name = "country"
            type = "category"
            values = ["US", "DE"]
            [[features]]
            name = "savings"
            type = "float"
            nullable = true
            max = 7.9
            [[features]]
            name = "pets"
            type = "int"
            nullable = true
            "#,
        )
        .unwrap()
        .features;
        let [age, children, homeowner, city, country, savings, pets] = &features[..] else {
            panic!("seven features")
        };
        use ColumnValues::*;
        use ViolationType::*;
        let range = |msg: &str| Some((RangeError, msg.to_owned()));
        // (feature, the value as a row's JSON, the same value in a column, what both answer)
        let agreeing = [
            (
                age,
                json!(150),
                Int(vec![150]),
                range(
                    "expected a value between 18 and 100; got 150 (the feature's `min`/`max` in warden.toml)",
                ),
            ),
            (
                age,
                json!(150.5),
                Float(vec![150.5]),
                range(
                    "expected a value between 18 and 100; got 150.5 (the feature's `min`/`max` in warden.toml)",
                ),
            ),
            (
                age,
                json!(17.75),
                Float(vec![17.75]),
                range(
                    "expected a value between 18 and 100; got 17.75 (the feature's `min`/`max` in warden.toml)",
                ),
            ),
            (age, json!(42.5), Float(vec![42.5]), None),
            (
                children,
                json!(21),
                Int(vec![21]),
                range(
                    "expected a value between 0 and 20; got 21 (the feature's `min`/`max` in warden.toml)",
                ),
            ),
            (
                children,
                json!(-1),
                Int(vec![-1]),
                range(
                    "expected a value between 0 and 20; got -1 (the feature's `min`/`max` in warden.toml)",
                ),
            ),
            (children, json!(2), Int(vec![2]), None),
            (children, json!(2.0), Float(vec![2.0]), None),
            (
                savings,
                json!(f64::from(7.9f32)),
                Float(vec![f64::from(7.9f32)]),
                None,
            ),
            (
                savings,
                json!(7.9001),
                Float(vec![7.9001]),
                range(
                    "expected a value at most 7.9; got 7.9001 (the feature's `min`/`max` in warden.toml)",
                ),
            ),
            (savings, Value::Null, Float(vec![f64::NAN]), None),
            (homeowner, json!(true), Bool(vec![true]), None),
            (city, json!("Lyon"), Text(vec!["Lyon".into()]), None),
            (country, json!("DE"), Text(vec!["DE".into()]), None),
            (
                country,
                json!("XX"),
                Text(vec!["XX".into()]),
                Some((
                    CategoryError,
                    "expected one of US, DE; got string \"XX\" (if the model handles values it was not trained on, set `handle_unknown = \"pass\"` on the feature in warden.toml)".to_owned(),
                )),
            ),
        ];
        for (feature, value, column, expected) in agreeing {
            let case = format!("{} = {value}", feature.name);
            assert_eq!(as_row(feature, value), expected, "row {case}");
            assert_eq!(as_column(feature, column), expected, "column {case}");
        }
        // Where the two paths differ today: each quotes a number as it holds it (the JSON as
        // sent and with its kind; the tensor's number), a row's missing value is null and a
        // tensor's NaN, and a column accepts two values a row refuses: NaN for a nullable int,
        // and an integral float beyond 9e15 for an int (a float tensor passes it on as is).
        let differing = [
            (
                children,
                json!(1.5),
                Float(vec![1.5]),
                Some((TypeError, "expected an integer, got number 1.5")),
                Some((TypeError, "expected an integer, got 1.5")),
            ),
            (
                age,
                json!(150.0),
                Float(vec![150.0]),
                Some((
                    RangeError,
                    "expected a value between 18 and 100; got 150.0 (the feature's `min`/`max` in warden.toml)",
                )),
                Some((
                    RangeError,
                    "expected a value between 18 and 100; got 150 (the feature's `min`/`max` in warden.toml)",
                )),
            ),
            (
                age,
                Value::Null,
                Float(vec![f64::NAN]),
                Some((
                    ValueError,
                    "feature `age` is not nullable; got null (a missing value: set `nullable = true` on the feature in warden.toml if the model handles one)",
                )),
                Some((
                    ValueError,
                    "feature `age` is not nullable; got NaN (a missing value: set `nullable = true` on the feature in warden.toml if the model handles one)",
                )),
            ),
            (
                pets,
                Value::Null,
                Float(vec![f64::NAN]),
                Some((
                    ValueError,
                    "null is only accepted for float features (as a missing value); `pets` is int",
                )),
                None,
            ),
            (
                pets,
                json!(1e16),
                Float(vec![1e16]),
                Some((TypeError, "expected an integer, got number 1e+16")),
                None,
            ),
        ];
        let owned = |answer: Option<(ViolationType, &str)>| answer.map(|(k, m)| (k, m.to_owned()));
        for (feature, value, column, row, tensor) in differing {
            let case = format!("{} = {value}", feature.name);
            assert_eq!(as_row(feature, value), owned(row), "row {case}");
            assert_eq!(as_column(feature, column), owned(tensor), "column {case}");
        }
    }

    #[test]
    fn numbers_are_quoted_as_sent() {
        let rows = json!([{"age": 9007199254740993u64, "children": 1, "country": "US"}]);
        let err = validate_instances(&features(), &rows, "instances").unwrap_err();
        assert_eq!(
            err.listed()[0].msg,
            "expected a value between 18 and 100; got 9007199254740993 (the feature's `min`/`max` in warden.toml)"
        );
        assert_eq!(show(9007199254740992.0), "9007199254740992");
        assert_eq!(show(f64::from(-0.2f32)), "-0.2");
    }
}
