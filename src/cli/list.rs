//! `list-plans`, `list-registries`, `list-probes`, `list-profiles`, `describe-probe`,
//! `describe-profile`.

use super::args::{DescribeArgs, ListPlansArgs, RegistrySelect};
use super::{Ctx, Io, not_implemented};
use crate::Result;

pub fn list_plans(_ctx: &Ctx, _io: &mut Io<'_>, _a: &ListPlansArgs) -> Result<i32> {
    Err(not_implemented("list-plans"))
}

pub fn list_registries(_ctx: &Ctx, _io: &mut Io<'_>) -> Result<i32> {
    Err(not_implemented("list-registries"))
}

pub fn list_probes(_ctx: &Ctx, _io: &mut Io<'_>, _a: &RegistrySelect) -> Result<i32> {
    Err(not_implemented("list-probes"))
}

pub fn list_profiles(_ctx: &Ctx, _io: &mut Io<'_>, _a: &RegistrySelect) -> Result<i32> {
    Err(not_implemented("list-profiles"))
}

pub fn describe_probe(_ctx: &Ctx, _io: &mut Io<'_>, _a: &DescribeArgs) -> Result<i32> {
    Err(not_implemented("describe-probe"))
}

pub fn describe_profile(_ctx: &Ctx, _io: &mut Io<'_>, _a: &DescribeArgs) -> Result<i32> {
    Err(not_implemented("describe-profile"))
}
