//! "Did you mean …?" suggestions for unknown names.

/// Most candidates compared per suggestion: the cost of one suggestion stays bounded
/// however large the set of names (a suggestion among more names is best-effort).
pub const MAX_CANDIDATES: usize = 1_000;

/// The closest candidate to `input`, if it is close enough to be a plausible typo. Names
/// much longer or shorter than `input` are skipped (they cannot be a typo of it), and at
/// most [`MAX_CANDIDATES`] names are compared.
pub fn did_you_mean<'a, I>(input: &str, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    if input.len() > 256 {
        return None;
    }
    let mut best: Option<(f64, &'a str)> = None;
    let near = |c: &&str| c.len() <= input.len() * 2 + 4 && input.len() <= c.len() * 2 + 4;
    for c in candidates.into_iter().filter(near).take(MAX_CANDIDATES) {
        let score = strsim::jaro_winkler(input, c);
        if score >= 0.8 && best.is_none_or(|(s, _)| score > s) {
            best = Some((score, c));
        }
    }
    best.map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(
            did_you_mean("file-raed", ["file-read", "file-write"]),
            Some("file-read")
        );
        assert_eq!(did_you_mean("zzz", ["file-read", "file-write"]), None);
    }
}
