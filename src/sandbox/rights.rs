//! The rights vocabulary shared by the ruleset builder and the oracle: Landlock filesystem,
//! network and scope rights as the kernel's bit values, their names, the ABI that
//! introduced each, and the mapping from the profile's access words to rights under a
//! pinned ABI. Nothing here knows about processes; both lanes and the oracle call it.

use crate::model::registry::{Access, ScopeWord};

/// A set of Landlock filesystem rights (the kernel's `LANDLOCK_ACCESS_FS_*` bits).
pub type FsRights = u64;

/// `LANDLOCK_ACCESS_FS_*` bits, their names and the ABI that introduced them.
pub mod fs {
    /// Execute a file.
    pub const EXECUTE: u64 = 1 << 0;
    /// Open a file with write access.
    pub const WRITE_FILE: u64 = 1 << 1;
    /// Open a file with read access.
    pub const READ_FILE: u64 = 1 << 2;
    /// Open a directory or list its content.
    pub const READ_DIR: u64 = 1 << 3;
    /// Remove an empty directory or rename one.
    pub const REMOVE_DIR: u64 = 1 << 4;
    /// Unlink (or rename) a file.
    pub const REMOVE_FILE: u64 = 1 << 5;
    /// Create a character device.
    pub const MAKE_CHAR: u64 = 1 << 6;
    /// Create (or rename or link) a directory.
    pub const MAKE_DIR: u64 = 1 << 7;
    /// Create (or rename or link) a regular file.
    pub const MAKE_REG: u64 = 1 << 8;
    /// Create a UNIX domain socket.
    pub const MAKE_SOCK: u64 = 1 << 9;
    /// Create a named pipe.
    pub const MAKE_FIFO: u64 = 1 << 10;
    /// Create a block device.
    pub const MAKE_BLOCK: u64 = 1 << 11;
    /// Create a symbolic link.
    pub const MAKE_SYM: u64 = 1 << 12;
    /// Link or rename a file from or to a different directory (ABI 2).
    pub const REFER: u64 = 1 << 13;
    /// Truncate a file (ABI 3).
    pub const TRUNCATE: u64 = 1 << 14;
    /// ioctl on a device (ABI 5).
    pub const IOCTL_DEV: u64 = 1 << 15;
    /// Connect to a pathname UNIX socket (ABI 9).
    pub const RESOLVE_UNIX: u64 = 1 << 16;

    /// Every right with its name and the ABI that introduced it, in bit order.
    pub const TABLE: [(u64, &str, u8); 17] = [
        (EXECUTE, "execute", 1),
        (WRITE_FILE, "write-file", 1),
        (READ_FILE, "read-file", 1),
        (READ_DIR, "read-dir", 1),
        (REMOVE_DIR, "remove-dir", 1),
        (REMOVE_FILE, "remove-file", 1),
        (MAKE_CHAR, "make-char", 1),
        (MAKE_DIR, "make-dir", 1),
        (MAKE_REG, "make-reg", 1),
        (MAKE_SOCK, "make-sock", 1),
        (MAKE_FIFO, "make-fifo", 1),
        (MAKE_BLOCK, "make-block", 1),
        (MAKE_SYM, "make-sym", 1),
        (REFER, "refer", 2),
        (TRUNCATE, "truncate", 3),
        (IOCTL_DEV, "ioctl-dev", 5),
        (RESOLVE_UNIX, "resolve-unix", 9),
    ];

    /// Rights that are meaningful on a non-directory (the rest only apply beneath a
    /// directory); the kernel refuses a file rule with any other right.
    pub const FILE_RIGHTS: u64 =
        EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV | RESOLVE_UNIX;
}

/// `LANDLOCK_ACCESS_NET_*` bits.
pub mod net {
    /// Bind a TCP socket to a port (ABI 4).
    pub const BIND_TCP: u64 = 1 << 0;
    /// Connect a TCP socket to a port (ABI 4).
    pub const CONNECT_TCP: u64 = 1 << 1;
    /// Bind a UDP socket to a port (ABI 10).
    pub const BIND_UDP: u64 = 1 << 2;
    /// Connect or send a UDP datagram to a port (ABI 10).
    pub const CONNECT_SEND_UDP: u64 = 1 << 3;

    /// Every right with its name and ABI.
    pub const TABLE: [(u64, &str, u8); 4] = [
        (BIND_TCP, "bind-tcp", 4),
        (CONNECT_TCP, "connect-tcp", 4),
        (BIND_UDP, "bind-udp", 10),
        (CONNECT_SEND_UDP, "connect-send-udp", 10),
    ];
}

/// `LANDLOCK_SCOPE_*` bits.
pub mod scope {
    /// Abstract UNIX sockets created outside the domain (ABI 6).
    pub const ABSTRACT_UNIX_SOCKET: u64 = 1 << 0;
    /// Signals to processes outside the domain (ABI 6).
    pub const SIGNAL: u64 = 1 << 1;
}

