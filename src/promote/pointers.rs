//! Packet pointers: `/`-separated paths relative to the project root when the bundle lies
//! beneath it (`out/<run_id>/summary.json`), otherwise relative to the packet's directory
//! (which may climb with `..`). The base used is recorded in the packet
//! (`bundle.pointer_base`), so a reader resolves every pointer the same way.

use std::path::{Component, Path, PathBuf};

use crate::model::packet::PointerBase;
use crate::{Error, Result};

/// How a packet's pointers are formed and resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PointerContext {
    /// What pointers are relative to.
    pub base: PointerBase,
    /// That directory (absolute, symlinks resolved).
    pub base_dir: PathBuf,
    /// The bundle directory, relative to `base_dir` (`.` when it is the base itself).
    pub bundle_pointer: String,
}

impl PointerContext {
    /// The context for a packet written in `packet_dir` about the bundle at `bundle_dir`,
    /// in the project at `root`. Every directory must exist.
    pub fn for_emit(bundle_dir: &Path, root: &Path, packet_dir: &Path) -> Result<Self> {
        let bundle = canonical(bundle_dir)?;
        let root = canonical(root)?;
        if let Ok(rel) = bundle.strip_prefix(&root) {
            return Ok(Self {
                base: PointerBase::ProjectRoot,
                base_dir: root,
                bundle_pointer: to_pointer(rel),
            });
        }
        let packet_dir = canonical(packet_dir)?;
        Ok(Self {
            base: PointerBase::PacketDir,
            bundle_pointer: relative(&packet_dir, &bundle),
            base_dir: packet_dir,
        })
    }

    /// The context a packet recorded, resolved for reading: `root` is the project root of
    /// the reader, `packet_path` where the packet is now.
    pub fn for_read(
        base: PointerBase,
        bundle_pointer: &str,
        root: &Path,
        packet_path: &Path,
    ) -> Result<Self> {
        let base_dir = match base {
            PointerBase::ProjectRoot => root.to_path_buf(),
            PointerBase::PacketDir => packet_path
                .parent()
                .map_or_else(|| PathBuf::from("."), Path::to_path_buf),
        };
        check_pointer(base, bundle_pointer, packet_path)?;
        Ok(Self {
            base,
            base_dir,
            bundle_pointer: bundle_pointer.to_string(),
        })
    }

    /// The pointer of bundle member `member`.
    pub fn member(&self, member: &str) -> String {
        if self.bundle_pointer == "." {
            member.to_string()
        } else {
            format!("{}/{member}", self.bundle_pointer)
        }
    }

    /// The on-disk path of `pointer`.
    pub fn resolve(&self, pointer: &str) -> PathBuf {
        let mut p = self.base_dir.clone();
        for c in pointer.split('/') {
            match c {
                "" | "." => {}
                other => p.push(other),
            }
        }
        p
    }

    /// The bundle directory.
    pub fn bundle_dir(&self) -> PathBuf {
        self.resolve(&self.bundle_pointer)
    }
}

/// A pointer recorded in a packet must be relative, `/`-separated, without control
/// characters; only packet-relative pointers may climb with `..` (a project-relative
/// pointer that leaves the project is refused).
pub fn check_pointer(base: PointerBase, pointer: &str, packet: &Path) -> Result<()> {
    let bad = |why: &str| {
        Err(
            Error::input(packet, format!("pointer `{pointer}` is not usable: {why}"))
                .with_hint("pass a packet written by `nexusmon emit-promotion`"),
        )
    };
    if pointer.is_empty() {
        return bad("it is empty");
    }
    if pointer.starts_with('/') || pointer.contains('\\') {
        return bad("it is not a relative `/`-separated path");
    }
    if pointer.chars().any(char::is_control) {
        return bad("it contains a control character");
    }
    if base == PointerBase::ProjectRoot && pointer.split('/').any(|c| c == "..") {
        return bad("a project-relative pointer may not climb out of the project with `..`");
    }
    Ok(())
}

fn canonical(p: &Path) -> Result<PathBuf> {
    std::fs::canonicalize(p).map_err(|e| Error::io_input("resolve", p, e))
}

fn to_pointer(rel: &Path) -> String {
    let parts: Vec<String> = rel
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect();
    if parts.is_empty() {
        ".".into()
    } else {
        parts.join("/")
    }
}

/// `to` relative to directory `from` (both absolute and canonical).
pub fn relative(from: &Path, to: &Path) -> String {
    let f: Vec<Component<'_>> = from.components().collect();
    let t: Vec<Component<'_>> = to.components().collect();
    let common = f.iter().zip(&t).take_while(|(a, b)| a == b).count();
    let mut rel = PathBuf::new();
    for _ in common..f.len() {
        rel.push("..");
    }
    for c in &t[common..] {
        rel.push(c.as_os_str());
    }
    to_pointer(&rel)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_climb_and_descend() {
        assert_eq!(relative(Path::new("/a/b"), Path::new("/a/c/d")), "../c/d");
        assert_eq!(relative(Path::new("/a"), Path::new("/a/x")), "x");
        assert_eq!(relative(Path::new("/a/b"), Path::new("/a/b")), ".");
        assert_eq!(relative(Path::new("/x/y/z"), Path::new("/q")), "../../../q");
    }

    #[test]
    fn beneath_the_root_pointers_are_project_relative() {
        let t = tempfile::tempdir().unwrap();
        let b = t.path().join("out/run1");
        std::fs::create_dir_all(&b).unwrap();
        std::fs::create_dir_all(t.path().join("pk")).unwrap();
        let c = PointerContext::for_emit(&b, t.path(), &t.path().join("pk")).unwrap();
        assert_eq!(c.base, PointerBase::ProjectRoot);
        assert_eq!(c.bundle_pointer, "out/run1");
        assert_eq!(c.member("summary.json"), "out/run1/summary.json");
        let elsewhere = tempfile::tempdir().unwrap();
        let c = PointerContext::for_emit(&b, elsewhere.path(), &t.path().join("pk")).unwrap();
        assert_eq!(c.base, PointerBase::PacketDir);
        assert_eq!(c.bundle_pointer, "../out/run1");
        assert_eq!(
            std::fs::canonicalize(c.bundle_dir()).unwrap(),
            std::fs::canonicalize(&b).unwrap()
        );
    }

    #[test]
    fn project_pointers_may_not_leave_the_project() {
        let p = Path::new("p.json");
        assert!(check_pointer(PointerBase::ProjectRoot, "../x", p).is_err());
        assert!(check_pointer(PointerBase::ProjectRoot, "/etc", p).is_err());
        assert!(check_pointer(PointerBase::PacketDir, "../x", p).is_ok());
    }
}
