//! `validate-bundle`, `reindex-bundle`.

use super::args::{BundleArg, ReindexArgs};
use super::{Ctx, Io, not_implemented};
use crate::Result;

pub fn validate(_ctx: &Ctx, _io: &mut Io<'_>, _a: &BundleArg) -> Result<i32> {
    Err(not_implemented("validate-bundle"))
}

pub fn reindex(_ctx: &Ctx, _io: &mut Io<'_>, _a: &ReindexArgs) -> Result<i32> {
    Err(not_implemented("reindex-bundle"))
}
