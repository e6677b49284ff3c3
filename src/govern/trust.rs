//! The trust file `.nexusmon/trusted_signers`: operator public keys with their principals
//! and roles, in OpenSSH's allowed-signers format so that `ssh-keygen -Y verify -f` reads
//! the same file.
//!
//! ```text
//! principals [options] keytype base64-key [comment]
//! ```
//!
//! - `principals`: comma-separated names or patterns (`*`, `?`, `!negation`, as OpenSSH).
//! - `options` (comma-separated, as OpenSSH): `namespaces="…"` (the key only counts for
//!   those namespaces), `valid-after="YYYYMMDD[HHMM[SS]][Z]"`, `valid-before="…"` (no `Z`
//!   means local time, as OpenSSH), `cert-authority` (not supported: such lines are
//!   ignored, with a note). Any other option is an error, as it is for ssh-keygen.
//! - roles: a `roles=a,b` word in the comment (ssh-keygen ignores comments). Only keys
//!   whose line grants [`APPROVER_ROLE`] count for approvals and clearances; only keys
//!   whose line grants [`RUNNER_ROLE`] (and allows the namespace `nexusmon-bundle-v1`)
//!   count as the signer of a bundle.
//! - the policy line `# nexusmon: require-signed-bundles` (a comment to ssh-keygen) makes
//!   an unsigned or wrongly signed bundle fail `validate-bundle --trust` and never promote.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use ssh_key::{HashAlg, PublicKey};

use super::state::{StateDir, TRUST_FILE};
use crate::util::fsx;
use crate::{Error, Result};

/// The role that lets a key approve missions and clear omens.
pub const APPROVER_ROLE: &str = "approver";

/// Check an approver principal is usable: 1-64 of letters, digits, `.`, `_`, `-`, `@`, `+`,
/// starting with a letter or digit (safe in a file name, no pattern characters).
pub fn validate_principal(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@' | b'+'));
    if ok {
        Ok(())
    } else {
        Err(Error::usage(format!("invalid principal `{name}`")).with_hint(
            "principals are 1-64 letters, digits, `.`, `_`, `-`, `@`, `+`, starting with a letter or digit, as in the trust file",
        ))
    }
}
/// The role that lets a key sign bundles (`run --sign-with`).
pub const RUNNER_ROLE: &str = "runner";

/// The comment line that requires signed bundles.
pub const REQUIRE_SIGNED_BUNDLES: &str = "nexusmon: require-signed-bundles";

/// Whether `r` is a well-formed role name: lowercase letters, digits and `-`.
pub fn valid_role(r: &str) -> bool {
    !r.is_empty()
        && r.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// One trusted key line.
#[derive(Debug, Clone)]
pub struct TrustEntry {
    /// 1-based line number.
    pub line: usize,
    /// Principal names or patterns.
    pub principals: Vec<String>,
    /// `namespaces="…"` patterns, if restricted.
    pub namespaces: Option<Vec<String>>,
    /// `valid-after`.
    pub valid_after: Option<jiff::Timestamp>,
    /// `valid-before`.
    pub valid_before: Option<jiff::Timestamp>,
    /// The key.
    pub key: PublicKey,
    /// `SHA256:…` fingerprint of the key.
    pub fingerprint: String,
    /// Roles from the comment's `roles=` word.
    pub roles: BTreeSet<String>,
}

/// Why a trusted key does not count for a principal at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryRefusal {
    /// The principal is not on the key's line.
    Principal,
    /// `namespaces=` does not include the namespace.
    Namespace,
    /// Before `valid-after`.
    NotYetValid,
    /// At or after `valid-before`.
    Expired,
}

impl TrustEntry {
    /// Whether `name` matches this line's principals (OpenSSH pattern-list semantics: a
    /// matching negated pattern excludes, else any positive match includes).
    pub fn matches_principal(&self, name: &str) -> bool {
        match_pattern_list(name, &self.principals)
    }

    /// Whether this line lets its key sign as `principal` in `namespace` at `now`.
    pub fn allows(
        &self,
        principal: &str,
        namespace: &str,
        now: jiff::Timestamp,
    ) -> std::result::Result<(), EntryRefusal> {
        if !self.matches_principal(principal) {
            return Err(EntryRefusal::Principal);
        }
        if let Some(ns) = &self.namespaces
            && !match_pattern_list(namespace, ns)
        {
            return Err(EntryRefusal::Namespace);
        }
        if self.valid_after.is_some_and(|t| now < t) {
            return Err(EntryRefusal::NotYetValid);
        }
        if self.valid_before.is_some_and(|t| now >= t) {
            return Err(EntryRefusal::Expired);
        }
        Ok(())
    }
}

