//! Ids (`^[a-z0-9][a-z0-9._-]{0,63}$`, safe as file names) and variable names.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize};

/// The id pattern.
pub const ID_PATTERN: &str = "^[a-z0-9][a-z0-9._-]{0,63}$";
/// The variable-name pattern.
pub const VAR_PATTERN: &str = "^[A-Z][A-Z0-9_]{0,63}$";

/// A plan, registry, probe, profile, template or task id.
///
/// Shared, not copied: a clone is a reference count (a policy matrix names each probe
/// under every profile, and every scenario of a run names its profile and probe).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Id(std::sync::Arc<str>);

impl Serialize for Id {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl Id {
    /// Validate and wrap.
    pub fn new(s: impl Into<String>) -> Result<Self, String> {
        let s = s.into();
        if is_valid_id(&s) {
            Ok(Self(s.into()))
        } else {
            Err(format!(
                "invalid id `{s}`: ids are 1-64 characters of lowercase letters, digits, `.`, `_` and `-`, starting with a letter or digit"
            ))
        }
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// True if `s` matches [`ID_PATTERN`].
pub fn is_valid_id(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'.' | b'_' | b'-')
        })
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Id {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for Id {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Id::new(s).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Id {
    fn schema_name() -> Cow<'static, str> {
        "Id".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": ID_PATTERN,
            "description": "An id: 1-64 lowercase letters, digits, `.`, `_`, `-`, starting with a letter or digit (safe as a file name)."
        })
    }
}

/// A plan variable name (`${NAME}` in targets): uppercase letters, digits and `_`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct VarName(String);

impl VarName {
    /// Validate and wrap.
    pub fn new(s: impl Into<String>) -> Result<Self, String> {
        let s = s.into();
        let b = s.as_bytes();
        let ok = !b.is_empty()
            && b.len() <= 64
            && b[0].is_ascii_uppercase()
            && b.iter()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == b'_');
        if ok {
            Ok(Self(s))
        } else {
            Err(format!(
                "invalid variable name `{s}`: use uppercase letters, digits and `_`, starting with a letter"
            ))
        }
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for VarName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::borrow::Borrow<str> for VarName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for VarName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        VarName::new(s).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for VarName {
    fn schema_name() -> Cow<'static, str> {
        "VarName".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": VAR_PATTERN,
            "description": "A variable name: uppercase letters, digits and `_`, starting with a letter."
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_rules() {
        assert!(is_valid_id("linux-core"));
        assert!(is_valid_id("a.b_c-1"));
        assert!(!is_valid_id("Linux"));
        assert!(!is_valid_id("-x"));
        assert!(!is_valid_id(""));
        assert!(!is_valid_id(&"a".repeat(65)));
        assert!(!is_valid_id("a/b"));
        let e: Result<Id, _> = serde_json::from_str("\"Bad Id\"");
        assert!(e.unwrap_err().to_string().contains("invalid id `Bad Id`"));
    }

    #[test]
    fn var_rules() {
        assert!(VarName::new("SCRATCH").is_ok());
        assert!(VarName::new("PORT_2").is_ok());
        assert!(VarName::new("port").is_err());
    }
}
