//! Registry files: `registry/<registry_id>/probes.json` and `profiles.json` (or `.yaml`).

use std::borrow::Cow;
use std::collections::BTreeMap;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::id::Id;

// ---------------------------------------------------------------------------------------
// Probes
// ---------------------------------------------------------------------------------------

/// `probes.json`: reusable probes keyed by id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "nexusmon registry probes")]
pub struct ProbesFile {
    /// The JSON Schema this file follows, for editors.
    #[serde(rename = "$schema", default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// Format version; this build reads `1`.
    pub schema_version: u32,
    /// The registry's id (matches its directory name).
    pub registry_id: Id,
    /// What the registry holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Probes keyed by id.
    pub probes: BTreeMap<Id, Probe>,
}

/// One operation with a target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Probe {
    /// The operation (for `exec` probes: what the program is expected to do, so the oracle
    /// can predict it; `exec` when it only runs).
    pub operation: Operation,
    /// What the operation acts on: a path (variables allowed), `host:port` for network
    /// operations, a pid for `signal-send`, `@name` for `unix-abstract-connect`. For `exec`
    /// probes it defaults to `argv[0]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The second path of `file-rename` (the new name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
    /// `builtin` (the runner's own helper performs exactly one operation) or `exec` (run
    /// `argv`, never through a shell).
    #[serde(default)]
    pub driver: Driver,
    /// The program and its arguments (`exec` probes only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub argv: Option<Vec<String>>,
    /// Exit codes meaning the operation was allowed (`exec`; default `[0]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_exit_codes: Option<Vec<i32>>,
    /// Exit codes meaning the operation was denied (`exec`; default: none, so a non-zero exit
    /// that is not an allow code is an `error`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deny_exit_codes: Option<Vec<i32>>,
    /// Wall timeout for this probe in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub timeout_ms: Option<u64>,
    /// Files, directories, symlinks and listeners the probe needs, created in the run's
    /// scratch directory before it runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fixtures: Vec<Fixture>,
    /// Host paths an `exec` probe's `argv` names that the program only reads (absolute, or
    /// beginning with a variable). Any other absolute path in `argv` outside `${SCRATCH}`
    /// and `${HOME}` is a lint error (NX221): the baseline lane runs without a policy, and
    /// it keeps the host read-only outside the child's scratch directory. A declared path
    /// covers itself and everything beneath it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reads: Vec<String>,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    /// Free-form tags for listing and filtering.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

/// How a probe is performed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Driver {
    /// The runner's helper mode performs exactly one syscall and reports a witness.
    #[default]
    Builtin,
    /// Run `argv` (never through a shell) and classify by spawn error, signal, exit code.
    Exec,
}

/// Operations. Landlock governs the first group; the controls (`file-stat` … `symlink-read`)
/// are operations Landlock does not govern, which the oracle predicts as `not-enforceable`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Operation {
    /// `open(O_RDONLY)` + `read` of a file (Landlock read-file).
    FileRead,
    /// `open(O_WRONLY)` of an existing file + `write` (write-file).
    FileWrite,
    /// `open(O_CREAT|O_EXCL)` of a new regular file (make-reg on the parent).
    FileCreate,
    /// `unlink` of a file (remove-file on the parent).
    FileRemove,
    /// `truncate` to 0 (truncate, ABI 3).
    FileTruncate,
    /// `rename` of `target` to `destination` (remove/make on the parents, refer across
    /// directories, ABI 2).
    FileRename,
    /// `opendir` + `readdir` (read-dir).
    DirList,
    /// `mkdir` (make-dir on the parent).
    DirCreate,
    /// `rmdir` (remove-dir on the parent).
    DirRemove,
    /// `symlink` creating `target` (make-sym on the parent).
    SymlinkCreate,
    /// `execve` of `target` (execute, plus execute on its ELF interpreter).
    FileExec,
    /// TCP `connect` to `host:port` (connect-tcp, ABI 4). A refused connection is `allow`.
    TcpConnect,
    /// TCP `bind` to `host:port` (bind-tcp, ABI 4).
    TcpBind,
    /// UDP `sendto` `host:port` (Landlock ABI 10, or seccomp `udp`).
    UdpSend,
    /// `kill(pid, 0)` (scope `signal`, ABI 6).
    SignalSend,
    /// `connect` to an abstract UNIX socket `@name` (scope `abstract-unix-socket`, ABI 6).
    UnixAbstractConnect,
    /// Control: `stat`.
    FileStat,
    /// Control: `chmod`.
    FileChmod,
    /// Control: `chown` to the current owner.
    FileChown,
    /// Control: `utimensat`.
    FileUtime,
    /// Control: `setxattr` of a `user.` attribute.
    FileSetxattr,
    /// Control: `access(F_OK)`.
    FileAccess,
    /// Control: `chdir`.
    DirChdir,
    /// Control: `readlink`.
    SymlinkRead,
    /// Run a program (`exec` driver only): the oracle predicts execute on `argv[0]`.
    Exec,
}

