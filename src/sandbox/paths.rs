//! Path normalization the way the kernel walks a path: `.` and `..` per component, every
//! symbolic link followed (the final one only for operations that follow it), components
//! that do not exist appended as written. The oracle judges the canonical path; the
//! compiler resolves rule paths the same way (Landlock rules attach to the inode the path
//! reaches).

use std::path::{Component, Path, PathBuf};

/// Maximum symlinks followed in one resolution (the kernel's limit is 40).
const MAX_LINKS: u32 = 40;

/// A path and what it resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    /// The path as requested (absolute).
    pub requested: PathBuf,
    /// The canonical path.
    pub canonical: PathBuf,
    /// The requested path itself is a symbolic link.
    pub is_symlink: bool,
    /// The canonical path exists.
    pub exists: bool,
}

/// Resolve `path` (made absolute against `base` if relative). With `follow_final`, a final
/// symbolic link is followed (open, exec, truncate); without, only the parent is resolved
/// (unlink, rename, readlink, mkdir of the final name).
pub fn resolve(path: &Path, base: &Path, follow_final: bool) -> Resolution {
    let requested = if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    };
    let is_symlink =
        std::fs::symlink_metadata(&requested).is_ok_and(|m| m.file_type().is_symlink());
    let mut links = 0;
    let canonical = walk(&requested, follow_final, &mut links);
    let exists = std::fs::symlink_metadata(&canonical).is_ok();
    Resolution {
        requested,
        canonical,
        is_symlink,
        exists,
    }
}

fn walk(path: &Path, follow_final: bool, links: &mut u32) -> PathBuf {
    let comps: Vec<Component<'_>> = path.components().collect();
    let mut cur = PathBuf::from("/");
    let mut missing = false;
    for (i, c) in comps.iter().enumerate() {
        let last = i + 1 == comps.len();
        match c {
            Component::RootDir | Component::Prefix(_) | Component::CurDir => {}
            Component::ParentDir => {
                cur.pop();
            }
            Component::Normal(name) => {
                let next = cur.join(name);
                if missing {
                    cur = next;
                    continue;
                }
                match std::fs::symlink_metadata(&next) {
                    Ok(m) if m.file_type().is_symlink() && (!last || follow_final) => {
                        *links += 1;
                        let Ok(target) = std::fs::read_link(&next) else {
                            cur = next;
                            continue;
                        };
                        if *links > MAX_LINKS {
                            cur = next;
                            continue;
                        }
                        let joined = if target.is_absolute() {
                            target
                        } else {
                            cur.join(target)
                        };
                        cur = walk(&joined, true, links);
                        if std::fs::symlink_metadata(&cur).is_err() {
                            missing = true;
                        }
                    }
                    Ok(_) => cur = next,
                    Err(_) => {
                        missing = true;
                        cur = next;
                    }
                }
            }
        }
    }
    cur
}

/// True if `path` is `ancestor` or lies beneath it (component-wise).
pub fn is_beneath(path: &Path, ancestor: &Path) -> bool {
    path.starts_with(ancestor)
}

/// The canonical parent directory of an operation that acts on the final name (create,
/// remove, rename): the parent resolved with every link followed.
pub fn parent_of(canonical: &Path) -> PathBuf {
    canonical
        .parent()
        .map_or_else(|| PathBuf::from("/"), Path::to_path_buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_links_and_dotdot_like_the_kernel() {
        let d = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(d.path()).unwrap();
        std::fs::create_dir(root.join("real")).unwrap();
        std::fs::write(root.join("real/f"), "x").unwrap();
        std::os::unix::fs::symlink(root.join("real"), root.join("link")).unwrap();
        std::os::unix::fs::symlink("real/f", root.join("flink")).unwrap();

        let r = resolve(&root.join("link/f"), &root, true);
        assert_eq!(r.canonical, root.join("real/f"));
        assert!(r.exists);
        assert!(!r.is_symlink);

        let r = resolve(&root.join("flink"), &root, true);
        assert_eq!(r.canonical, root.join("real/f"));
        assert!(r.is_symlink);

        let r = resolve(&root.join("flink"), &root, false);
        assert_eq!(r.canonical, root.join("flink"));

        let r = resolve(&root.join("link/../real/./new/child"), &root, true);
        assert_eq!(r.canonical, root.join("real/new/child"));
        assert!(!r.exists);

        assert!(is_beneath(&root.join("real/f"), &root.join("real")));
        assert!(!is_beneath(&root.join("realx"), &root.join("real")));
    }
}
