//! JSON parsing that refuses what `serde_json::Value` accepts silently: an object naming the
//! same key twice. With duplicates, `Value` keeps the last one, so `{"age": 30, "age": 300}`
//! would be validated as 300 while the client's log shows 30; warden refuses such a body as
//! malformed instead of guessing which one was meant.

use std::collections::HashSet;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::violation::clip;

/// Parses `bytes` as JSON, refusing duplicate object keys (with line and column, as any other
/// syntax error). Nesting is bounded by `serde_json`'s recursion limit.
pub fn parse_strict(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    serde_json::from_slice::<StrictValue>(bytes).map(|strict| strict.0)
}

/// Checks that `bytes` is JSON as [`parse_strict`] takes it (syntax, no duplicate keys, nesting
/// within the recursion limit) without building it: the decoders then read the parts they need
/// straight into typed values, so a body never exists in memory as a tree many times its size.
pub fn check_strict(bytes: &[u8]) -> Result<(), serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    StrictCheck::deserialize(&mut deserializer)?;
    deserializer.end()
}

/// A JSON value checked and dropped as it is read.
struct StrictCheck;

impl<'de> Deserialize<'de> for StrictCheck {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<StrictCheck, D::Error> {
        deserializer.deserialize_any(StrictCheckVisitor)
    }
}

struct StrictCheckVisitor;

impl<'de> Visitor<'de> for StrictCheckVisitor {
    type Value = StrictCheck;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<StrictCheck, E> {
        Ok(StrictCheck)
    }

    fn visit_i64<E>(self, _: i64) -> Result<StrictCheck, E> {
        Ok(StrictCheck)
    }

    fn visit_u64<E>(self, _: u64) -> Result<StrictCheck, E> {
        Ok(StrictCheck)
    }

    fn visit_f64<E>(self, _: f64) -> Result<StrictCheck, E> {
        Ok(StrictCheck)
    }

    fn visit_str<E>(self, _: &str) -> Result<StrictCheck, E> {
        Ok(StrictCheck)
    }

    fn visit_unit<E>(self) -> Result<StrictCheck, E> {
        Ok(StrictCheck)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StrictCheck, A::Error> {
        while seq.next_element::<StrictCheck>()?.is_some() {}
        Ok(StrictCheck)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StrictCheck, A::Error> {
        // Most objects have a few keys: a list is cheaper than a set until it is not.
        let mut few: Vec<String> = Vec::new();
        let mut many: HashSet<String> = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            let seen = if many.is_empty() {
                few.contains(&key)
            } else {
                many.contains(&key)
            };
            if seen {
                return Err(de::Error::custom(format!("duplicate key `{}`", clip(&key))));
            }
            if many.is_empty() && few.len() < 16 {
                few.push(key);
            } else {
                many.extend(few.drain(..));
                many.insert(key);
            }
            map.next_value::<StrictCheck>()?;
        }
        Ok(StrictCheck)
    }
}

struct StrictValue(Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<StrictValue, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(StrictValue(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(de::Error::custom(format!("duplicate key `{}`", clip(&key))));
            }
            let StrictValue(value) = map.next_value()?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_serde_json_parses() {
        let text = br#"{"a": [1, -2, 3.5, "x", null, true, {"b": {}}], "c": 18446744073709551615}"#;
        assert_eq!(
            parse_strict(text).unwrap(),
            serde_json::from_slice::<Value>(text).unwrap()
        );
    }

    #[test]
    fn duplicate_keys_are_refused_with_their_place() {
        let err = parse_strict(br#"{"instances": [{"age": 30, "age": 300}]}"#).unwrap_err();
        assert_eq!(err.to_string(), "duplicate key `age` at line 1 column 32");
        assert!(parse_strict(br#"{"a": {"k": 1}, "b": {"k": 2}}"#).is_ok());
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        let deep = "[".repeat(100_000);
        assert!(parse_strict(deep.as_bytes()).is_err());
        assert!(check_strict(deep.as_bytes()).is_err());
    }

    #[test]
    fn checking_agrees_with_parsing() {
        let keys: String = (0..40).map(|i| format!(r#""k{i}": {i}, "#)).collect();
        for text in [
            &br#"{"a": [1, -2, 3.5, "x", null, true, {"b": {}}], "c": 18446744073709551615}"#[..],
            br#"{"instances": [{"age": 30, "age": 300}]}"#,
            br#"{"a": {"k": 1}, "b": {"k": 2}}"#,
            br#"[1, 2,]"#,
            br#"{"a": 1} x"#,
            format!("{{{keys}\"k7\": 0}}").as_bytes(),
            format!("{{{keys}\"last\": 0}}").as_bytes(),
        ] {
            let parsed = parse_strict(text).map(|_| ()).map_err(|e| e.to_string());
            let checked = check_strict(text).map_err(|e| e.to_string());
            assert_eq!(checked, parsed, "{}", String::from_utf8_lossy(text));
        }
    }
}