impl Operation {
    /// Every operation, in declaration order.
    pub const ALL: [Operation; 25] = [
        Operation::FileRead,
        Operation::FileWrite,
        Operation::FileCreate,
        Operation::FileRemove,
        Operation::FileTruncate,
        Operation::FileRename,
        Operation::DirList,
        Operation::DirCreate,
        Operation::DirRemove,
        Operation::SymlinkCreate,
        Operation::FileExec,
        Operation::TcpConnect,
        Operation::TcpBind,
        Operation::UdpSend,
        Operation::SignalSend,
        Operation::UnixAbstractConnect,
        Operation::FileStat,
        Operation::FileChmod,
        Operation::FileChown,
        Operation::FileUtime,
        Operation::FileSetxattr,
        Operation::FileAccess,
        Operation::DirChdir,
        Operation::SymlinkRead,
        Operation::Exec,
    ];

    /// The kebab-case name used in files.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::FileRead => "file-read",
            Operation::FileWrite => "file-write",
            Operation::FileCreate => "file-create",
            Operation::FileRemove => "file-remove",
            Operation::FileTruncate => "file-truncate",
            Operation::FileRename => "file-rename",
            Operation::DirList => "dir-list",
            Operation::DirCreate => "dir-create",
            Operation::DirRemove => "dir-remove",
            Operation::SymlinkCreate => "symlink-create",
            Operation::FileExec => "file-exec",
            Operation::TcpConnect => "tcp-connect",
            Operation::TcpBind => "tcp-bind",
            Operation::UdpSend => "udp-send",
            Operation::SignalSend => "signal-send",
            Operation::UnixAbstractConnect => "unix-abstract-connect",
            Operation::FileStat => "file-stat",
            Operation::FileChmod => "file-chmod",
            Operation::FileChown => "file-chown",
            Operation::FileUtime => "file-utime",
            Operation::FileSetxattr => "file-setxattr",
            Operation::FileAccess => "file-access",
            Operation::DirChdir => "dir-chdir",
            Operation::SymlinkRead => "symlink-read",
            Operation::Exec => "exec",
        }
    }

    /// What kind of target the operation takes.
    pub fn target_kind(self) -> TargetKind {
        match self {
            Operation::TcpConnect | Operation::TcpBind | Operation::UdpSend => TargetKind::HostPort,
            Operation::SignalSend => TargetKind::Pid,
            Operation::UnixAbstractConnect => TargetKind::AbstractSocket,
            Operation::Exec => TargetKind::Program,
            _ => TargetKind::Path,
        }
    }

    /// True for the controls: operations Landlock does not govern.
    pub fn is_control(self) -> bool {
        matches!(
            self,
            Operation::FileStat
                | Operation::FileChmod
                | Operation::FileChown
                | Operation::FileUtime
                | Operation::FileSetxattr
                | Operation::FileAccess
                | Operation::DirChdir
                | Operation::SymlinkRead
        )
    }

    /// True if the operation modifies the filesystem (targets belong under `${SCRATCH}`).
    pub fn writes(self) -> bool {
        matches!(
            self,
            Operation::FileWrite
                | Operation::FileCreate
                | Operation::FileRemove
                | Operation::FileTruncate
                | Operation::FileRename
                | Operation::DirCreate
                | Operation::DirRemove
                | Operation::SymlinkCreate
                | Operation::FileChmod
                | Operation::FileChown
                | Operation::FileUtime
                | Operation::FileSetxattr
        )
    }

    /// True if the operation follows a final symbolic link in its target (open, exec,
    /// truncate, chmod …); false if it acts on the final name itself (create, remove,
    /// rename, readlink), so only the parent is resolved.
    pub fn follows_final(self) -> bool {
        !matches!(
            self,
            Operation::FileCreate
                | Operation::FileRemove
                | Operation::FileRename
                | Operation::DirCreate
                | Operation::DirRemove
                | Operation::SymlinkCreate
                | Operation::SymlinkRead
        )
    }
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an operation's target is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    /// An absolute path (after variable expansion).
    Path,
    /// `host:port` (`[v6]:port` for IPv6).
    HostPort,
    /// A process id (or `${RUNNER_PID}`).
    Pid,
    /// `@name`.
    AbstractSocket,
    /// A program path (`argv[0]` by default).
    Program,
}

