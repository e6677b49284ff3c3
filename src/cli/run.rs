//! `run`.

use super::args::RunArgs;
use super::{Ctx, Io, not_implemented};
use crate::Result;

pub fn run(_ctx: &Ctx, _io: &mut Io<'_>, _a: RunArgs) -> Result<i32> {
    Err(not_implemented("run"))
}
