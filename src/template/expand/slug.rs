//! Slugs: id fragments of parameter values, unique across a build.

#[allow(clippy::wildcard_imports)]
use super::*;

// ---------------------------------------------------------------------------------------
// Slugs
// ---------------------------------------------------------------------------------------

/// The `slug` of every value of one build. Each value's readable fragment is used unless
/// another value of the same build has the same fragment (or the fragment is empty or too
/// long); then the fragment gets 8 hex digits of the blake3 of the value. A pure function of
/// the parameter set, so every use of a value in a template gives the same id.
#[derive(Debug, Clone, Default)]
pub struct SlugTable {
    ambiguous: BTreeSet<String>,
}

impl SlugTable {
    /// The table of the values in `values` (list elements included).
    pub fn new(values: &BTreeMap<String, Value>) -> Self {
        let mut texts: BTreeSet<String> = BTreeSet::new();
        for v in values.values() {
            match v {
                Value::Array(items) => texts.extend(items.iter().map(scalar_text)),
                other => {
                    texts.insert(scalar_text(other));
                }
            }
        }
        let mut by_base: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for t in texts {
            by_base.entry(slug_base(&t)).or_default().push(t);
        }
        let ambiguous = by_base
            .into_iter()
            .filter(|(_, v)| v.len() > 1)
            .map(|(b, _)| b)
            .collect();
        Self { ambiguous }
    }

    /// The id fragment of `text`.
    pub fn slug(&self, text: &str) -> String {
        let base = slug_base(text);
        if base.is_empty() || base.len() > SLUG_MAX || self.ambiguous.contains(&base) {
            let hash = &digest::blake3_hex(text.as_bytes())[..8];
            let keep: String = base.chars().take(SLUG_MAX - 9).collect();
            let keep = keep.trim_end_matches(['-', '.', '_']);
            if keep.is_empty() {
                hash.to_string()
            } else {
                format!("{keep}-{hash}")
            }
        } else {
            base
        }
    }
}

/// The readable fragment: `${SCRATCH}` → `scratch`, `${HOME}` → `home`, lowercase, runs of
/// anything but `[a-z0-9._]` → `-`, no leading or trailing `-`, `.`, `_`.
fn slug_base(text: &str) -> String {
    let t = text
        .replacen("${SCRATCH}", "scratch", 1)
        .replacen("${HOME}", "home", 1)
        .to_lowercase();
    let mut out = String::new();
    for c in t.chars() {
        if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '_' {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches(['-', '.', '_']).to_string()
}