/// Something a probe needs, created before it runs. Paths must lie under `${SCRATCH}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Fixture {
    /// A regular file.
    File {
        /// Where (under `${SCRATCH}`).
        path: String,
        /// UTF-8 content (default empty).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        content: Option<String>,
        /// Octal mode, e.g. `"0644"` (default `0644`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mode: Option<String>,
    },
    /// A directory (parents included).
    Dir {
        /// Where (under `${SCRATCH}`).
        path: String,
    },
    /// A symbolic link at `path` pointing to `to`.
    Symlink {
        /// Where the link is created (under `${SCRATCH}`).
        path: String,
        /// What it points to (any path).
        to: String,
    },
    /// A TCP listener on 127.0.0.1 the runner keeps open while the probe runs; its port is
    /// published as the plan variable `variable`.
    TcpListener {
        /// Variable receiving the port, e.g. `LISTEN_PORT` for `${LISTEN_PORT}`.
        variable: super::id::VarName,
        /// A fixed port to listen on (so a profile's `tcp_connect` list can name it);
        /// default: an ephemeral port chosen by the kernel.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        port: Option<u16>,
        /// Bytes to send on each accepted connection (after reading what the client sends
        /// first, up to an empty line, 16 KiB or one second), then close: e.g. a canned
        /// `HTTP/1.0 200 OK` response for a loopback HTTP check. Default: close at once.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reply: Option<String>,
    },
    /// An abstract UNIX socket listener `@name` the runner keeps open while the probe runs.
    UnixAbstractListener {
        /// The abstract name without `@` (variables allowed).
        name: String,
    },
}

// ---------------------------------------------------------------------------------------
// Profiles
// ---------------------------------------------------------------------------------------

/// `profiles.json`: policies keyed by id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "nexusmon registry profiles")]
pub struct ProfilesFile {
    /// The JSON Schema this file follows, for editors.
    #[serde(rename = "$schema", default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// Format version; this build reads `1`.
    pub schema_version: u32,
    /// The registry's id (matches its directory name).
    pub registry_id: Id,
    /// What the registry holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Profiles keyed by id.
    pub profiles: BTreeMap<Id, Profile>,
}

/// A policy: Landlock rules, optional seccomp, rlimits, environment.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// What the profile is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Landlock rules (none: no filesystem, network or scope restriction).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub landlock: Option<Landlock>,
    /// Optional seccomp deny groups, installed only when listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seccomp: Option<Seccomp>,
    /// Resource limits and the wall timeout.
    #[serde(default)]
    pub limits: Limits,
    /// The child's environment.
    #[serde(default)]
    pub env: Env,
    /// Capabilities the child keeps (clean channel; default none: every capability is
    /// dropped from the bounding, effective, permitted, inheritable and ambient sets).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("uniqueItems" = true))]
    pub capabilities: Vec<LinuxCapability>,
    /// The uid and gid the child runs as (clean channel; default: the runner's). Its scratch
    /// directory is given to this uid and gid; supplementary groups are cleared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<Identity>,
    /// Free-form tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Lint codes (warnings and notes) this profile acknowledges on purpose: their findings
    /// about the profile are not reported.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "lint_codes_schema")]
    pub allow_lint: Vec<String>,
}

/// The uid and gid a child runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    /// The user id.
    pub uid: u32,
    /// The group id (also the only group: supplementary groups are cleared).
    pub gid: u32,
}

