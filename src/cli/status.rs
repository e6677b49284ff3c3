//! `status`.

use super::args::StatusArgs;
use super::{Ctx, Io, not_implemented};
use crate::Result;

pub fn status(_ctx: &Ctx, _io: &mut Io<'_>, _a: &StatusArgs) -> Result<i32> {
    Err(not_implemented("status"))
}
