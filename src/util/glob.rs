//! Shell-style globs for selecting ids (`--only-scenario 'system-ro:*'`): `*` matches any
//! run of characters, `?` exactly one; everything else matches itself. Matching is
//! iterative with one backtrack point, so it finishes in O(pattern × text) whatever the
//! input.

/// Whether `s` has a glob character.
pub fn is_glob(s: &str) -> bool {
    s.contains(['*', '?'])
}

/// Whether `text` matches `pattern` as a whole.
pub fn matches(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(matches("system-ro:*", "system-ro:read-etc-hostname"));
        assert!(!matches("system-ro:*", "net-deny-all:read-etc-hostname"));
        assert!(matches("*:read-*", "x:read-etc"));
        assert!(matches("a?c", "abc"));
        assert!(!matches("a?c", "ac"));
        assert!(matches("*", ""));
        assert!(matches("exact", "exact"));
        assert!(!matches("exact", "exactly"));
        assert!(is_glob("a*") && !is_glob("a:b"));
    }

    /// A pattern without glob characters matches only itself; a `*` pattern built from a
    /// text's prefix and suffix always matches it.
    #[test]
    fn generated_globs() {
        let words = ["a", "ab", "b", "ba", ":", "x-y", ""];
        for a in words {
            for b in words {
                let text = format!("{a}{b}");
                assert!(matches(&text, &text));
                assert!(matches(&format!("{a}*{b}"), &format!("{a}zz{b}")));
                assert!(matches(&format!("{a}*"), &text));
                assert!(matches(&format!("*{b}"), &text));
                for c in words {
                    assert_eq!(matches(c, &text), c == text, "{c} {text}");
                }
            }
        }
    }
}
