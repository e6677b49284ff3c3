//! Field-level differences between two JSON values: which fields were added, removed or
//! changed, each named by a path such as `landlock.fs.allow[8].access`. Objects are
//! compared key by key (sorted); arrays element by element along their longest common
//! subsequence, so an element inserted in the middle reads as one addition rather than a
//! change of every later index (arrays longer than [`LCS_LIMIT`] are compared by index, to
//! bound time and memory).

use serde::Serialize;
use serde_json::Value;

/// Arrays longer than this are compared index by index.
pub const LCS_LIMIT: usize = 512;

/// One changed field.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct FieldChange {
    /// Where: `a.b[3].c` (the empty string for the whole value).
    pub path: String,
    /// The value before (absent: added).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Value>,
    /// The value after (absent: removed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Value>,
}

impl FieldChange {
    /// `added`, `removed` or `changed`.
    pub fn kind(&self) -> &'static str {
        match (&self.before, &self.after) {
            (None, Some(_)) => "added",
            (Some(_), None) => "removed",
            _ => "changed",
        }
    }

    /// One line: `path: before → after` (values as compact JSON, long ones shortened).
    pub fn describe(&self) -> String {
        let show = |v: &Value| {
            let s = serde_json::to_string(v).unwrap_or_default();
            if s.chars().count() > 160 {
                let cut: String = s.chars().take(157).collect();
                format!("{cut}…")
            } else {
                s
            }
        };
        let path = if self.path.is_empty() {
            "(whole value)"
        } else {
            &self.path
        };
        match (&self.before, &self.after) {
            (None, Some(a)) => format!("{path}: added {}", show(a)),
            (Some(b), None) => format!("{path}: removed {}", show(b)),
            (Some(b), Some(a)) => format!("{path}: {} → {}", show(b), show(a)),
            (None, None) => format!("{path}: (no value)"),
        }
    }
}

/// Every field that differs between `before` and `after`, in path order.
pub fn diff(before: &Value, after: &Value) -> Vec<FieldChange> {
    let mut out = Vec::new();
    walk("", before, after, &mut out);
    out
}

/// [`diff`] of two values found at `path` (the paths of the fields start with it).
pub fn diff_at(path: &str, before: &Value, after: &Value) -> Vec<FieldChange> {
    let mut out = Vec::new();
    walk(path, before, after, &mut out);
    out
}

/// The path of member `key` of the object at `base`, as [`diff`] names it.
pub fn key_path(base: &str, key: &str) -> String {
    let simple = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '$'));
    match (base.is_empty(), simple) {
        (true, true) => key.to_string(),
        (false, true) => format!("{base}.{key}"),
        (_, false) => format!("{base}[{}]", serde_json::to_string(key).unwrap_or_default()),
    }
}

#[allow(clippy::many_single_char_names)]
fn walk(path: &str, a: &Value, b: &Value, out: &mut Vec<FieldChange>) {
    if a == b {
        return;
    }
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let p = key_path(path, k);
                match (x.get(k), y.get(k)) {
                    (Some(va), Some(vb)) => walk(&p, va, vb, out),
                    (Some(va), None) => out.push(FieldChange {
                        path: p,
                        before: Some(va.clone()),
                        after: None,
                    }),
                    (None, Some(vb)) => out.push(FieldChange {
                        path: p,
                        before: None,
                        after: Some(vb.clone()),
                    }),
                    (None, None) => {}
                }
            }
        }
        (Value::Array(x), Value::Array(y)) => arrays(path, x, y, out),
        _ => out.push(FieldChange {
            path: path.to_string(),
            before: Some(a.clone()),
            after: Some(b.clone()),
        }),
    }
}