/// Every filesystem right of `abi` (what `handle: all` means under a pinned ABI).
pub fn fs_all(abi: u8) -> FsRights {
    fs::TABLE
        .iter()
        .filter(|(_, _, min)| *min <= abi)
        .fold(0, |acc, (bit, _, _)| acc | bit)
}

/// Every filesystem right any ABI knows.
pub fn fs_all_known() -> FsRights {
    fs_all(u8::MAX)
}

/// The rights an access word stands for, under a pinned ABI: rights above the pin are left
/// out (`write` at ABI 2 is write-file only). Returns `(rights, rights the word names that
/// the pin excludes)`.
pub fn access_rights(word: Access, abi: u8) -> (FsRights, FsRights) {
    let all = match word {
        Access::Read => fs::READ_FILE | fs::READ_DIR,
        Access::Exec => fs::EXECUTE,
        Access::Write => fs::WRITE_FILE | fs::TRUNCATE,
        Access::Create => {
            fs::MAKE_REG | fs::MAKE_DIR | fs::MAKE_SYM | fs::MAKE_SOCK | fs::MAKE_FIFO
        }
        Access::CreateDev => fs::MAKE_CHAR | fs::MAKE_BLOCK,
        Access::Remove => fs::REMOVE_FILE | fs::REMOVE_DIR,
        Access::Rename => fs::REFER,
        Access::IoctlDev => fs::IOCTL_DEV,
        Access::UnixConnect => fs::RESOLVE_UNIX,
    };
    let within = all & fs_all(abi);
    (within, all & !within)
}

/// The union of the rights of several access words under `abi`.
pub fn words_rights(words: &[Access], abi: u8) -> FsRights {
    words
        .iter()
        .fold(0, |acc, w| acc | access_rights(*w, abi).0)
}

/// The names of the filesystem rights in `bits`, in bit order.
pub fn fs_names(bits: FsRights) -> Vec<String> {
    fs::TABLE
        .iter()
        .filter(|(b, _, _)| bits & b != 0)
        .map(|(_, n, _)| (*n).to_string())
        .collect()
}

/// The name of one filesystem right.
pub fn fs_name(bit: FsRights) -> &'static str {
    fs::TABLE
        .iter()
        .find(|(b, _, _)| *b == bit)
        .map_or("unknown", |(_, n, _)| n)
}

/// The lowest ABI that has every right in `bits` (1 for none).
pub fn fs_min_abi(bits: FsRights) -> u8 {
    fs::TABLE
        .iter()
        .filter(|(b, _, _)| bits & b != 0)
        .map(|(_, _, a)| *a)
        .max()
        .unwrap_or(1)
}

/// The names of the network rights in `bits`.
pub fn net_names(bits: u64) -> Vec<String> {
    net::TABLE
        .iter()
        .filter(|(b, _, _)| bits & b != 0)
        .map(|(_, n, _)| (*n).to_string())
        .collect()
}

/// The scope bit and its kebab name for a scope word.
pub fn scope_bit(word: ScopeWord) -> (u64, &'static str) {
    match word {
        ScopeWord::Signal => (scope::SIGNAL, "signal"),
        ScopeWord::AbstractUnixSocket => (scope::ABSTRACT_UNIX_SOCKET, "abstract-unix-socket"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_rights_follow_the_abi_table() {
        assert_eq!(fs_all(1), (1 << 13) - 1);
        assert_eq!(fs_all(2), (1 << 14) - 1);
        assert_eq!(fs_all(7), (1 << 16) - 1);
        assert_eq!(fs_all(9), (1 << 17) - 1);
        assert_eq!(fs_min_abi(fs::TRUNCATE | fs::READ_FILE), 3);
    }

    #[test]
    fn access_words_respect_the_pin() {
        assert_eq!(
            access_rights(Access::Write, 2),
            (fs::WRITE_FILE, fs::TRUNCATE)
        );
        assert_eq!(
            access_rights(Access::Write, 7),
            (fs::WRITE_FILE | fs::TRUNCATE, 0)
        );
        assert_eq!(access_rights(Access::UnixConnect, 7), (0, fs::RESOLVE_UNIX));
        assert_eq!(
            fs_names(fs::READ_FILE | fs::READ_DIR),
            ["read-file", "read-dir"]
        );
    }

    #[test]
    fn bits_match_the_landlock_crate() {
        use landlock::{Access as _, AccessFs, BitFlags};
        let all: BitFlags<AccessFs> = AccessFs::from_all(landlock::ABI::V7);
        assert_eq!(all.bits(), fs_all(7));
        assert_eq!(AccessFs::ReadFile as u64, fs::READ_FILE);
        assert_eq!(AccessFs::Refer as u64, fs::REFER);
    }
}
