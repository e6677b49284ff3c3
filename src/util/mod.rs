//! Small helpers shared by every module: filesystem calls that name their path, the
//! atomic write and the file lock ([`fsx`]), deterministic JSON ([`json`]), digests
//! ([`digest`]), time stamps ([`time`]), host name and kernel release ([`host`]), "did
//! you mean" suggestions ([`suggest`]), text made safe for a terminal ([`term`]), the cost budget of user input ([`limits`]), the one
//! way to reach a place the tool writes to without following a symlink ([`nofollow`]), path
//! resolution the way the kernel walks a path ([`paths`]), globs over ids ([`glob`]) and
//! field-level JSON differences ([`jsondiff`]).

pub mod digest;
pub mod extsort;
pub mod fsmemo;
pub mod fsx;
pub mod glob;
pub mod host;
pub mod json;
pub mod jsoncheck;
pub mod jsondiff;
pub mod limits;
pub mod nofollow;
pub mod paths;
pub mod suggest;
pub mod term;
#[cfg(test)]
pub mod testrng;
pub mod time;

/// `s` with every ASCII letter lowercased and every character that is not an ASCII letter or
/// digit replaced by `-`: the alphabet of generated ids and DNS labels (callers trim,
/// collapse or cut it as their format needs).
pub fn lowercase_dashed(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}
