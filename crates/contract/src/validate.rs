//! Row validation: the JSON rows of a request checked against the declared features, turned
//! into typed columns, or rejected with every violation found.
//!
//! Nothing is coerced. A category sent as an integer, a number sent as a string, a boolean sent
//! where a number is declared: each is a violation, because a silently coerced value is a
//! silently wrong prediction.

use serde_json::Value;

use crate::manifest::{Feature, FeatureType};
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

/// Checks `instances` (a JSON array of rows, each an object keyed by feature name or an array
/// of values in feature order) against `features`. `root` is the key the rows came under, used
/// as the first step of every violation's location.
pub fn validate_instances(
    features: &[Feature],
    instances: &Value,
    root: &str,
) -> Result<FeatureColumns, Violations> {
    let Value::Array(rows) = instances else {
        return Err(Violation::new(
            vec![root.into()],
            ViolationType::TypeError,
            format!("expected an array of rows, got {}", describe(instances)),
        )
        .into());
    };
    if rows.is_empty() {
        return Err(Violation::new(
            vec![root.into()],
            ViolationType::ValueError,
            "expected at least one row, got an empty array",
        )
        .into());
    }
    let mut columns: Vec<ColumnBuilder> = features
        .iter()
        .map(|f| ColumnBuilder::new(f, rows.len()))
        .collect();
    let mut violations = Violations::new();
    for (index, row) in rows.iter().enumerate() {
        let at = |key: &str| vec![root.into(), LocSegment::Index(index), key.into()];
        match row {
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
        rows: rows.len(),
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
        match check_value(feature, value) {
            Ok(checked) => match (&mut self.values, checked) {
                (ColumnValues::Float(v), Checked::Float(x)) => v.push(x),
                (ColumnValues::Int(v), Checked::Int(x)) => v.push(x),
                (ColumnValues::Bool(v), Checked::Bool(x)) => v.push(x),
                (ColumnValues::Text(v), Checked::Text(x)) => v.push(x),
                // check_value answers in the feature's own type, which chose the column type.
                _ => violations.push_with(|| {
                    Violation::new(
                        loc,
                        ViolationType::TypeError,
                        "value does not fit the column",
                    )
                }),
            },
            Err((kind, msg)) => violations.push_with(|| Violation::new(loc, kind, msg)),
        }
    }
}

enum Checked {
    Float(f64),
    Int(i64),
    Bool(bool),
    Text(String),
}

fn check_value(feature: &Feature, value: &Value) -> Result<Checked, (ViolationType, String)> {
    let type_error = |expected: &str| {
        Err((
            ViolationType::TypeError,
            format!("expected {expected}, got {}", describe(value)),
        ))
    };
    if value.is_null() {
        return match (feature.nullable, feature.kind) {
            (true, FeatureType::Float) => Ok(Checked::Float(f64::NAN)),
            (true, _) => Err((
                ViolationType::ValueError,
                format!(
                    "null is only accepted for float features (as a missing value); `{}` is {}",
                    feature.name,
                    feature.kind.name()
                ),
            )),
            (false, _) => Err((
                ViolationType::ValueError,
                format!("feature `{}` is not nullable; got null", feature.name),
            )),
        };
    }
    if feature.kind.is_numeric()
        && let Some(spelling) = value.as_str().and_then(non_finite_spelling)
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
    if value.as_str().is_some_and(is_bare_token) {
        return type_error(if feature.kind == FeatureType::Category {
            "one of the category's values"
        } else {
            "a string"
        });
    }
    match feature.kind {
        FeatureType::Float => match value.as_f64() {
            Some(x) if value.is_number() => {
                check_range(feature, x, || value.to_string()).map(|()| Checked::Float(x))
            }
            _ => type_error("a number"),
        },
        FeatureType::Int => {
            let integral = value.as_i64().or_else(|| {
                value
                    .as_f64()
                    .filter(|x| x.fract() == 0.0 && x.abs() < 9.0e15)
                    .map(|x| x as i64)
            });
            match integral {
                Some(x) => {
                    check_range(feature, x as f64, || value.to_string()).map(|()| Checked::Int(x))
                }
                None => type_error("an integer"),
            }
        }
        FeatureType::Bool => match value {
            Value::Bool(b) => Ok(Checked::Bool(*b)),
            _ => type_error("a boolean"),
        },
        FeatureType::String => match value {
            Value::String(s) => Ok(Checked::Text(s.clone())),
            _ => type_error("a string"),
        },
        FeatureType::Category => match value {
            Value::String(s) => check_category(feature, s).map(|()| Checked::Text(s.clone())),
            _ => Err((
                ViolationType::TypeError,
                format!("expected {}; got {}", one_of(feature), describe(value)),
            )),
        },
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
    if allowed.iter().any(|a| a == value) {
        return Ok(());
    }
    Err((
        ViolationType::CategoryError,
        format!(
            "expected {}; got {}",
            one_of(feature),
            describe(&Value::String(value.to_owned()))
        ),
    ))
}

/// Checks columns that are already typed (decoded from V2 tensors) against the features'
/// value rules: an `int` must be integral, numbers within `min`/`max`, categories among
/// `values`, no NaN unless nullable. `locate(feature, row)` names where a value came from.
/// The JSON row path applies the same rules while it types each value.
pub fn check_columns(
    features: &[Feature],
    columns: &[ColumnValues],
    locate: impl Fn(usize, usize) -> Vec<LocSegment>,
) -> Violations {
    let mut violations = Violations::new();
    for (index, (feature, column)) in features.iter().zip(columns).enumerate() {
        let mut note = |row: usize, result: Result<(), (ViolationType, String)>| {
            if let Err((kind, msg)) = result {
                violations.push_with(|| Violation::new(locate(index, row), kind, msg));
            }
        };
        match column {
            ColumnValues::Float(values) => {
                for (row, &x) in values.iter().enumerate() {
                    let result = if x.is_nan() {
                        if feature.nullable {
                            Ok(())
                        } else {
                            Err((
                                ViolationType::ValueError,
                                format!("feature `{}` is not nullable; got NaN", feature.name),
                            ))
                        }
                    } else if feature.kind == FeatureType::Int && x.fract() != 0.0 {
                        Err((
                            ViolationType::TypeError,
                            format!("expected an integer, got {}", show(x)),
                        ))
                    } else {
                        check_range(feature, x, || show(x))
                    };
                    note(row, result);
                }
            }
            ColumnValues::Int(values) => {
                for (row, &x) in values.iter().enumerate() {
                    note(row, check_range(feature, x as f64, || x.to_string()));
                }
            }
            ColumnValues::Text(values) if feature.kind == FeatureType::Category => {
                for (row, value) in values.iter().enumerate() {
                    note(row, check_category(feature, value));
                }
            }
            ColumnValues::Text(_) | ColumnValues::Bool(_) => {}
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
        format!("expected a value {bounds}; got {}", shown()),
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
            "expected a value between 18 and 100; got 150"
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

    #[test]
    fn numbers_are_quoted_as_sent() {
        let rows = json!([{"age": 9007199254740993u64, "children": 1, "country": "US"}]);
        let err = validate_instances(&features(), &rows, "instances").unwrap_err();
        assert_eq!(
            err.listed()[0].msg,
            "expected a value between 18 and 100; got 9007199254740993"
        );
        assert_eq!(show(9007199254740992.0), "9007199254740992");
        assert_eq!(show(f64::from(-0.2f32)), "-0.2");
    }
}