macro_rules! capabilities {
    ($($variant:ident = $num:literal, $word:literal, $kernel:literal;)*) => {
        /// A Linux capability (`capabilities(7)`), written without `CAP_`, lower case, `_`
        /// as `-`: `net-raw` is `CAP_NET_RAW`.
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
            JsonSchema,
        )]
        pub enum LinuxCapability {
            $(
                #[doc = $kernel]
                #[serde(rename = $word)]
                $variant,
            )*
        }

        impl LinuxCapability {
            /// Every capability, by number.
            pub const ALL: &'static [LinuxCapability] = &[$(LinuxCapability::$variant),*];

            /// The capability's number.
            pub fn number(self) -> u8 {
                match self {
                    $(LinuxCapability::$variant => $num,)*
                }
            }

            /// The word used in files, e.g. `net-raw`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(LinuxCapability::$variant => $word,)*
                }
            }

            /// The kernel's name, e.g. `CAP_NET_RAW`.
            pub fn kernel_name(self) -> &'static str {
                match self {
                    $(LinuxCapability::$variant => $kernel,)*
                }
            }

            /// The capability with number `n`.
            pub fn from_number(n: u8) -> Option<LinuxCapability> {
                match n {
                    $($num => Some(LinuxCapability::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

capabilities! {
    Chown = 0, "chown", "CAP_CHOWN";
    DacOverride = 1, "dac-override", "CAP_DAC_OVERRIDE";
    DacReadSearch = 2, "dac-read-search", "CAP_DAC_READ_SEARCH";
    Fowner = 3, "fowner", "CAP_FOWNER";
    Fsetid = 4, "fsetid", "CAP_FSETID";
    Kill = 5, "kill", "CAP_KILL";
    Setgid = 6, "setgid", "CAP_SETGID";
    Setuid = 7, "setuid", "CAP_SETUID";
    Setpcap = 8, "setpcap", "CAP_SETPCAP";
    LinuxImmutable = 9, "linux-immutable", "CAP_LINUX_IMMUTABLE";
    NetBindService = 10, "net-bind-service", "CAP_NET_BIND_SERVICE";
    NetBroadcast = 11, "net-broadcast", "CAP_NET_BROADCAST";
    NetAdmin = 12, "net-admin", "CAP_NET_ADMIN";
    NetRaw = 13, "net-raw", "CAP_NET_RAW";
    IpcLock = 14, "ipc-lock", "CAP_IPC_LOCK";
    IpcOwner = 15, "ipc-owner", "CAP_IPC_OWNER";
    SysModule = 16, "sys-module", "CAP_SYS_MODULE";
    SysRawio = 17, "sys-rawio", "CAP_SYS_RAWIO";
    SysChroot = 18, "sys-chroot", "CAP_SYS_CHROOT";
    SysPtrace = 19, "sys-ptrace", "CAP_SYS_PTRACE";
    SysPacct = 20, "sys-pacct", "CAP_SYS_PACCT";
    SysAdmin = 21, "sys-admin", "CAP_SYS_ADMIN";
    SysBoot = 22, "sys-boot", "CAP_SYS_BOOT";
    SysNice = 23, "sys-nice", "CAP_SYS_NICE";
    SysResource = 24, "sys-resource", "CAP_SYS_RESOURCE";
    SysTime = 25, "sys-time", "CAP_SYS_TIME";
    SysTtyConfig = 26, "sys-tty-config", "CAP_SYS_TTY_CONFIG";
    Mknod = 27, "mknod", "CAP_MKNOD";
    Lease = 28, "lease", "CAP_LEASE";
    AuditWrite = 29, "audit-write", "CAP_AUDIT_WRITE";
    AuditControl = 30, "audit-control", "CAP_AUDIT_CONTROL";
    Setfcap = 31, "setfcap", "CAP_SETFCAP";
    MacOverride = 32, "mac-override", "CAP_MAC_OVERRIDE";
    MacAdmin = 33, "mac-admin", "CAP_MAC_ADMIN";
    Syslog = 34, "syslog", "CAP_SYSLOG";
    WakeAlarm = 35, "wake-alarm", "CAP_WAKE_ALARM";
    BlockSuspend = 36, "block-suspend", "CAP_BLOCK_SUSPEND";
    AuditRead = 37, "audit-read", "CAP_AUDIT_READ";
    Perfmon = 38, "perfmon", "CAP_PERFMON";
    Bpf = 39, "bpf", "CAP_BPF";
    CheckpointRestore = 40, "checkpoint-restore", "CAP_CHECKPOINT_RESTORE";
}

/// Landlock rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Landlock {
    /// `hard` (default): a right the kernel cannot enforce fails the lane as `apply-failed`.
    /// `best-effort`: the kernel enforces what it can; the downgrade is recorded and makes
    /// the run non-promotable.
    #[serde(default)]
    pub compat: Compat,
    /// The Landlock ABI that pins what `all` means (never auto-detected).
    #[schemars(range(min = 1, max = 10))]
    pub abi: u8,
    /// Filesystem rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fs: Option<FsRules>,
    /// Network rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net: Option<NetRules>,
    /// IPC scopes (ABI 6).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scope: Vec<ScopeWord>,
}

/// Compatibility level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Compat {
    /// Everything requested must be enforced, or the lane is `apply-failed`.
    #[default]
    Hard,
    /// Enforce what the kernel can; the downgrade is recorded.
    BestEffort,
}

/// Filesystem rules: which rights are handled, and the allow rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FsRules {
    /// The rights restricted: `all` (every right of `abi`) or a list of access words.
    /// Rights not handled stay allowed.
    pub handle: Handle,
    /// Allow rules: a path and the access granted beneath it. Rules are unions; there is no
    /// deny and no exception.
    #[serde(default)]
    pub allow: Vec<FsRule>,
    /// What a rule whose path does not exist does: `error` (default) or `skip` (listed in
    /// the bundle).
    #[serde(default)]
    pub missing_paths: MissingPaths,
}

/// `all`, or a list of access words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handle {
    /// Every filesystem right of the pinned ABI.
    All,
    /// The rights of these access words.
    List(Vec<Access>),
}

