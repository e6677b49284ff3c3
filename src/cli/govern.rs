//! `approve`, `audit`, `omens`, `evolve`, `evolution`, `missions`, `init`.

use super::args::{
    ApproveArgs, AuditArgs, EvolutionArgs, EvolveArgs, InitArgs, MissionsArgs, OmensArgs,
};
use super::{Ctx, Io, not_implemented};
use crate::Result;

pub fn approve(_ctx: &Ctx, _io: &mut Io<'_>, _a: &ApproveArgs) -> Result<i32> {
    Err(not_implemented("approve"))
}

pub fn audit(_ctx: &Ctx, _io: &mut Io<'_>, _a: &AuditArgs) -> Result<i32> {
    Err(not_implemented("audit"))
}

pub fn omens(_ctx: &Ctx, _io: &mut Io<'_>, _a: &OmensArgs) -> Result<i32> {
    Err(not_implemented("omens"))
}

pub fn evolve(_ctx: &Ctx, _io: &mut Io<'_>, _a: &EvolveArgs) -> Result<i32> {
    Err(not_implemented("evolve"))
}

pub fn evolution(_ctx: &Ctx, _io: &mut Io<'_>, _a: &EvolutionArgs) -> Result<i32> {
    Err(not_implemented("evolution"))
}

pub fn missions(_ctx: &Ctx, _io: &mut Io<'_>, _a: &MissionsArgs) -> Result<i32> {
    Err(not_implemented("missions"))
}

pub fn init(_ctx: &Ctx, _io: &mut Io<'_>, _a: &InitArgs) -> Result<i32> {
    Err(not_implemented("init"))
}
