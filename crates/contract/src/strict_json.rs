//! JSON parsing that refuses what `serde_json::Value` accepts silently: an object naming the
//! same key twice. With duplicates, `Value` keeps the last one, so `{"age": 30, "age": 300}`
//! would be validated as 300 while the client's log shows 30; warden refuses such a body as
//! malformed instead of guessing which one was meant.

use std::borrow::Cow;
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
        // Most objects have a few keys: a list on the stack is cheaper than a set until it is
        // not. Keys borrow from the body unless they hold escapes, so a request's keys cost no
        // allocation.
        const FEW: usize = 16;
        let mut few: [Cow<'de, str>; FEW] = Default::default();
        let mut count = 0;
        let mut many: HashSet<Cow<'de, str>> = HashSet::new();
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            let seen = if count <= FEW {
                few[..count].contains(&key)
            } else {
                many.contains(&key)
            };
            if seen {
                return Err(de::Error::custom(format!("duplicate key `{}`", clip(&key))));
            }
            if count < FEW {
                few[count] = key;
            } else {
                if count == FEW {
                    many.extend(few.iter_mut().map(std::mem::take));
                }
                many.insert(key);
            }
            count += 1;
            map.next_value::<StrictCheck>()?;
        }
        Ok(StrictCheck)
    }
}

/// An object key, borrowed from the input when it has no escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Key<'de>, D::Error> {
        deserializer.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key<'de>;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("an object key")
    }

    fn visit_borrowed_str<E>(self, key: &'de str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Borrowed(key)))
    }

    fn visit_str<E>(self, key: &str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(key.to_owned())))
    }

    fn visit_string<E>(self, key: String) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(key)))
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
        let err = check_strict(br#"{"instances": [{"age": 30, "ag\u0065": 300}]}"#).unwrap_err();
        assert_eq!(err.to_string(), "duplicate key `age` at line 1 column 37");
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
        let keys_16: String = (0..16).map(|i| format!(r#""k{i}": {i}, "#)).collect();
        let keys_15: String = (0..15).map(|i| format!(r#""k{i}": {i}, "#)).collect();
        for text in [
            // A key spelled with an escape is the same key.
            &br#"{"ab": 1, "a\u0062": 2}"#[..],
            br#"{"a\u0062": 1, "ab": 2}"#,
            // Around the 16 keys held on the stack before a set takes over.
            format!("{{{keys_16}\"k0\": 0}}").as_bytes(),
            format!("{{{keys_16}\"k15\": 0}}").as_bytes(),
            format!("{{{keys_15}\"k14\": 0}}").as_bytes(),
            format!("{{{keys_16}\"new\": 0, \"k3\": 1}}").as_bytes(),
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
