//! The `nexusmon` binary: parse arguments, call the library once, exit with its code.

use std::io::{IsTerminal, Write};

use clap::Parser;

fn main() {
    let cli = nexusmon::cli::Cli::parse();
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let out_is_tty = stdout.is_terminal();
    let err_is_tty = stderr.is_terminal();
    let mut out = stdout.lock();
    let mut err = stderr.lock();
    let code = {
        let mut io = nexusmon::cli::Io {
            out: &mut out,
            err: &mut err,
            err_is_tty,
            out_is_tty,
        };
        nexusmon::cli::run(cli, &mut io)
    };
    let _ = out.flush();
    #[allow(clippy::exit)]
    std::process::exit(code);
}
