//! `completions`.

use clap::CommandFactory;

use super::Io;
use super::args::{Cli, CompletionsArgs};
use crate::{Error, Result, exit_code};

pub fn completions(io: &mut Io<'_>, a: &CompletionsArgs) -> Result<i32> {
    let mut cmd = Cli::command();
    let mut buf = Vec::new();
    clap_complete::generate(a.shell, &mut cmd, "nexusmon", &mut buf);
    io.out
        .raw()
        .write_all(&buf)
        .map_err(|e| Error::io("write", "<stdout>", e))?;
    Ok(exit_code::OK)
}
