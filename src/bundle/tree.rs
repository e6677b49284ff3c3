//! What is on disk under a bundle directory, read without following symlinks, and the rule
//! for what a bundle-relative path may look like.

use std::path::Path;

use crate::{Error, Result};

/// What a directory entry is (from `lstat`: symlinks are never followed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NodeKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link (never followed).
    Symlink,
    /// A FIFO, socket or device.
    Other,
}

/// One entry under the bundle directory.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    /// `/`-separated path relative to the bundle (lossy if the name is not UTF-8).
    pub rel: String,
    /// What it is.
    pub kind: NodeKind,
    /// The name was valid UTF-8.
    pub utf8: bool,
}

/// Every entry under `base`, sorted bytewise by path. Symlinked directories are listed as
/// symlinks and not entered. Types come from the directory entries (`d_type`), so listing
/// costs no `stat` per file (sizes are read from the open file when it is hashed).
pub(crate) fn walk(base: &Path) -> Result<Vec<Node>> {
    let mut out = Vec::new();
    walk_into(base, "", true, &mut out)?;
    out.sort_by(|a, b| a.rel.as_bytes().cmp(b.rel.as_bytes()));
    Ok(out)
}

fn walk_into(base: &Path, rel: &str, utf8: bool, out: &mut Vec<Node>) -> Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let dir = if rel.is_empty() {
        base.to_path_buf()
    } else {
        base.join(rel)
    };
    let rd = std::fs::read_dir(&dir).map_err(|e| Error::io("list directory", &dir, e))?;
    for entry in rd {
        let entry = entry.map_err(|e| Error::io("list directory", &dir, e))?;
        let os_name = entry.file_name();
        let name_utf8 = os_name.to_str().is_some();
        let name = os_name.to_string_lossy();
        let child = if rel.is_empty() {
            name.into_owned()
        } else {
            format!("{rel}/{name}")
        };
        // DirEntry::file_type does not follow symlinks (d_type, else fstatat NOFOLLOW).
        let ft = entry
            .file_type()
            .map_err(|e| Error::io("stat", entry.path(), e))?;
        let kind = if ft.is_symlink() {
            NodeKind::Symlink
        } else if ft.is_dir() {
            NodeKind::Dir
        } else if ft.is_file() {
            NodeKind::File
        } else {
            debug_assert!(
                ft.is_fifo() || ft.is_socket() || ft.is_block_device() || ft.is_char_device()
            );
            NodeKind::Other
        };
        out.push(Node {
            rel: child.clone(),
            kind,
            utf8: utf8 && name_utf8,
        });
        if kind == NodeKind::Dir {
            walk_into(base, &child, utf8 && name_utf8, out)?;
        }
    }
    Ok(())
}

/// Why `rel` is not a safe bundle path, or `None` if it is: relative, `/`-separated,
/// no empty, `.` or `..` component, no backslash, no control character, at most 4096 bytes.
/// (`BLAKE3SUMS` lines and JSON stay unambiguous, and no path can leave the bundle.)
pub fn unsafe_reason(rel: &str) -> Option<&'static str> {
    if rel.is_empty() {
        return Some("the path is empty");
    }
    if rel.len() > 4096 {
        return Some("the path is longer than 4096 bytes");
    }
    if rel.starts_with('/') {
        return Some("the path is absolute");
    }
    if rel.contains('\\') {
        return Some("the path contains a backslash");
    }
    if rel.chars().any(char::is_control) {
        return Some("the path contains a control character");
    }
    for c in rel.split('/') {
        match c {
            "" => return Some("the path has an empty component"),
            "." | ".." => return Some("the path has a `.` or `..` component"),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_paths() {
        for ok in ["a", "logs/scenario/p:q.stdout", "a b/c", "ünï/x"] {
            assert_eq!(unsafe_reason(ok), None, "{ok}");
        }
        for bad in [
            "", "/etc/x", "../x", "a/../b", "a//b", "./a", "a/", "a\\b", "a\nb", "a\0b",
        ] {
            assert!(unsafe_reason(bad).is_some(), "{bad:?}");
        }
    }

    #[test]
    fn walk_lists_without_following_symlinks() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("b/c")).unwrap();
        std::fs::write(d.path().join("b/c/f"), b"123").unwrap();
        std::fs::write(d.path().join("a"), b"1").unwrap();
        std::os::unix::fs::symlink("b", d.path().join("l")).unwrap();
        let nodes = walk(d.path()).unwrap();
        let got: Vec<(&str, NodeKind)> = nodes.iter().map(|n| (n.rel.as_str(), n.kind)).collect();
        assert_eq!(
            got,
            vec![
                ("a", NodeKind::File),
                ("b", NodeKind::Dir),
                ("b/c", NodeKind::Dir),
                ("b/c/f", NodeKind::File),
                ("l", NodeKind::Symlink),
            ]
        );
    }
}
