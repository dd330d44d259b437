//! A JSON tree for the request parser.
//!
//! `serde_json::Value` would lose what the parser needs to give precise
//! errors: object members keep their order and their duplicates here, so a
//! field given twice is seen rather than silently overwritten; and every string
//! is held in [`Zeroizing`], so the card data of a request that is refused (or
//! of the parts a request does not keep) is wiped when the tree goes.
//!
//! Nesting is bounded by serde_json's recursion limit (128), so neither parsing
//! nor dropping a hostile body can exhaust the stack.

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use std::fmt;
use zeroize::Zeroizing;

/// A JSON number as serde_json reports it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Num {
    U(u64),
    I(i64),
    F(f64),
}

/// One JSON value.
pub(crate) enum Json {
    Null,
    Bool(bool),
    Number(Num),
    String(Zeroizing<String>),
    Array(Vec<Json>),
    /// Members in the order of the body, duplicates kept.
    Object(Vec<(String, Json)>),
}

impl Json {
    /// What the value is, for messages ("found a number").
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "a boolean",
            Json::Number(_) => "a number",
            Json::String(_) => "a string",
            Json::Array(_) => "an array",
            Json::Object(_) => "an object",
        }
    }
}

impl fmt::Debug for Json {
    // Never the content: strings are card data.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Json::String(s) => write!(f, "String({} bytes)", s.len()),
            Json::Array(a) => write!(f, "Array({} items)", a.len()),
            Json::Object(o) => write!(f, "Object({} members)", o.len()),
            other => f.write_str(other.kind()),
        }
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Json, D::Error> {
        d.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_none<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Json, D::Error> {
        Json::deserialize(d)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Json, E> {
        Ok(Json::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Json, E> {
        Ok(Json::Number(Num::I(v)))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Json, E> {
        Ok(Json::Number(Num::U(v)))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Json, E> {
        Ok(Json::Number(Num::F(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Json, E> {
        Ok(Json::String(Zeroizing::new(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<Json, E> {
        Ok(Json::String(Zeroizing::new(v)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Json>()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut members = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value::<Json>()?;
            members.push((key, value));
        }
        Ok(Json::Object(members))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Json {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn keeps_duplicates_and_order() {
        let Json::Object(m) = parse(r#"{"b":1,"a":"x","b":null}"#) else {
            panic!("not an object")
        };
        let keys: Vec<&str> = m.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["b", "a", "b"]);
        assert!(matches!(m[0].1, Json::Number(Num::U(1))));
        assert!(matches!(m[2].1, Json::Null));
    }

    #[test]
    fn numbers_keep_their_kind() {
        assert!(matches!(parse("-3"), Json::Number(Num::I(-3))));
        assert!(matches!(parse("3"), Json::Number(Num::U(3))));
        assert!(matches!(parse("3.5"), Json::Number(Num::F(_))));
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = "[".repeat(100_000);
        assert!(serde_json::from_str::<Json>(&deep).is_err());
    }

    #[test]
    fn debug_hides_strings() {
        let j = parse(r#"["4000001234567899"]"#);
        let Json::Array(a) = &j else { panic!() };
        assert_eq!(format!("{:?}", a[0]), "String(16 bytes)");
    }
}
