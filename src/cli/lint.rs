//! `plan-lint`, `registry-lint`.

use super::args::{LintArgs, RegistryLintArgs};
use super::{Ctx, Io, not_implemented};
use crate::Result;

pub fn plan_lint(_ctx: &Ctx, _io: &mut Io<'_>, _a: &LintArgs) -> Result<i32> {
    Err(not_implemented("plan-lint"))
}

pub fn registry_lint(_ctx: &Ctx, _io: &mut Io<'_>, _a: &RegistryLintArgs) -> Result<i32> {
    Err(not_implemented("registry-lint"))
}
