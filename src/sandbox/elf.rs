//! What the kernel and the dynamic loader open to run a program, for the oracle's `exec`
//! predictions: the ELF interpreter (`PT_INTERP`, opened by `execve` and so needing
//! Landlock `execute`), the shared libraries (`DT_NEEDED`, opened by the loader with
//! `open(O_RDONLY)` and so needing `read-file`), and `#!` interpreters of scripts (which
//! need `execute` too). A small reader of 64-bit little-endian ELF files; anything else is
//! reported as not modelled.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::util::paths;

/// What running a program needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProgramNeeds {
    /// Files `execve` opens for execution: `#!` interpreters and the ELF interpreter.
    pub execute: Vec<PathBuf>,
    /// Libraries the loader opens for reading.
    pub read: Vec<PathBuf>,
    /// What could not be modelled (a library not found in the standard directories, a
    /// 32-bit binary, …).
    pub notes: Vec<String>,
}

/// The ELF facts the oracle uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ElfInfo {
    /// `PT_INTERP`.
    pub interpreter: Option<String>,
    /// `DT_NEEDED` names.
    pub needed: Vec<String>,
    /// `DT_RUNPATH` / `DT_RPATH` directories.
    pub runpath: Vec<String>,
}

const PT_INTERP: u32 = 3;
const PT_DYNAMIC: u32 = 2;
const PT_LOAD: u32 = 1;
const DT_NULL: i64 = 0;
const DT_NEEDED: i64 = 1;
const DT_STRTAB: i64 = 5;
const DT_RPATH: i64 = 15;
const DT_RUNPATH: i64 = 29;

/// Parse the ELF header of `path`. `Ok(None)` if it is not a 64-bit little-endian ELF file.
pub fn read_elf(path: &Path) -> std::io::Result<Option<ElfInfo>> {
    let f = File::open(path)?;
    paths::note_open(path, &f);
    let mut hdr = [0u8; 64];
    if f.read_at(&mut hdr, 0)? < 64 || &hdr[..4] != b"\x7fELF" || hdr[4] != 2 || hdr[5] != 1 {
        return Ok(None);
    }
    let phoff = u64_at(&hdr, 32);
    let phentsize = u64::from(u16_at(&hdr, 54));
    let phnum = u64::from(u16_at(&hdr, 56));
    if phentsize < 56 || phnum > 4096 {
        return Ok(None);
    }
    let mut phdrs = vec![0u8; usize::try_from(phentsize * phnum).unwrap_or(0)];
    f.read_exact_at(&mut phdrs, phoff)?;
    let mut info = ElfInfo::default();
    let mut loads = Vec::new();
    let mut dynamic = None;
    for i in 0..phnum {
        let p = &phdrs[usize::try_from(i * phentsize).unwrap_or(0)..];
        let p_type = u32_at(p, 0);
        let offset = u64_at(p, 8);
        let vaddr = u64_at(p, 16);
        let filesz = u64_at(p, 32);
        match p_type {
            PT_INTERP if filesz > 0 && filesz < 4096 => {
                let mut buf = vec![0u8; usize::try_from(filesz).unwrap_or(0)];
                f.read_exact_at(&mut buf, offset)?;
                let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
                info.interpreter = Some(String::from_utf8_lossy(&buf[..end]).into_owned());
            }
            PT_LOAD => loads.push((vaddr, offset, filesz)),
            PT_DYNAMIC if filesz < (1 << 20) => dynamic = Some((offset, filesz)),
            _ => {}
        }
    }
    let Some((dyn_off, dyn_size)) = dynamic else {
        return Ok(Some(info));
    };
    let mut dynbuf = vec![0u8; usize::try_from(dyn_size).unwrap_or(0)];
    f.read_exact_at(&mut dynbuf, dyn_off)?;
    let mut strtab_vaddr = None;
    let mut needed_offs = Vec::new();
    let mut path_offs = Vec::new();
    for entry in dynbuf.chunks_exact(16) {
        let tag = i64::from_le_bytes(entry[..8].try_into().unwrap_or_default());
        let val = u64_at(entry, 8);
        match tag {
            DT_NULL => break,
            DT_NEEDED => needed_offs.push(val),
            DT_STRTAB => strtab_vaddr = Some(val),
            DT_RPATH | DT_RUNPATH => path_offs.push(val),
            _ => {}
        }
    }
    let Some(strtab) = strtab_vaddr else {
        return Ok(Some(info));
    };
    let Some(strtab_off) = loads
        .iter()
        .find(|(va, _, sz)| strtab >= *va && strtab < va + sz)
        .map(|(va, off, _)| strtab - va + off)
    else {
        return Ok(Some(info));
    };
    let read_str = |off: u64| -> std::io::Result<String> {
        let mut buf = [0u8; 256];
        let n = f.read_at(&mut buf, strtab_off + off)?;
        let end = buf[..n].iter().position(|&b| b == 0).unwrap_or(n);
        Ok(String::from_utf8_lossy(&buf[..end]).into_owned())
    };
    for off in needed_offs {
        info.needed.push(read_str(off)?);
    }
    for off in path_offs {
        for dir in read_str(off)?.split(':').filter(|d| !d.is_empty()) {
            info.runpath.push(dir.to_string());
        }
    }
    Ok(Some(info))
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap_or_default())
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap_or_default())
}