/// The parsed trust file.
#[derive(Debug, Clone)]
pub struct TrustStore {
    /// The file.
    pub path: PathBuf,
    /// Trusted key lines, in file order.
    pub entries: Vec<TrustEntry>,
    /// Lines ignored, with why (e.g. `cert-authority`).
    pub notes: Vec<String>,
    /// The file says `# nexusmon: require-signed-bundles`.
    pub require_signed_bundles: bool,
}

impl TrustStore {
    /// A trust file with no lines (what a broken one counts as: nothing is trusted).
    pub fn empty(path: &Path) -> Self {
        Self {
            path: path.to_path_buf(),
            entries: Vec::new(),
            notes: Vec::new(),
            require_signed_bundles: false,
        }
    }

    /// Load the state directory's trust file.
    pub fn from_state(state: &StateDir) -> Result<Self> {
        Self::load(&state.file(TRUST_FILE))
    }

    /// Load and parse a trust file. A missing file or a bad line is an input error (exit
    /// 2) naming the file and line: a trust file is never half-read.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = fsx::read_limited(
            path,
            crate::util::limits::MAX_DOCUMENT_BYTES,
            "a trust file",
            None,
        );
        let text = bytes.and_then(|b| fsx::utf8_input(path, b)).map_err(|e| {
            e.with_hint(
                "run `nexusmon init` to create a trust file template, then add operator keys",
            )
        })?;
        Self::parse(path, &text)
    }

    /// Parse trust-file text.
    pub fn parse(path: &Path, text: &str) -> Result<Self> {
        let mut entries = Vec::new();
        let mut notes = Vec::new();
        let mut require_signed_bundles = false;
        for (i, raw) in text.lines().enumerate() {
            let line_no = i + 1;
            let line = raw.trim();
            if let Some(comment) = line.strip_prefix('#') {
                if comment.trim().eq_ignore_ascii_case(REQUIRE_SIGNED_BUNDLES) {
                    require_signed_bundles = true;
                }
                continue;
            }
            if line.is_empty() {
                continue;
            }
            match parse_line(line, line_no) {
                Ok(Some(e)) => entries.push(e),
                Ok(None) => notes.push(format!(
                    "line {line_no}: cert-authority lines are not supported by nexusmon and are ignored"
                )),
                Err(msg) => {
                    // `file:line: message`, as compilers name a place.
                    let place = PathBuf::from(format!("{}:{line_no}", path.display()));
                    return Err(Error::input(place, msg).with_hint(
                        "each line is `principals [options] keytype base64-key [comment]` (ssh-keygen(1), ALLOWED SIGNERS); roles go in the comment as `roles=approver`",
                    ));
                }
            }
        }
        Ok(Self {
            path: path.to_path_buf(),
            entries,
            notes,
            require_signed_bundles,
        })
    }

    /// Every line whose key is `key` (a key may be listed on several lines).
    pub fn entries_for(&self, key: &ssh_key::public::KeyData) -> Vec<&TrustEntry> {
        self.entries
            .iter()
            .filter(|e| e.key.key_data() == key)
            .collect()
    }

    /// Every line that names `principal`.
    pub fn entries_for_principal(&self, principal: &str) -> Vec<&TrustEntry> {
        self.entries
            .iter()
            .filter(|e| e.matches_principal(principal))
            .collect()
    }
}

/// Split off one whitespace-delimited token, keeping `"…"` quoted runs (which may hold
/// spaces) inside it.
fn next_token(s: &str) -> Option<(&str, &str)> {
    let s = s.trim_start();
    if s.is_empty() {
        return None;
    }
    let mut in_quotes = false;
    for (i, c) in s.char_indices() {
        match c {
            '"' => in_quotes = !in_quotes,
            c if c.is_whitespace() && !in_quotes => return Some((&s[..i], &s[i..])),
            _ => {}
        }
    }
    Some((s, ""))
}

