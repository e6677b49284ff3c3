//! The `nexusmon` binary: parse arguments, call the library once, exit with its code.

use std::io::{IsTerminal, Write};

use clap::Parser;

fn main() {
    // The builtin probe helper is started thousands of times per run: skip argument parsing.
    let mut raw = std::env::args_os();
    let mode = raw.nth(1);
    // The zygote of the children's PID namespaces (one per run).
    if mode
        .as_ref()
        .is_some_and(|a| a == nexusmon::exec::ZYGOTE_MODE)
    {
        #[allow(clippy::exit)]
        std::process::exit(nexusmon::exec::zygote_main());
    }
    // The builtin probes' fork server (one per worker thread of a run).
    if mode
        .as_ref()
        .is_some_and(|a| a == nexusmon::exec::FORK_SERVER_MODE)
    {
        let args: Vec<String> = raw.map(|a| a.to_string_lossy().into_owned()).collect();
        #[allow(clippy::exit)]
        std::process::exit(nexusmon::exec::fork_server_main(&args));
    }
    if mode.is_some_and(|a| a == "__probe") {
        let args: Vec<String> = raw.map(|a| a.to_string_lossy().into_owned()).collect();
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        let code = nexusmon::exec::probe_helper_main(&args, &mut out);
        let _ = out.flush();
        #[allow(clippy::exit)]
        std::process::exit(code);
    }
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let out_is_tty = stdout.is_terminal();
    let err_is_tty = stderr.is_terminal();
    let cli = match nexusmon::cli::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            // clap's messages quote the command line: escaped like every other output
            // (`--help` and `--version` are the tool's own text).
            let code = e.exit_code();
            if e.use_stderr() {
                let mut err = stderr.lock();
                let mut term = nexusmon::util::term::Term::new(&mut err);
                term.set_color(err_is_tty);
                let text = if err_is_tty {
                    e.render().ansi().to_string()
                } else {
                    e.render().to_string()
                };
                let _ = term.write_all(text.as_bytes());
                let _ = term.flush();
            } else {
                let _ = e.print();
            }
            #[allow(clippy::exit)]
            std::process::exit(code);
        }
    };
    let mut out = stdout.lock();
    let mut err = stderr.lock();
    let code = {
        let mut io = nexusmon::cli::Io::new(&mut out, &mut err, out_is_tty, err_is_tty);
        nexusmon::cli::run(cli, &mut io)
    };
    let _ = out.flush();
    #[allow(clippy::exit)]
    std::process::exit(code);
}
