//! SARIF 2.1.0 as GitHub code scanning accepts it:
//! one run; `tool.driver` with every lint code as a rule; results with `ruleId`, `level`,
//! `message.text`, a repository-relative `artifactLocation.uri`, a region in Unicode code
//! points, and a `primaryLocationLineHash` that stays stable when lines move (a digest of
//! the code, the file and the JSON pointer).

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::{Formatter, RenderOptions, relative};
use crate::Result;
use crate::lint::{Code, Report};

/// The `$schema` of the log (the schema GitHub's documentation names).
pub const SARIF_SCHEMA_URI: &str = "https://json.schemastore.org/sarif-2.1.0.json";

pub(super) struct Sarif;

fn rule(code: Code) -> Value {
    json!({
        "id": code.id(),
        "name": code.name(),
        "shortDescription": { "text": code.short() },
        "fullDescription": { "text": format!("{} {}", code.short(), code.help()) },
        "help": {
            "text": code.help(),
            "markdown": format!("**{}** (`{}`): {}\n\n{}", code.id(), code.name(), code.short(), code.help()),
        },
        "defaultConfiguration": { "level": code.severity().as_str() },
        "properties": { "tags": ["nexusmon", "plan-lint"] },
    })
}

/// Percent-encode a path for a URI reference (RFC 3986): keep unreserved characters, `/`
/// and the sub-delimiters that are safe in a path; encode the rest as UTF-8 bytes.
pub fn uri_encode(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        let keep = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'/'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
                    | b':'
                    | b'@'
            );
        if keep {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

impl Formatter for Sarif {
    fn render(&self, report: &Report, opts: &RenderOptions) -> Result<Vec<u8>> {
        let rules: Vec<Value> = Code::ALL.iter().map(|c| rule(*c)).collect();
        let results: Vec<Value> = report
            .findings
            .iter()
            .map(|f| {
                let uri = match relative(&f.file, &opts.uri_base) {
                    Some(rel) => uri_encode(&rel),
                    None => format!("file://{}", uri_encode(&f.file.to_string_lossy())),
                };
                let fingerprint = crate::util::digest::blake3_hex(
                    format!("{}\0{uri}\0{}", f.code.id(), f.pointer).as_bytes(),
                );
                let text = match &f.hint {
                    Some(h) => format!("{} ({h})", f.message),
                    None => f.message.clone(),
                };
                let index = Code::ALL.iter().position(|c| *c == f.code).unwrap_or(0);
                json!({
                    "ruleId": f.code.id(),
                    "ruleIndex": index,
                    "level": f.severity().as_str(),
                    "message": { "text": text },
                    "locations": [{
                        "physicalLocation": {
                            "artifactLocation": { "uri": uri },
                            "region": {
                                "startLine": f.line,
                                "startColumn": f.column,
                                "endLine": f.end_line,
                                "endColumn": f.end_column,
                            }
                        }
                    }],
                    "partialFingerprints": { "primaryLocationLineHash": &fingerprint[..32] },
                })
            })
            .collect();
        let log = json!({
            "$schema": SARIF_SCHEMA_URI,
            "version": "2.1.0",
            "runs": [{
                "tool": {
                    "driver": {
                        "name": "nexusmon",
                        "semanticVersion": crate::VERSION,
                        "rules": rules,
                    }
                },
                "automationDetails": { "id": format!("nexusmon/{}/", opts.command) },
                "columnKind": "unicodeCodePoints",
                "invocations": [{ "executionSuccessful": true }],
                "results": results,
            }]
        });
        crate::util::json::to_sorted_pretty(&log)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_are_encoded() {
        assert_eq!(uri_encode("plans/a b/plan.json"), "plans/a%20b/plan.json");
        assert_eq!(uri_encode("x/é.json"), "x/%C3%A9.json");
        assert_eq!(uri_encode("a/b-c_d.e~f"), "a/b-c_d.e~f");
    }
}
