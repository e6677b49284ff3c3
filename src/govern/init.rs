//! `nexusmon init`: create the state directory `.nexusmon/` ([`super::state`] describes
//! its layout) with every missing file. Here rather than in `state` because it writes the
//! audit log's genesis line, and the audit log sits above the state directory.

use std::path::{Path, PathBuf};

use super::audit::AuditLog;
use super::evolution;
use super::state::{
    AUDIT_FILE, AUDIT_HEAD_FILE, EVOLUTION_FILE, OMENS_FILE, StateDir, TRUST_FILE, TRUST_TEMPLATE,
    write_new,
};
use crate::Result;
use crate::model::omens::OmensFile;
use crate::util::fsx;

/// What [`init`] did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct InitReport {
    /// The state directory.
    pub dir: PathBuf,
    /// Files created, by name.
    pub created: Vec<String>,
    /// Files that already existed and were left alone.
    pub existing: Vec<String>,
}

/// Create the state directory `dir` (the `.nexusmon/` itself) and every missing file: the
/// audit log with its genesis line, the trust file template, empty omens and evolution
/// state. Existing files are never touched.
pub fn init(dir: &Path) -> Result<InitReport> {
    fsx::create_dir_all(dir)?;
    let state = StateDir::open(dir)?;
    let _lock = state.lock()?;
    let mut created = Vec::new();
    let mut existing = Vec::new();

    let audit = state.file(AUDIT_FILE);
    if audit.exists() {
        existing.push(AUDIT_FILE.to_string());
    } else {
        AuditLog::create(&state)?;
        created.push(AUDIT_FILE.to_string());
        created.push(AUDIT_HEAD_FILE.to_string());
    }
    let trust = state.file(TRUST_FILE);
    if trust.exists() {
        existing.push(TRUST_FILE.to_string());
    } else {
        write_new(&trust, TRUST_TEMPLATE.as_bytes())?;
        created.push(TRUST_FILE.to_string());
    }
    let omens = state.file(OMENS_FILE);
    if omens.exists() {
        existing.push(OMENS_FILE.to_string());
    } else {
        state.write_omens(&OmensFile::default())?;
        created.push(OMENS_FILE.to_string());
    }
    let evo = state.file(EVOLUTION_FILE);
    if evo.exists() {
        existing.push(EVOLUTION_FILE.to_string());
    } else {
        state.write_evolution(&evolution::fold(&[]))?;
        created.push(EVOLUTION_FILE.to_string());
    }
    created.sort();
    existing.sort();
    Ok(InitReport {
        dir: state.dir().to_path_buf(),
        created,
        existing,
    })
}