/// The standard library directories searched for `DT_NEEDED` names (Debian multiarch
/// first, then the classic ones), as the loader does when `ld.so.cache` has no entry.
pub fn library_dirs() -> Vec<PathBuf> {
    let triple = match std::env::consts::ARCH {
        "x86_64" => "x86_64-linux-gnu",
        "aarch64" => "aarch64-linux-gnu",
        "riscv64" => "riscv64-linux-gnu",
        other => other,
    };
    [
        format!("/lib/{triple}"),
        format!("/usr/lib/{triple}"),
        "/lib64".into(),
        "/usr/lib64".into(),
        "/lib".into(),
        "/usr/lib".into(),
    ]
    .into_iter()
    .map(PathBuf::from)
    .collect()
}

/// What running `program` needs: `#!` interpreters (recursively), the ELF interpreter, and
/// the transitive `DT_NEEDED` libraries found in the runpath or the standard directories.
/// Paths are as found (not canonicalized: the oracle canonicalizes them). Every lookup
/// goes through [`paths`] and every file read is noted ([`paths::note_open`]), so a
/// [`paths::recording`] holds everything the answer depends on (the oracle's memo of
/// program facts reuses it only while all of that is unchanged).
pub fn program_needs(program: &Path) -> ProgramNeeds {
    compute_needs(program)
}

fn compute_needs(program: &Path) -> ProgramNeeds {
    let mut needs = ProgramNeeds::default();
    let mut prog = program.to_path_buf();
    // `#!` chains: each interpreter is opened by execve for execution.
    for _ in 0..4 {
        match shebang(&prog) {
            Some(interp) => {
                needs.execute.push(interp.clone());
                prog = interp;
            }
            None => break,
        }
    }
    let elf = match read_elf(&prog) {
        Ok(Some(e)) => e,
        Ok(None) => {
            if paths::stat(&prog).is_some() {
                needs.notes.push(format!(
                    "`{}` is not a 64-bit little-endian ELF file; its loader and libraries are not modelled",
                    prog.display()
                ));
            }
            return needs;
        }
        Err(e) => {
            needs
                .notes
                .push(format!("cannot read `{}`: {e}", prog.display()));
            return needs;
        }
    };
    if let Some(interp) = &elf.interpreter {
        needs.execute.push(PathBuf::from(interp));
    }
    let dirs = library_dirs();
    let mut queue: Vec<(String, Vec<String>)> = elf
        .needed
        .iter()
        .map(|n| (n.clone(), elf.runpath.clone()))
        .collect();
    let mut seen = std::collections::BTreeSet::new();
    while let Some((name, runpath)) = queue.pop() {
        if !seen.insert(name.clone()) || seen.len() > 256 {
            continue;
        }
        let candidates = runpath
            .iter()
            .filter(|d| !d.contains('$'))
            .map(PathBuf::from)
            .chain(dirs.iter().cloned());
        let found = if name.contains('/') {
            Some(PathBuf::from(&name))
        } else {
            candidates
                .map(|d| d.join(&name))
                .find(|p| paths::stat(p).is_some())
        };
        match found {
            Some(lib) => {
                if let Ok(Some(info)) = read_elf(&lib) {
                    for n in info.needed {
                        queue.push((n, info.runpath.clone()));
                    }
                }
                // The interpreter is loaded by the kernel, not opened again by the loader.
                let same_as_interp = elf
                    .interpreter
                    .as_ref()
                    .is_some_and(|i| real_path(Path::new(i)) == real_path(&lib));
                if !same_as_interp {
                    needs.read.push(lib);
                }
            }
            None => needs.notes.push(format!(
                "library `{name}` was not found in the standard directories; not modelled"
            )),
        }
    }
    needs.read.sort();
    needs.read.dedup();
    needs
}

/// `realpath(path)`: the canonical path with every link followed, `None` if it does not
/// exist (looked up through [`paths`]).
fn real_path(path: &Path) -> Option<PathBuf> {
    let r = paths::resolve(path, Path::new("/"), true);
    r.exists.then_some(r.canonical)
}

/// The interpreter of a `#!` script.
fn shebang(path: &Path) -> Option<PathBuf> {
    let f = File::open(path).ok()?;
    paths::note_open(path, &f);
    let mut buf = [0u8; 256];
    let n = f.read_at(&mut buf, 0).ok()?;
    let line = buf[..n].strip_prefix(b"#!")?;
    let end = line.iter().position(|&b| b == b'\n').unwrap_or(line.len());
    let text = String::from_utf8_lossy(&line[..end]);
    let interp = text.split_whitespace().next()?;
    Some(PathBuf::from(interp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bin_true_has_an_interpreter_and_libc() {
        let info = read_elf(Path::new("/bin/true")).unwrap().unwrap();
        let interp = info.interpreter.unwrap();
        assert!(interp.contains("ld-linux"), "{interp}");
        assert!(
            info.needed.iter().any(|n| n.starts_with("libc.so")),
            "{:?}",
            info.needed
        );
        let needs = program_needs(Path::new("/bin/true"));
        assert!(
            needs
                .execute
                .iter()
                .any(|p| p.to_string_lossy().contains("ld-linux"))
        );
        assert!(
            needs
                .read
                .iter()
                .any(|p| p.to_string_lossy().contains("libc.so"))
        );
    }

    #[test]
    fn scripts_need_their_interpreter() {
        let d = tempfile::tempdir().unwrap();
        let s = d.path().join("s.sh");
        std::fs::write(&s, "#!/bin/sh -e\necho hi\n").unwrap();
        let needs = program_needs(&s);
        assert_eq!(needs.execute[0], PathBuf::from("/bin/sh"));
        assert!(needs.execute.len() >= 2, "{needs:?}");
    }

    #[test]
    fn non_elf_files_are_not_modelled() {
        let d = tempfile::tempdir().unwrap();
        let s = d.path().join("data");
        std::fs::write(&s, "hello").unwrap();
        assert_eq!(read_elf(&s).unwrap(), None);
        assert!(!program_needs(&s).notes.is_empty());
    }
}
