//! Forgiving field deserialisers. The Machines API is written in Go, which encodes nil
//! slices and maps as `null` and occasionally changes a field's scalar type; none of that
//! may make a whole response undecodable.

use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// `null` (or absent, with `#[serde(default)]`) becomes `T::default()`.
pub(crate) fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Any scalar becomes its string form; `null`, arrays and objects become `None`.
pub(crate) fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => Some(s),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    })
}

/// Like [`opt_string`] but never `None`: missing or odd values become `""`.
pub(crate) fn string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(opt_string(d)?.unwrap_or_default())
}

/// A machine state from any scalar (like [`string`]); unknown text is kept verbatim.
pub(crate) fn machine_state<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<crate::model::MachineState, D::Error> {
    Ok(string(d)?.into())
}

/// Integers, floats and numeric strings become `i64`; anything else `None`.
pub(crate) fn opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    })
}

/// A boolean, or the strings `"true"`/`"false"`; anything else `false`.
pub(crate) fn bool_like<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Bool(b) => b,
        Value::String(s) => s.eq_ignore_ascii_case("true"),
        _ => false,
    })
}

/// A string→string map where non-string scalar values are stringified and other
/// values dropped.
pub(crate) fn string_map<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<std::collections::BTreeMap<String, String>, D::Error> {
    let Value::Object(map) = Value::deserialize(d)? else {
        return Ok(Default::default());
    };
    Ok(map
        .into_iter()
        .filter_map(|(k, v)| match v {
            Value::String(s) => Some((k, s)),
            Value::Number(n) => Some((k, n.to_string())),
            Value::Bool(b) => Some((k, b.to_string())),
            _ => None,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use std::collections::BTreeMap;

    #[derive(Deserialize, Default, Debug)]
    #[serde(default)]
    struct T {
        #[serde(deserialize_with = "nullable")]
        v: Vec<String>,
        #[serde(deserialize_with = "opt_string")]
        s: Option<String>,
        #[serde(deserialize_with = "string")]
        r: String,
        #[serde(deserialize_with = "opt_i64")]
        n: Option<i64>,
        #[serde(deserialize_with = "bool_like")]
        b: bool,
        #[serde(deserialize_with = "string_map")]
        m: BTreeMap<String, String>,
    }

    #[test]
    fn nulls_and_odd_types_decode() {
        let t: T = serde_json::from_str(
            r#"{"v":null,"s":12,"r":null,"n":"42","b":"true","m":{"a":"x","b":1,"c":{}}}"#,
        )
        .unwrap();
        assert!(t.v.is_empty());
        assert_eq!(t.s.as_deref(), Some("12"));
        assert_eq!(t.r, "");
        assert_eq!(t.n, Some(42));
        assert!(t.b);
        assert_eq!(t.m.len(), 2);
        let t: T = serde_json::from_str(r#"{"n":1.9e3,"s":[1],"m":null}"#).unwrap();
        assert_eq!(t.n, Some(1900));
        assert_eq!(t.s, None);
        assert!(t.m.is_empty());
        let t: T = serde_json::from_str("{}").unwrap();
        assert!(!t.b);
    }
}