/// Split on commas outside quotes.
fn split_commas(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut in_quotes = false;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '"' => in_quotes = !in_quotes,
            ',' if !in_quotes => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn unquote(s: &str) -> std::result::Result<&str, String> {
    match s.strip_prefix('"') {
        Some(rest) => rest
            .strip_suffix('"')
            .ok_or_else(|| format!("unterminated quote in `{s}`")),
        None => Ok(s),
    }
}

fn looks_like_key_type(s: &str) -> bool {
    s.starts_with("ssh-")
        || s.starts_with("ecdsa-sha2-")
        || s.starts_with("sk-ssh-")
        || s.starts_with("sk-ecdsa-sha2-")
}

fn parse_line(line: &str, line_no: usize) -> std::result::Result<Option<TrustEntry>, String> {
    let (principals_tok, rest) = next_token(line).ok_or("empty line")?;
    let principals: Vec<String> = unquote(principals_tok)?
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect();
    if principals.is_empty() {
        return Err("no principals".into());
    }
    let (mut tok, mut rest) = next_token(rest).ok_or("no key after the principals")?;
    let mut namespaces = None;
    let mut valid_after = None;
    let mut valid_before = None;
    let mut cert_authority = false;
    if !looks_like_key_type(tok) {
        for opt in split_commas(tok) {
            let (name, value) = match opt.split_once('=') {
                Some((n, v)) => (n, Some(unquote(v)?)),
                None => (opt, None),
            };
            match (name.to_ascii_lowercase().as_str(), value) {
                ("cert-authority", None) => cert_authority = true,
                ("namespaces", Some(v)) => {
                    namespaces = Some(v.split(',').map(|s| s.trim().to_string()).collect());
                }
                ("valid-after", Some(v)) => valid_after = Some(parse_ssh_time(v)?),
                ("valid-before", Some(v)) => valid_before = Some(parse_ssh_time(v)?),
                _ => {
                    return Err(format!(
                        "unknown option `{opt}` (supported: namespaces=\"…\", valid-after=\"…\", valid-before=\"…\"; ssh-keygen rejects unknown options too)"
                    ));
                }
            }
        }
        (tok, rest) = next_token(rest).ok_or("no key type after the options")?;
    }
    let key_type = tok;
    let (b64, comment) =
        next_token(rest).ok_or_else(|| format!("no base64 key after `{key_type}`"))?;
    let key = PublicKey::from_openssh(&format!("{key_type} {b64}"))
        .map_err(|e| format!("cannot parse the `{key_type}` key: {e}"))?;
    if cert_authority {
        return Ok(None);
    }
    let mut roles = BTreeSet::new();
    for word in comment.split_whitespace() {
        if let Some(list) = word.strip_prefix("roles=") {
            for r in list.split(',').filter(|r| !r.is_empty()) {
                if !valid_role(r) {
                    return Err(format!(
                        "role `{r}`: roles are lowercase letters, digits and `-`"
                    ));
                }
                roles.insert(r.to_string());
            }
        }
    }
    let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
    Ok(Some(TrustEntry {
        line: line_no,
        principals,
        namespaces,
        valid_after,
        valid_before,
        key,
        fingerprint,
        roles,
    }))
}

/// Parse OpenSSH's `YYYYMMDD[HHMM[SS]][Z]` (without `Z`: local time).
fn parse_ssh_time(s: &str) -> std::result::Result<jiff::Timestamp, String> {
    let bad = || format!("time `{s}` is not YYYYMMDD[HHMM[SS]][Z]");
    let (digits, utc) = match s.strip_suffix(['Z', 'z']) {
        Some(d) => (d, true),
        None => (s, false),
    };
    if !matches!(digits.len(), 8 | 12 | 14) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let num = |r: std::ops::Range<usize>| {
        digits
            .get(r)
            .and_then(|d| d.parse::<i16>().ok())
            .unwrap_or(0)
    };
    let (y, mo, d) = (num(0..4), num(4..6), num(6..8));
    let (h, mi, sec) = (num(8..10), num(10..12), num(12..14));
    let dt = jiff::civil::DateTime::new(
        y,
        i8::try_from(mo).map_err(|_| bad())?,
        i8::try_from(d).map_err(|_| bad())?,
        i8::try_from(h).map_err(|_| bad())?,
        i8::try_from(mi).map_err(|_| bad())?,
        i8::try_from(sec).map_err(|_| bad())?,
        0,
    )
    .map_err(|_| bad())?;
    let tz = if utc {
        jiff::tz::TimeZone::UTC
    } else {
        jiff::tz::TimeZone::system()
    };
    tz.to_timestamp(dt).map_err(|_| bad())
}

/// OpenSSH pattern matching: `*` any run, `?` one character — the same as the run
/// selectors' globs (`util::glob`, iterative, O(pattern × text)).
fn match_pattern(s: &str, pat: &str) -> bool {
    crate::util::glob::matches(pat, s)
}

/// OpenSSH pattern lists: a matching `!pattern` excludes; otherwise any match includes.
fn match_pattern_list(s: &str, list: &[String]) -> bool {
    let mut matched = false;
    for p in list {
        if let Some(neg) = p.strip_prefix('!') {
            if match_pattern(s, neg) {
                return false;
            }
        } else if match_pattern(s, p) {
            matched = true;
        }
    }
    matched
}

/// What `trust add` did.
#[derive(Debug, Clone)]
pub struct TrustAdded {
    /// The trust file.
    pub path: PathBuf,
    /// The line written (1-based line number, text).
    pub line: usize,
    /// Its text.
    pub text: String,
    /// `SHA256:…` of the key.
    pub fingerprint: String,
    /// False when an identical line was already there (nothing written).
    pub added: bool,
    /// The audit head after the `trust-added` entry.
    pub audit_head: Option<crate::model::index::AuditHead>,
}

/// `trust add KEY --principal NAME --role ROLE…`: append a line for the public key `key` (a
/// `.pub` file, or the key text `ssh-ed25519 AAAA…`) to the state directory's trust file,
/// restricted to nexusmon's signature namespace, with the roles in its comment. Under the
/// state lock the file is read, the new text checked by the same parser every verifier
/// uses, and written atomically (temp file, rename); then the change is recorded in the
/// audit log. A line for the same key and principal already there is left alone.
pub fn add(
    explicit: Option<&Path>,
    root: &Path,
    key: &str,
    principal: &str,
    roles: &[String],
) -> Result<TrustAdded> {
    let gov = super::Governance::discover(explicit, root)?;
    validate_principal(principal)?;
    if roles.is_empty() {
        return Err(Error::usage("trust add needs at least one --role")
            .with_hint(format!("e.g. --role {APPROVER_ROLE}")));
    }
    if let Some(r) = roles.iter().find(|r| !valid_role(r)) {
        return Err(Error::usage(format!("invalid role `{r}`"))
            .with_hint("roles are lowercase letters, digits and `-`, e.g. `approver`"));
    }
    let key_path = Path::new(key);
    let key_text = if key_path.is_file() {
        fsx::read_key_file(key_path, "a public key file")?
    } else {
        key.to_string()
    };
    let public = PublicKey::from_openssh(key_text.trim()).map_err(|e| {
        let what = if key_path.is_file() {
            Error::input(key_path, "is not an OpenSSH public key")
        } else {
            Error::usage(format!("`{key}` is neither a file nor an OpenSSH public key"))
        };
        what.with_source(e)
            .with_hint("pass a `.pub` file (ssh-keygen -y -f KEY > KEY.pub) or the key text `ssh-ed25519 AAAA…`")
    })?;
    let bare = PublicKey::new(public.key_data().clone(), "");
    let key_line = bare
        .to_openssh()
        .map_err(|e| Error::runner("cannot encode the public key").with_source(e))?;
    let fingerprint = public.fingerprint(HashAlg::Sha256).to_string();
    let mut roles: Vec<String> = roles.to_vec();
    roles.sort();
    roles.dedup();
    let text = format!(
        "{principal} namespaces=\"{}\" {} roles={}",
        crate::model::approval::SIGNATURE_NAMESPACE,
        key_line.trim(),
        roles.join(",")
    );
    let state = gov.state();
    let path = state.file(TRUST_FILE);
    let _lock = state.lock()?;
    let old = fsx::read_limited(
        &path,
        crate::util::limits::MAX_DOCUMENT_BYTES,
        "a trust file",
        None,
    )
    .and_then(|b| fsx::utf8_input(&path, b))
    .map_err(|e| {
        e.with_hint("run `nexusmon init` to create the state directory and its trust file")
    })?;
    let store = TrustStore::parse(&path, &old)?;
    if let Some(e) = store
        .entries
        .iter()
        .find(|e| e.fingerprint == fingerprint && e.principals.iter().any(|p| p == principal))
    {
        if roles.iter().all(|r| e.roles.contains(r)) {
            return Ok(TrustAdded {
                path,
                line: e.line,
                text: old.lines().nth(e.line - 1).unwrap_or_default().to_string(),
                fingerprint,
                added: false,
                audit_head: None,
            });
        }
        return Err(Error::input(
            &path,
            format!(
                "line {}: key {fingerprint} is already trusted for `{principal}` with other roles",
                e.line
            ),
        )
        .with_hint("edit that line's `roles=` word instead of adding a second line"));
    }
    let mut new = old.clone();
    if !new.is_empty() && !new.ends_with('\n') {
        new.push('\n');
    }
    new.push_str(&text);
    new.push('\n');
    TrustStore::parse(&path, &new)?;
    fsx::write_atomic(&path, new.as_bytes())?;
    let line = new.lines().count();
    let head = gov.audit().append(
        super::audit::AuditKind::TrustAdded,
        serde_json::json!({
            "principal": principal,
            "roles": roles,
            "key_fingerprint": fingerprint,
            "line": line,
            "trust_file_blake3": crate::util::digest::blake3_hex(new.as_bytes()),
        }),
    )?;
    Ok(TrustAdded {
        path,
        line,
        text,
        fingerprint,
        added: true,
        audit_head: Some(head),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJjTNUXrRolbPDM8Mn5LtdpjaArkkKrYunCg/Ios3Ln6";

    fn parse(text: &str) -> Result<TrustStore> {
        TrustStore::parse(Path::new("trusted_signers"), text)
    }

    #[test]
    fn parses_principals_options_key_and_roles() {
        let t = parse(&format!(
            "# comment\n\nalice,ops-* namespaces=\"nexusmon-approval-v1,git\",valid-after=\"20200101\",valid-before=\"203001011200Z\" {KEY} alice@laptop roles=approver,security\n"
        ))
        .unwrap();
        assert_eq!(t.entries.len(), 1);
        let e = &t.entries[0];
        assert_eq!(e.line, 3);
        assert_eq!(e.principals, vec!["alice", "ops-*"]);
        assert!(e.matches_principal("ops-bob"));
        assert!(!e.matches_principal("bob"));
        assert_eq!(e.namespaces.as_ref().unwrap().len(), 2);
        assert!(e.roles.contains("approver") && e.roles.contains("security"));
        assert!(e.fingerprint.starts_with("SHA256:"));
        let now = jiff::Timestamp::now();
        assert_eq!(e.allows("alice", "nexusmon-approval-v1", now), Ok(()));
        assert_eq!(e.allows("alice", "file", now), Err(EntryRefusal::Namespace));
        assert_eq!(e.allows("carol", "git", now), Err(EntryRefusal::Principal));
        let late: jiff::Timestamp = "2031-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(e.allows("alice", "git", late), Err(EntryRefusal::Expired));
        let early: jiff::Timestamp = "2019-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(
            e.allows("alice", "git", early),
            Err(EntryRefusal::NotYetValid)
        );
    }

    #[test]
    fn quoted_principals_and_no_options() {
        let t = parse(&format!("\"alice,bob\" {KEY}\n")).unwrap();
        assert_eq!(t.entries[0].principals, vec!["alice", "bob"]);
        assert!(t.entries[0].roles.is_empty());
        assert!(t.entries[0].namespaces.is_none());
    }

    #[test]
    fn negated_patterns_exclude() {
        let t = parse(&format!("*,!mallory {KEY}\n")).unwrap();
        assert!(t.entries[0].matches_principal("alice"));
        assert!(!t.entries[0].matches_principal("mallory"));
    }

    #[test]
    fn bad_lines_name_the_line() {
        let e = parse(&format!("# c\nalice foo=1 {KEY}\n")).unwrap_err();
        assert_eq!(e.kind(), crate::error::ErrorKind::Usage, "{e}");
        assert!(
            e.to_string()
                .contains("trusted_signers:2: unknown option `foo=1`"),
            "{e}"
        );
        let e = parse("alice ssh-ed25519 notbase64\n").unwrap_err();
        assert!(
            e.to_string().contains("trusted_signers:1: cannot parse"),
            "{e}"
        );
        let e = parse(&format!("alice valid-after=\"2020\" {KEY}\n")).unwrap_err();
        assert!(e.to_string().contains("YYYYMMDD"), "{e}");
        let e = parse(&format!("alice {KEY} roles=Approver\n")).unwrap_err();
        assert!(e.to_string().contains("role `Approver`"), "{e}");
    }

    #[test]
    fn the_signed_bundles_policy_is_a_comment_line() {
        assert!(
            !parse(&format!("alice {KEY}\n"))
                .unwrap()
                .require_signed_bundles
        );
        let t = parse(&format!(
            "# nexusmon: require-signed-bundles\nci {KEY} roles=runner\n"
        ))
        .unwrap();
        assert!(t.require_signed_bundles);
        assert!(t.entries[0].roles.contains(RUNNER_ROLE));
        assert!(
            !parse("# require signed bundles, please\n")
                .unwrap()
                .require_signed_bundles
        );
    }

    #[test]
    fn cert_authority_lines_are_ignored_with_a_note() {
        let t = parse(&format!("*@example.com cert-authority {KEY}\n")).unwrap();
        assert!(t.entries.is_empty());
        assert_eq!(t.notes.len(), 1);
    }

    #[test]
    fn patterns() {
        assert!(match_pattern("alice", "a*e"));
        assert!(match_pattern("alice", "?lice"));
        assert!(!match_pattern("alice", "bob*"));
        assert!(match_pattern("", "*"));
    }
}