#[allow(clippy::many_single_char_names)]
fn arrays(path: &str, x: &[Value], y: &[Value], out: &mut Vec<FieldChange>) {
    let at = |i: usize| format!("{path}[{i}]");
    if x.len() > LCS_LIMIT || y.len() > LCS_LIMIT {
        for i in 0..x.len().max(y.len()) {
            match (x.get(i), y.get(i)) {
                (Some(a), Some(b)) => walk(&at(i), a, b, out),
                (Some(a), None) => out.push(FieldChange {
                    path: at(i),
                    before: Some(a.clone()),
                    after: None,
                }),
                (None, Some(b)) => out.push(FieldChange {
                    path: at(i),
                    before: None,
                    after: Some(b.clone()),
                }),
                (None, None) => {}
            }
        }
        return;
    }
    // Longest common subsequence table (lengths of suffixes).
    let (n, m) = (x.len(), y.len());
    let mut t = vec![0u16; (n + 1) * (m + 1)];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            t[i * (m + 1) + j] = if x[i] == y[j] {
                t[(i + 1) * (m + 1) + j + 1] + 1
            } else {
                t[(i + 1) * (m + 1) + j].max(t[i * (m + 1) + j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    // Unmatched runs: pair a removal with an addition at the same place as a change (so a
    // field edited inside one element is named), the rest are added / removed.
    let mut removed: Vec<usize> = Vec::new();
    let mut added: Vec<usize> = Vec::new();
    let flush = |removed: &mut Vec<usize>, added: &mut Vec<usize>, out: &mut Vec<FieldChange>| {
        let pairs = removed.len().min(added.len());
        for k in 0..pairs {
            walk(&at(added[k]), &x[removed[k]], &y[added[k]], out);
        }
        for &r in &removed[pairs..] {
            out.push(FieldChange {
                path: at(r),
                before: Some(x[r].clone()),
                after: None,
            });
        }
        for &a in &added[pairs..] {
            out.push(FieldChange {
                path: at(a),
                before: None,
                after: Some(y[a].clone()),
            });
        }
        removed.clear();
        added.clear();
    };
    while i < n || j < m {
        if i < n && j < m && x[i] == y[j] {
            flush(&mut removed, &mut added, out);
            i += 1;
            j += 1;
        } else if j < m && (i == n || t[i * (m + 1) + j + 1] >= t[(i + 1) * (m + 1) + j]) {
            added.push(j);
            j += 1;
        } else {
            removed.push(i);
            i += 1;
        }
    }
    flush(&mut removed, &mut added, out);
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn names_the_field_that_changed() {
        let a = json!({"landlock": {"fs": {"allow": [{"path": "/usr", "access": ["read"]}]}}});
        let b = json!({"landlock": {"fs": {"allow": [{"path": "/usr", "access": ["read"]}, {"path": "/etc", "access": ["read"]}]}}});
        let d = diff(&a, &b);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].path, "landlock.fs.allow[1]");
        assert_eq!(d[0].kind(), "added");
        let c =
            json!({"landlock": {"fs": {"allow": [{"path": "/usr", "access": ["read", "exec"]}]}}});
        let d = diff(&a, &c);
        assert_eq!(d[0].path, "landlock.fs.allow[0].access[1]", "{d:?}");
        assert!(diff(&a, &a).is_empty());
    }

    #[test]
    fn an_insertion_in_the_middle_is_one_addition() {
        let a = json!([1, 2, 3, 4]);
        let b = json!([1, 2, 9, 3, 4]);
        let d = diff(&a, &b);
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(d[0].path, "[2]");
    }

    /// Generated pairs: applying the reported changes' count is never more than the
    /// elements that differ, and equal values never differ.
    #[test]
    #[allow(clippy::cast_possible_truncation)]
    fn generated_values_diff_consistently() {
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..300 {
            let n = (next() % 8) as usize;
            let a: Vec<Value> = (0..n).map(|_| json!(next() % 5)).collect();
            let mut b = a.clone();
            let edits = next() % 3;
            for _ in 0..edits {
                if b.is_empty() || next() % 2 == 0 {
                    let at = (next() as usize) % (b.len() + 1);
                    b.insert(at, json!(10 + next() % 5));
                } else {
                    let at = (next() as usize) % b.len();
                    b.remove(at);
                }
            }
            let (va, vb) = (Value::Array(a.clone()), Value::Array(b.clone()));
            let d = diff(&va, &vb);
            assert_eq!(d.is_empty(), a == b, "{a:?} {b:?} {d:?}");
            assert!(d.len() as u64 <= edits * 2, "{a:?} {b:?} {d:?}");
            assert!(diff(&vb, &vb).is_empty());
        }
    }
}
