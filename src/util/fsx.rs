//! Filesystem calls whose errors name their path (every I/O error must), and the atomic
//! write recipe: temp file in the same directory, write, fsync, rename, fsync the directory.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// Read a whole file as bytes (user input: a missing file is exit 2).
pub fn read_input(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(|e| Error::io_input("read", path, e))
}

/// Read a whole file as UTF-8 text (user input).
pub fn read_input_string(path: &Path) -> Result<String> {
    let bytes = read_input(path)?;
    String::from_utf8(bytes).map_err(|e| {
        Error::input(
            path,
            format!("is not valid UTF-8 (byte {})", e.utf8_error().valid_up_to()),
        )
        .with_hint("plans, registries and templates must be UTF-8 JSON or YAML")
    })
}

/// Read a whole file as bytes (tool state: errors are runner failures).
pub fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(|e| Error::io("read", path, e))
}

/// Create a directory and its parents.
pub fn create_dir_all(path: &Path) -> Result<()> {
    fs::create_dir_all(path).map_err(|e| Error::io("create directory", path, e))
}

/// List a directory, sorted by file name (deterministic).
pub fn read_dir_sorted(path: &Path) -> Result<Vec<PathBuf>> {
    let rd = fs::read_dir(path).map_err(|e| Error::io_input("list directory", path, e))?;
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| Error::io_input("list directory", path, e))?;
        out.push(entry.path());
    }
    out.sort();
    Ok(out)
}

/// fsync a directory so renames and new entries in it are durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    let f = File::open(dir).map_err(|e| Error::io("open directory for fsync", dir, e))?;
    f.sync_all()
        .map_err(|e| Error::io("fsync directory", dir, e))
}

/// The temp name used for an atomic write of `path`: same directory, a prefix no real
/// artifact uses, the pid and a counter, so concurrent writers never collide.
pub fn temp_path_for(path: &Path) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = path
        .file_name()
        .map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
    let tmp = format!(".tmp.{}.{}.{}", std::process::id(), n, name);
    path.with_file_name(tmp)
}

/// Write `bytes` to `path` atomically and durably: temp file in the same directory
/// (created exclusively), write, fsync, rename over `path`, fsync the directory.
/// On any error the temp file is removed and `path` is untouched.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, bytes, true)
}

/// As [`write_atomic`], with the directory fsync optional (callers that fsync the
/// directory once after many files pass `false`).
pub fn write_atomic_with(path: &Path, bytes: &[u8], sync_parent: bool) -> Result<()> {
    let tmp = temp_path_for(path);
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| Error::io("create", &tmp, e))?;
        f.write_all(bytes)
            .map_err(|e| Error::io("write", &tmp, e))?;
        f.sync_all().map_err(|e| Error::io("fsync", &tmp, e))?;
        drop(f);
        fs::rename(&tmp, path).map_err(|e| Error::io("rename into place", path, e))?;
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
        return result;
    }
    if sync_parent && let Some(parent) = path.parent() {
        let parent = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        sync_dir(parent)?;
    }
    Ok(())
}

/// The nearest ancestor of `start` (itself included) for which `pred` holds.
pub fn find_upwards(start: &Path, pred: impl Fn(&Path) -> bool) -> Option<PathBuf> {
    let mut cur = Some(start);
    while let Some(dir) = cur {
        if pred(dir) {
            return Some(dir.to_path_buf());
        }
        cur = dir.parent();
    }
    None
}

/// `path` made absolute against the current directory (without resolving symlinks).
pub fn absolute(path: &Path) -> Result<PathBuf> {
    std::path::absolute(path).map_err(|e| Error::io_input("resolve", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn atomic_write_into_missing_dir_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("missing/a.json");
        let e = write_atomic(&p, b"x").unwrap_err();
        assert!(e.to_string().contains("missing"), "{e}");
    }
}
