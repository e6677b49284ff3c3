//! `emit-promotion`, `summarize-ops`, `promote`.

use super::args::{EmitPromotionArgs, PromoteArgs, SummarizeOpsArgs};
use super::{Ctx, Io, not_implemented};
use crate::Result;

pub fn emit(_ctx: &Ctx, _io: &mut Io<'_>, _a: &EmitPromotionArgs) -> Result<i32> {
    Err(not_implemented("emit-promotion"))
}

pub fn summarize_ops(_ctx: &Ctx, _io: &mut Io<'_>, _a: &SummarizeOpsArgs) -> Result<i32> {
    Err(not_implemented("summarize-ops"))
}

pub fn promote(_ctx: &Ctx, _io: &mut Io<'_>, _a: &PromoteArgs) -> Result<i32> {
    Err(not_implemented("promote"))
}
