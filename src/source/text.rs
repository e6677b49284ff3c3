//! [`Str`], the strings of a document's tree (keys and string values): a short one is kept
//! inside the node, a longer one in one exact-size allocation. A plan's policy matrix is
//! ~10^5 short keys and `allow`/`deny` values, each otherwise a heap block (32 bytes with
//! the allocator's header) besides the 24 bytes of its `String`.
//!
//! Hand-written (a dozen lines of storage): it only has to hold, compare and show a
//! string; the crates that do this bring far more than the tree uses.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

/// The longest string kept inline (the size of a `String`, less the length byte and the
/// enum's tag).
const INLINE: usize = 22;

/// An immutable string, inline up to [`INLINE`] bytes. Compares, orders, hashes, prints and
/// dereferences exactly as the `str` it holds.
#[derive(Clone)]
pub struct Str(Repr);

#[derive(Clone)]
enum Repr {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Box<str>),
}

impl Str {
    /// The string.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Inline { len, bytes } => {
                // The bytes are a prefix of a `str` cut at its end (see `From<&str>`), so
                // they are UTF-8; checked anyway (no `unsafe`), which cannot fail.
                std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or_default()
            }
            Repr::Heap(s) => s,
        }
    }
}

impl From<&str> for Str {
    fn from(s: &str) -> Self {
        if s.len() <= INLINE {
            let mut bytes = [0u8; INLINE];
            bytes[..s.len()].copy_from_slice(s.as_bytes());
            Self(Repr::Inline {
                // At most INLINE (22): fits a u8.
                len: u8::try_from(s.len()).unwrap_or(u8::MAX),
                bytes,
            })
        } else {
            Self(Repr::Heap(s.into()))
        }
    }
}

impl From<String> for Str {
    fn from(s: String) -> Self {
        if s.len() <= INLINE {
            Self::from(s.as_str())
        } else {
            Self(Repr::Heap(s.into_boxed_str()))
        }
    }
}

impl Deref for Str {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Str {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for Str {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Debug for Str {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Str {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.as_str(), f)
    }
}

impl PartialEq for Str {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Str {}

impl PartialEq<str> for Str {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Str {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for Str {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other.as_str()
    }
}

impl PartialOrd for Str {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Str {
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl Hash for Str {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Generated strings around the inline bound (ASCII and multi-byte, cut anywhere a
    /// `str` can be cut) behave exactly as the `String` they were made from.
    #[test]
    fn generated_strings_are_the_strings_they_hold() {
        let alphabet = ['a', 'z', '0', '/', '~', 'é', '€', '𝄞', '"', '\\', '\n', ' '];
        let mut r = crate::util::testrng::Rng(22);
        let mut made: Vec<(String, Str)> = Vec::new();
        for _ in 0..2000 {
            let chars = r.below(30usize);
            let s: String = (0..chars).map(|_| *r.pick(&alphabet)).collect();
            let a = Str::from(s.clone());
            let b = Str::from(s.as_str());
            assert_eq!(a.as_str(), s);
            assert_eq!(&*b, s.as_str());
            assert_eq!(a, b);
            assert!(a == s && a == *s.as_str() && a == s.as_str());
            assert_eq!(format!("{a}"), s);
            assert_eq!(format!("{a:?}"), format!("{s:?}"));
            assert_eq!(a.len() <= INLINE, matches!(a.0, Repr::Inline { .. }));
            made.push((s, a));
        }
        for w in made.windows(2) {
            let ((s0, a0), (s1, a1)) = (&w[0], &w[1]);
            assert_eq!(a0.cmp(a1), s0.cmp(s1));
            assert_eq!(a0 == a1, s0 == s1);
            let hash = |x: &dyn Fn(&mut std::collections::hash_map::DefaultHasher)| {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                x(&mut h);
                h.finish()
            };
            assert_eq!(hash(&|h| a0.hash(h)), hash(&|h| s0.as_str().hash(h)));
        }
        assert_eq!(std::mem::size_of::<Str>(), std::mem::size_of::<String>());
    }
}