impl Serialize for Handle {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Handle::All => s.serialize_str("all"),
            Handle::List(v) => v.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Handle {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Handle;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("`all` or a list of access words such as [\"read\", \"write\"]")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Handle, E> {
                if v == "all" {
                    Ok(Handle::All)
                } else {
                    Err(E::custom(format!(
                        "expected `all` or a list of access words, found `{v}`"
                    )))
                }
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Handle, A::Error> {
                let mut out = Vec::new();
                while let Some(a) = seq.next_element::<Access>()? {
                    out.push(a);
                }
                Ok(Handle::List(out))
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for Handle {
    fn schema_name() -> Cow<'static, str> {
        "Handle".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let access = generator.subschema_for::<Access>();
        json_schema!({
            "description": "`all` (every filesystem right of the pinned ABI) or a list of access words.",
            "oneOf": [
                { "const": "all" },
                { "type": "array", "items": access, "uniqueItems": true }
            ]
        })
    }
}

/// One allow rule.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FsRule {
    /// The path (variables allowed; symlinks are resolved when the profile is compiled).
    pub path: String,
    /// The access granted beneath it.
    pub access: Vec<Access>,
    /// Lint codes (warnings and notes, e.g. `NX303`) this rule acknowledges on purpose:
    /// their findings about this rule are not reported.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "lint_codes_schema")]
    pub allow_lint: Vec<String>,
}

/// The schema of an `allow_lint` list.
fn lint_codes_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "items": {"type": "string", "pattern": "^NX[0-9]{3}$"},
        "description": "Lint codes acknowledged on purpose (warnings and notes only), e.g. [\"NX303\"]."
    })
}

/// Access words and the Landlock rights they stand for.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Access {
    /// read-file, read-dir.
    Read,
    /// execute.
    Exec,
    /// write-file, truncate (ABI 3).
    Write,
    /// make-reg, make-dir, make-sym, make-sock, make-fifo.
    Create,
    /// make-char, make-block.
    CreateDev,
    /// remove-file, remove-dir.
    Remove,
    /// refer (ABI 2): rename/link across directories.
    Rename,
    /// ioctl-dev (ABI 5).
    IoctlDev,
    /// resolve-unix (ABI 9): connect to pathname UNIX sockets.
    UnixConnect,
}

impl Access {
    /// Every access word.
    pub const ALL: [Access; 9] = [
        Access::Read,
        Access::Exec,
        Access::Write,
        Access::Create,
        Access::CreateDev,
        Access::Remove,
        Access::Rename,
        Access::IoctlDev,
        Access::UnixConnect,
    ];

    /// The word used in files.
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Exec => "exec",
            Access::Write => "write",
            Access::Create => "create",
            Access::CreateDev => "create-dev",
            Access::Remove => "remove",
            Access::Rename => "rename",
            Access::IoctlDev => "ioctl-dev",
            Access::UnixConnect => "unix-connect",
        }
    }

    /// The lowest Landlock ABI that has the word's first right.
    pub fn min_abi(self) -> u8 {
        match self {
            Access::Rename => 2,
            Access::IoctlDev => 5,
            Access::UnixConnect => 9,
            _ => 1,
        }
    }
}

/// What to do with a rule whose path does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum MissingPaths {
    /// The profile fails to compile (apply failure).
    #[default]
    Error,
    /// The rule is skipped and listed in the bundle.
    Skip,
}

