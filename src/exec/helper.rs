//! The builtin probe helper: `nexusmon __probe …`, a hidden mode of the same binary that
//! restricts itself from a compiled profile, performs exactly one operation and prints one
//! JSON line.

use std::io::Write;

/// Run the helper with its raw arguments; returns its exit code.
pub fn main(_args: &[String], out: &mut dyn Write) -> i32 {
    let _ = writeln!(
        out,
        "{{\"v\":1,\"outcome\":\"error\",\"detail\":\"probe helper not implemented\"}}"
    );
    3
}
