//! Properties of row validation over generated rows: it never panics on any JSON, accepts
//! every row drawn from the contract, and rejects every row with a mutated field, naming it;
//! and a number checked as a row's JSON value or in a decoded column gets the same answer.

use proptest::prelude::*;
use serde_json::{Map, Value, json};
use warden_contract::{
    ColumnValues, Feature, FeatureType, LocSegment, Manifest, ViolationType, check_columns,
    validate_instances,
};

fn features() -> Vec<Feature> {
    Manifest::from_toml(
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
        values = ["US", "DE", "FR", "GB", "IN"]
        [[features]]
        name = "savings"
        type = "float"
        nullable = true
        "#,
    )
    .expect("the test contract parses")
    .features
}

/// A value that satisfies `feature`.
fn valid_value(feature: &Feature) -> BoxedStrategy<Value> {
    match feature.kind {
        FeatureType::Float if feature.nullable => {
            prop_oneof![Just(Value::Null), (-1e6f64..1e6).prop_map(|x| json!(x)),].boxed()
        }
        FeatureType::Float => (feature.min.unwrap_or(-1e6)..=feature.max.unwrap_or(1e6))
            .prop_map(|x| json!(x))
            .boxed(),
        FeatureType::Int => {
            let (min, max) = (
                feature.min.unwrap_or(-1e6) as i64,
                feature.max.unwrap_or(1e6) as i64,
            );
            (min..=max).prop_map(|x| json!(x)).boxed()
        }
        FeatureType::Bool => any::<bool>().prop_map(Value::Bool).boxed(),
        FeatureType::String => ".{0,12}".prop_map(Value::String).boxed(),
        FeatureType::Category => {
            proptest::sample::select(feature.values.clone().unwrap_or_default())
                .prop_map(Value::String)
                .boxed()
        }
    }
}

fn valid_row() -> impl Strategy<Value = Map<String, Value>> {
    let features = features();
    let values: Vec<_> = features.iter().map(valid_value).collect();
    values.prop_map(move |values| {
        features
            .iter()
            .map(|f| f.name.clone())
            .zip(values)
            .collect()
    })
}

/// Ways to break one field; each must be caught for every feature it applies to.
#[derive(Debug, Clone, Copy)]
enum Mutation {
    Remove,
    Null,
    WrongType,
    OutOfRange,
    UnknownCategory,
}

/// Applies `mutation` to `feature`'s field, or returns false when it does not apply.
fn mutate(row: &mut Map<String, Value>, feature: &Feature, mutation: Mutation) -> bool {
    let field = feature.name.clone();
    match mutation {
        Mutation::Remove => {
            row.remove(&field);
        }
        Mutation::Null if !feature.nullable => {
            row.insert(field, Value::Null);
        }
        Mutation::WrongType => {
            let wrong = match feature.kind {
                FeatureType::Float | FeatureType::Int => json!("42"),
                FeatureType::Bool => json!(1),
                FeatureType::String | FeatureType::Category => json!(3),
            };
            row.insert(field, wrong);
        }
        Mutation::OutOfRange if feature.max.is_some() => {
            row.insert(field, json!(feature.max.unwrap_or_default() + 1.0));
        }
        Mutation::UnknownCategory if feature.kind == FeatureType::Category => {
            row.insert(field, json!("XX"));
        }
        _ => return false,
    }
    true
}

fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|x| json!(x)),
        any::<f64>()
            .prop_filter("JSON numbers are finite", |x| x.is_finite())
            .prop_map(|x| json!(x)),
        ".{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![Just("age".to_owned()), Just("country".to_owned()), ".{0,6}"],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn never_panics_on_any_json(instances in arbitrary_json()) {
        let _ = validate_instances(&features(), &instances, "instances");
    }

    #[test]
    fn accepts_every_row_drawn_from_the_contract(rows in prop::collection::vec(valid_row(), 1..5)) {
        let instances = Value::Array(rows.into_iter().map(Value::Object).collect());
        let columns = validate_instances(&features(), &instances, "instances");
        prop_assert!(columns.is_ok(), "{:?}", columns.err());
    }

    #[test]
    fn rejects_a_mutated_field_and_names_it(
        mut row in valid_row(),
        feature_index in 0usize..6,
        mutation in prop_oneof![
            Just(Mutation::Remove),
            Just(Mutation::Null),
            Just(Mutation::WrongType),
            Just(Mutation::OutOfRange),
            Just(Mutation::UnknownCategory),
        ],
    ) {
        let features = features();
        let feature = &features[feature_index];
        prop_assume!(mutate(&mut row, feature, mutation));
        let violations = validate_instances(&features, &json!([row]), "instances")
            .expect_err("a mutated row must be rejected");
        let expected_loc = json!(["instances", 0, feature.name]);
        prop_assert!(
            violations.listed().iter().any(|v| serde_json::to_value(&v.loc).ok() == Some(expected_loc.clone())),
            "{mutation:?} on {} not named: {violations:?}", feature.name
        );
    }
}

/// The violations of a check, as `(type, message)`.
type Answers = Vec<(ViolationType, String)>;

/// The violations `value` gets as a row's JSON value of `feature`, and as the one value of
/// `feature`'s decoded column.
fn both_paths(feature: &Feature, value: Value, column: ColumnValues) -> (Answers, Answers) {
    let features = std::slice::from_ref(feature);
    let answers = |found: &warden_contract::Violations| {
        found
            .listed()
            .iter()
            .map(|v| (v.kind, v.msg.clone()))
            .collect::<Answers>()
    };
    let row = validate_instances(features, &json!([[value]]), "instances")
        .err()
        .map(|found| answers(&found))
        .unwrap_or_default();
    let column = answers(&check_columns(features, &[column], |_, row| {
        vec![LocSegment::Index(row)]
    }));
    (row, column)
}

/// A message up to the value it quotes, which each path spells as it holds it (`150.0` as
/// sent in JSON, `150` from a tensor).
fn template(answers: &[(ViolationType, String)]) -> Vec<(ViolationType, &str)> {
    answers
        .iter()
        .map(|(kind, msg)| {
            (
                *kind,
                msg.rsplit_once("got ")
                    .map_or(msg.as_str(), |(head, _)| head),
            )
        })
        .collect()
}

proptest! {
    #[test]
    fn an_integer_gets_the_same_answer_as_a_row_or_a_column(
        feature_index in prop_oneof![Just(0usize), Just(1), Just(5)],
        x in prop_oneof![-50i64..150, any::<i64>()],
    ) {
        let feature = &features()[feature_index];
        let (row, column) = both_paths(feature, json!(x), ColumnValues::Int(vec![x]));
        prop_assert_eq!(row, column);
    }

    #[test]
    fn a_float_gets_the_same_rule_as_a_row_or_a_column(
        feature_index in prop_oneof![Just(0usize), Just(1), Just(5)],
        x in prop_oneof![
            (-200i32..600).prop_map(|q| f64::from(q) / 4.0),
            (-50.0f32..150.0).prop_map(f64::from),
            -1e6f64..1e6,
        ],
    ) {
        let feature = &features()[feature_index];
        let (row, column) = both_paths(feature, json!(x), ColumnValues::Float(vec![x]));
        prop_assert_eq!(template(&row), template(&column), "{:?} / {:?}", row, column);
    }
}