/// Network rules. A present key means the right is handled; `[]` denies all ports.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NetRules {
    /// Ports TCP `connect` may reach (ABI 4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_connect: Option<Vec<u16>>,
    /// Ports TCP `bind` may use (ABI 4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_bind: Option<Vec<u16>>,
    /// `deny`: no UDP at all (Landlock ABI 10, or a seccomp filter below it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub udp: Option<UdpPolicy>,
    /// Ports UDP `connect`/`sendto` may reach (Landlock ABI 10 only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub udp_connect: Option<Vec<u16>>,
    /// Ports UDP `bind` may use (Landlock ABI 10 only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub udp_bind: Option<Vec<u16>>,
}

/// Whole-protocol UDP policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum UdpPolicy {
    /// No UDP sockets.
    Deny,
}

/// IPC scopes (ABI 6).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum ScopeWord {
    /// No signals to processes outside the sandbox.
    Signal,
    /// No connections to abstract UNIX sockets created outside the sandbox.
    AbstractUnixSocket,
}

/// Seccomp deny groups.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Seccomp {
    /// Groups of syscalls that fail with EPERM.
    pub deny_groups: Vec<SeccompGroup>,
}

/// A seccomp deny group.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum SeccompGroup {
    /// `socket(AF_INET|AF_INET6, SOCK_DGRAM)`.
    Udp,
    /// `io_uring_setup`, `io_uring_enter`, `io_uring_register`.
    IoUring,
    /// `setsid`, `setpgid`: children cannot leave their process group.
    NewSession,
    /// `ptrace`, `process_vm_readv`, `process_vm_writev`.
    Ptrace,
}

/// Resource limits (rlimits, core always 0) and the runner-side wall timeout.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// RLIMIT_CPU soft limit (hard = soft + 1, so the child gets SIGXCPU first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_seconds: Option<u64>,
    /// RLIMIT_AS (virtual memory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address_space_bytes: Option<u64>,
    /// RLIMIT_NOFILE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_files: Option<u64>,
    /// RLIMIT_FSIZE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_size_bytes: Option<u64>,
    /// Maximum processes (RLIMIT_NPROC does not bind root; see the README for how the
    /// runner contains process counts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processes: Option<u64>,
    /// Wall timeout for children under this profile, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wall_timeout_ms: Option<u64>,
    /// Grace between SIGTERM and SIGKILL on timeout, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kill_grace_ms: Option<u64>,
}

/// The child's environment.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Env {
    /// Start from an empty environment even on the `direct` channel (the `clean` channel
    /// always does).
    #[serde(default)]
    pub clear: bool,
    /// Names copied from the runner's environment when it is cleared.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pass: Vec<String>,
    /// Values set.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub set: BTreeMap<String, String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_names_round_trip() {
        for op in Operation::ALL {
            let s = serde_json::to_string(&op).unwrap();
            assert_eq!(s, format!("\"{}\"", op.as_str()));
            let back: Operation = serde_json::from_str(&s).unwrap();
            assert_eq!(back, op);
        }
    }

    #[test]
    fn handle_accepts_all_or_list_with_clear_errors() {
        let h: Handle = serde_json::from_str("\"all\"").unwrap();
        assert_eq!(h, Handle::All);
        let h: Handle = serde_json::from_str("[\"read\",\"write\"]").unwrap();
        assert_eq!(h, Handle::List(vec![Access::Read, Access::Write]));
        let e = serde_json::from_str::<Handle>("\"everything\"").unwrap_err();
        assert!(e.to_string().contains("expected `all`"), "{e}");
    }

    #[test]
    fn capability_words_numbers_and_kernel_names_agree() {
        for (i, c) in LinuxCapability::ALL.iter().enumerate() {
            assert_eq!(usize::from(c.number()), i);
            assert_eq!(LinuxCapability::from_number(c.number()), Some(*c));
            let word = serde_json::to_string(c).unwrap();
            assert_eq!(word, format!("\"{}\"", c.as_str()));
            let kernel = format!("CAP_{}", c.as_str().replace('-', "_").to_uppercase());
            assert_eq!(c.kernel_name(), kernel);
        }
        assert!(serde_json::from_str::<LinuxCapability>("\"CAP_NET_RAW\"").is_err());
    }

    #[test]
    fn fixtures_are_internally_tagged() {
        let f: Fixture =
            serde_json::from_str(r#"{"kind":"file","path":"${SCRATCH}/a","content":"x"}"#).unwrap();
        assert!(matches!(f, Fixture::File { .. }));
        assert!(
            serde_json::from_str::<Fixture>(r#"{"kind":"file","path":"x","bogus":1}"#).is_err()
        );
    }
}
