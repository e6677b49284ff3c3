//! `list-templates`, `plan-build`.

use super::args::PlanBuildArgs;
use super::{Ctx, Io, not_implemented};
use crate::Result;

pub fn list_templates(_ctx: &Ctx, _io: &mut Io<'_>) -> Result<i32> {
    Err(not_implemented("list-templates"))
}

pub fn plan_build(_ctx: &Ctx, _io: &mut Io<'_>, _a: &PlanBuildArgs) -> Result<i32> {
    Err(not_implemented("plan-build"))
}
