//! Rendering errors (and other shared human output) in one place.

use std::fmt::Write as _;
use std::io::Write as _;

use super::Io;
use crate::Error;

/// Render an error: `error: …`, `  hint: …`, `  caused by: …` on stderr; with `json` also an
/// `{"error": {…}}` object on stdout.
pub fn error(e: &Error, json: bool, io: &mut Io<'_>) {
    let mut text = format!("error: {e}\n");
    for cause in e.causes() {
        let _ = writeln!(text, "  caused by: {cause}");
    }
    if let Some(h) = e.hint() {
        let _ = writeln!(text, "  hint: {h}");
    }
    let _ = io.err.write_all(text.as_bytes());
    if json {
        let v = serde_json::json!({
            "error": {
                "message": e.message(),
                "path": e.path().map(|p| p.display().to_string()),
                "hint": e.hint(),
                "causes": e.causes(),
                "exit_code": e.exit_code(),
            }
        });
        if let Ok(line) = crate::util::json::to_sorted_line(&v) {
            let _ = writeln!(io.out.raw(), "{line}");
        }
    }
}
