//! clap definitions for every command. No logic here: handlers in the
//! sibling modules turn these into settings and call the library.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Run declarative plan files under kernel-enforced profiles and keep sealed, verifiable
/// evidence of what happened.
#[derive(Debug, Parser)]
#[command(name = "nexusmon", version, about, max_term_width = 100)]
pub struct Cli {
    /// Global options.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args, Clone)]
pub struct GlobalArgs {
    /// Machine-readable output on stdout (human text goes to stderr).
    #[arg(long, global = true)]
    pub json: bool,
    /// Less output.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// More output (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Colour: auto (a TTY without NO_COLOR), always, never.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
    /// Project root (holds plans/, registry/, templates/); default: the nearest ancestor of
    /// the current directory that has one of them.
    #[arg(long, global = true, env = "NEXUSMON_ROOT", value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// State directory (audit log, trust file, omens, evolution); default: `.nexusmon/`
    /// found the way git finds `.git`.
    #[arg(long, global = true, env = "NEXUSMON_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

/// `--color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// Colour on a TTY unless NO_COLOR is set.
    Auto,
    /// Always colour.
    Always,
    /// Never colour.
    Never,
}

/// Every command.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a plan: every scenario in the baseline, scenario and oracle lanes; write a sealed bundle.
    Run(RunArgs),
    /// Show the kernel's sandbox support, whether the runner is confined, and the out root's state.
    Status(StatusArgs),
    /// Check a sealed bundle: index, sizes, digests, no unindexed files.
    ValidateBundle(ValidateArgs),
    /// Check (--strict) or rewrite (--repair) a bundle's index.
    ReindexBundle(ReindexArgs),
    /// Write a promotion packet (and its in-toto Statement) for a bundle; promotability is
    /// derived from the bundle alone.
    EmitPromotion(EmitPromotionArgs),
    /// Write an op-level summary of a bundle or a packet.
    SummarizeOps(SummarizeOpsArgs),
    /// Merge promotable packets into mappings.
    Promote(PromoteArgs),
    /// List plans.
    ListPlans(ListPlansArgs),
    /// Lint plans (files or directories, recursive).
    PlanLint(LintArgs),
    /// List registries.
    ListRegistries,
    /// List the probes of a registry.
    ListProbes(RegistrySelect),
    /// List the profiles of a registry.
    ListProfiles(RegistrySelect),
    /// Show one probe.
    DescribeProbe(DescribeArgs),
    /// Show one profile and what it compiles to on this kernel.
    DescribeProfile(DescribeArgs),
    /// Lint registries (files or directories, recursive; default: registry/).
    RegistryLint(RegistryLintArgs),
    /// List templates with their parameters.
    ListTemplates,
    /// Generate a plan, its registry files and expected matrix from a template.
    PlanBuild(PlanBuildArgs),
    /// Earn XP and capabilities from mission packets, each checked against its bundle.
    Evolve(EvolveArgs),
    /// Show evolution state.
    Evolution(EvolutionArgs),
    /// Write (and optionally sign) an approval record for a plan.
    Approve(ApproveArgs),
    /// Audit log commands.
    Audit(AuditArgs),
    /// Failure fingerprints counted across runs.
    Omens(OmensArgs),
    /// Missions awaiting approval, and their state.
    Missions(MissionsArgs),
    /// Create the state directory `.nexusmon/`.
    Init(InitArgs),
    /// Print shell completions.
    Completions(CompletionsArgs),
    /// (internal) the builtin probe helper.
    #[command(name = "__probe", hide = true)]
    Probe(ProbeHelperArgs),
    /// (internal) write and seal a bundle through the store, for tests and benchmarks.
    #[cfg(feature = "fault-injection")]
    #[command(name = "__bundle-write", hide = true)]
    BundleWrite(BundleWriteArgs),
}

/// `--lock`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LockMode {
    /// Fail at once if another run holds the out root.
    Fail,
    /// Wait for the holder (up to --lock-timeout).
    Wait,
}

/// `--channel`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Channel {
    /// Children inherit the runner's environment and working directory.
    Direct,
    /// Children start scrubbed: empty environment plus the profile's, new session, stdin
    /// /dev/null, private HOME/TMPDIR, umask 022. Required to promote.
    Clean,
}

/// `run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The plan file (JSON or YAML).
    #[arg(long, value_name = "FILE")]
    pub plan: PathBuf,
    /// How children are started.
    #[arg(long, value_enum, default_value_t = Channel::Clean)]
    pub channel: Channel,
    /// Out root (default: `<root>/out`).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Run only these profiles (repeatable).
    #[arg(long = "only-profile", value_name = "ID")]
    pub only_profile: Vec<String>,
    /// Run only these scenarios, `<profile>:<probe>` (repeatable).
    #[arg(long = "only-scenario", value_name = "ID")]
    pub only_scenario: Vec<String>,
    /// Show what would run (and what the gate decided); execute nothing.
    #[arg(long)]
    pub dry: bool,
    /// Parallel children (default: the plan's, else the number of cores).
    #[arg(long, value_name = "N")]
    pub jobs: Option<u32>,
    /// What to do when another run holds the out root.
    #[arg(long, value_enum, default_value_t = LockMode::Fail)]
    pub lock: LockMode,
    /// Seconds to wait for the lock with --lock wait.
    #[arg(long, value_name = "SECS", default_value_t = 600)]
    pub lock_timeout: u64,
    /// Approval records (repeatable); each `F` has its signature beside it as `F.sig`.
    #[arg(long, value_name = "FILE")]
    pub approval: Vec<PathBuf>,
    /// Keep the run's scratch directory (fixtures, per-child HOME) after the run; its path
    /// is in run_manifest.json.
    #[arg(long)]
    pub keep_scratch: bool,
    /// Sign the sealed bundle with this SSH private key (Ed25519, ECDSA P-256 or RSA; a
    /// passphrase-protected one through ssh-agent): artifact_index.sig (SSHSIG, namespace
    /// nexusmon-bundle-v1) and bundle.intoto.json (a DSSE-signed in-toto Statement).
    #[arg(long, value_name = "KEY", env = "NEXUSMON_SIGNING_KEY")]
    pub sign_with: Option<PathBuf>,
}

/// `status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Out root to report on (default: `<root>/out`).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Clean up after killed runs: kill what is left in their pids cgroups and remove them,
    /// remove their scratch directories, and (when the out root is not locked) the
    /// unsealed staging directories; say what was done.
    #[arg(long)]
    pub clean: bool,
}

/// `validate-bundle`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// A bundle directory, or an out root (resolved through LATEST).
    #[arg(long, value_name = "DIR")]
    pub bundle: PathBuf,
    /// Check the bundle's signature against this trust file (allowed-signers format; the
    /// signer needs `roles=runner`; `# nexusmon: require-signed-bundles` makes an unsigned
    /// bundle invalid). Default: the state directory's trusted_signers, if there is one.
    #[arg(long, value_name = "FILE")]
    pub trust: Option<PathBuf>,
}

/// `reindex-bundle`.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("mode").required(true))]
pub struct ReindexArgs {
    /// A bundle directory, or an out root (resolved through LATEST).
    #[arg(long, value_name = "DIR")]
    pub bundle: PathBuf,
    /// Verify only.
    #[arg(long, group = "mode")]
    pub strict: bool,
    /// Rewrite the index of a completed bundle and record what changed in repair_log.json.
    #[arg(long, group = "mode")]
    pub repair: bool,
    /// With --repair: what to do when a run holds the out root.
    #[arg(long, value_enum, default_value_t = LockMode::Fail)]
    pub lock: LockMode,
    /// Seconds to wait for the lock with --lock wait.
    #[arg(long, value_name = "SECS", default_value_t = 600)]
    pub lock_timeout: u64,
}

/// `__bundle-write` (hidden): drive the bundle writer from a process.
#[cfg(feature = "fault-injection")]
#[derive(Debug, Args)]
pub struct BundleWriteArgs {
    /// Out root.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Run id (else NEXUSMON_RUN_ID, else a new one).
    #[arg(long, value_name = "ID")]
    pub run_id: Option<String>,
    /// Generate this many files.
    #[arg(long, value_name = "N", default_value_t = 0, conflicts_with = "from")]
    pub files: u64,
    /// Bytes per generated file.
    #[arg(long, value_name = "BYTES", default_value_t = 1024)]
    pub size: u64,
    /// Seed of the generated content.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub seed: u64,
    /// Copy every regular file under DIR into the bundle.
    #[arg(long, value_name = "DIR")]
    pub from: Option<PathBuf>,
    /// With --from: move the top-level entries in (one rename each; same filesystem).
    #[arg(long = "move", requires = "from")]
    pub move_in: bool,
    /// Sign the seal with this SSH private key (as `run --sign-with`).
    #[arg(long, value_name = "KEY")]
    pub sign_with: Option<PathBuf>,
    /// Declare a file as expected (listed as missing if not written).
    #[arg(long, value_name = "REL")]
    pub expect: Vec<String>,
    /// Seal as failed instead of complete.
    #[arg(long)]
    pub failed: bool,
    /// Hold the lock this long after taking it, before writing.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub hold_ms: u64,
    /// What to do when another run holds the out root.
    #[arg(long, value_enum, default_value_t = LockMode::Fail)]
    pub lock: LockMode,
    /// Seconds to wait for the lock with --lock wait.
    #[arg(long, value_name = "SECS", default_value_t = 600)]
    pub lock_timeout: u64,
    /// Kill the process with SIGKILL at this protocol step.
    #[arg(long, value_name = "STEP")]
    pub crash_at: Option<String>,
    /// Make the durability barrier fail with EIO.
    #[arg(long)]
    pub fail_sync: bool,
    /// Use per-file fsync instead of syncfs.
    #[arg(long)]
    pub per_file_fsync: bool,
}

/// `emit-promotion`.
#[derive(Debug, Args)]
pub struct EmitPromotionArgs {
    /// A bundle directory, an out root (resolved through LATEST), or a `.staging/<run_id>`
    /// directory of a run that never sealed (its packet is never promotable).
    #[arg(long, value_name = "DIR")]
    pub bundle: PathBuf,
    /// Where to write promotion_packet.json (the in-toto Statement goes beside it).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Refuse to write a packet that is not promotable (exit 1, nothing written).
    #[arg(long)]
    pub require_promotable: bool,
    /// Replace an existing packet and its in-toto Statement.
    #[arg(long)]
    pub overwrite: bool,
    /// Check the bundle's signature against this trust file (default: the state
    /// directory's trusted_signers, if there is one).
    #[arg(long, value_name = "FILE")]
    pub trust: Option<PathBuf>,
}

/// `summarize-ops`.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("input").required(true))]
pub struct SummarizeOpsArgs {
    /// A bundle directory, or an out root.
    #[arg(long, value_name = "DIR", group = "input")]
    pub bundle: Option<PathBuf>,
    /// A promotion packet.
    #[arg(long, value_name = "FILE", group = "input")]
    pub packet: Option<PathBuf>,
    /// Write the summary as JSON here (atomically; replaces the file) instead of the table
    /// on stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// `promote`.
#[derive(Debug, Args)]
pub struct PromoteArgs {
    /// Promotion packets (each must be promotable and match its bundle; if any is refused,
    /// nothing is written).
    #[arg(long, value_name = "FILE", num_args = 1.., required = true)]
    pub packets: Vec<PathBuf>,
    /// Mappings directory (created if missing; mappings already there are merged with).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Check each bundle's signature against this trust file (default: the state
    /// directory's trusted_signers, if there is one).
    #[arg(long, value_name = "FILE")]
    pub trust: Option<PathBuf>,
}

/// `list-plans`.
#[derive(Debug, Args)]
pub struct ListPlansArgs {
    /// Directories to search (default: `<root>/plans`).
    pub paths: Vec<PathBuf>,
}

/// Lint output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LintFormat {
    /// Source excerpts with a caret under the value.
    Human,
    /// One JSON document.
    Json,
    /// SARIF 2.1.0 for GitHub code scanning.
    Sarif,
    /// GitHub workflow-command annotations.
    Github,
}

/// `plan-lint`.
#[derive(Debug, Args)]
pub struct LintArgs {
    /// Plan files or directories (searched recursively for plan.json / plan.yaml).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Output format (default human; `--json` means json).
    #[arg(long, value_enum)]
    pub format: Option<LintFormat>,
}

/// `registry-lint`.
#[derive(Debug, Args)]
pub struct RegistryLintArgs {
    /// Registry directories or files (default: `<root>/registry`).
    pub paths: Vec<PathBuf>,
    /// Output format (default human; `--json` means json).
    #[arg(long, value_enum)]
    pub format: Option<LintFormat>,
}

/// Which registry.
#[derive(Debug, Args)]
pub struct RegistrySelect {
    /// Registry id (default: the only registry, or `linux-core`).
    #[arg(long, value_name = "ID")]
    pub registry: Option<String>,
}

/// `describe-probe` / `describe-profile`.
#[derive(Debug, Args)]
pub struct DescribeArgs {
    /// The probe or profile id.
    pub id: String,
    /// Registry id (default: the only registry, or `linux-core`).
    #[arg(long, value_name = "ID")]
    pub registry: Option<String>,
}

/// `plan-build`.
#[derive(Debug, Args)]
pub struct PlanBuildArgs {
    /// Template id.
    #[arg(long, value_name = "ID")]
    pub template: String,
    /// Output directory (gets `plans/<plan_id>/` and `registry/<registry_id>/`).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Set a parameter (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Replace files that already exist.
    #[arg(long)]
    pub overwrite: bool,
    /// Do not write expected_matrix.json.
    #[arg(long)]
    pub no_expected_matrix: bool,
}

/// `evolve`.
#[derive(Debug, Args)]
pub struct EvolveArgs {
    /// Promotion packets of mission runs (`emit-promotion`). Each is checked against its
    /// bundle, as `promote` does: its pointers must resolve to the bytes it records and the
    /// bundle must give the same packet again, so the bundles must still be where the packet
    /// points (pointers are relative to the project root, or to the packet's directory when
    /// the bundle lies outside the project). If any packet is refused (edited, hand-written,
    /// or its bundle changed or moved), nothing is written (exit 1). Non-promotable packets
    /// are accepted: they earn nothing, but their violations cost XP. Experiment packets are
    /// skipped.
    #[arg(long, value_name = "FILE", num_args = 1.., required = true)]
    pub packets: Vec<PathBuf>,
}

/// `evolution`.
#[derive(Debug, Args)]
pub struct EvolutionArgs {
    /// Subcommand.
    #[command(subcommand)]
    pub command: EvolutionCommand,
}

/// `evolution …`.
#[derive(Debug, Subcommand)]
pub enum EvolutionCommand {
    /// XP, level and capabilities.
    Status,
}

/// `approve`.
#[derive(Debug, Args)]
pub struct ApproveArgs {
    /// The plan to approve.
    #[arg(long, value_name = "FILE")]
    pub plan: PathBuf,
    /// The approver principal (as in the trust file).
    #[arg(long, value_name = "NAME")]
    pub approver: String,
    /// Where to write the record (default: `approvals/<plan_id>.<approver>.json` beside the plan).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// How long the approval is valid, e.g. `24h`, `7d` (default 24h).
    #[arg(long, value_name = "DURATION", default_value = "24h")]
    pub expires_in: String,
    /// The scope the approval is for (default `run`).
    #[arg(long, value_name = "SCOPE", default_value = "run")]
    pub scope: String,
    /// Sign the record with this SSH private key (writes `<record>.sig`).
    #[arg(long, value_name = "KEY")]
    pub sign_with: Option<PathBuf>,
    /// A role the approver claims (repeatable); the trust file must grant it.
    #[arg(long = "role", value_name = "ROLE")]
    pub roles: Vec<String>,
    /// Replace an existing record (and signature).
    #[arg(long)]
    pub overwrite: bool,
}

/// `audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Subcommand.
    #[command(subcommand)]
    pub command: AuditCommand,
}

/// `audit …`.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain and every anchor that can be found.
    Verify(AuditVerifyArgs),
}

/// `audit verify`.
#[derive(Debug, Args)]
pub struct AuditVerifyArgs {
    /// Out roots, bundles or packets whose anchors to check (default: `<root>/out`).
    // Both `--anchors A B` and `--anchors A --anchors B` (as the README shows).
    #[arg(long = "anchors", value_name = "PATH", num_args = 1.., action = clap::ArgAction::Append)]
    pub anchors: Vec<PathBuf>,
}

/// `omens`.
#[derive(Debug, Args)]
pub struct OmensArgs {
    /// Subcommand.
    #[command(subcommand)]
    pub command: OmensCommand,
}

/// `omens …`.
#[derive(Debug, Subcommand)]
pub enum OmensCommand {
    /// List failure fingerprints with counts and states.
    List,
    /// Clear a locked omen (needs a valid approval of an approver).
    Clear(OmensClearArgs),
}

/// `omens clear`.
#[derive(Debug, Args)]
pub struct OmensClearArgs {
    /// The omen's fingerprint.
    pub fingerprint: String,
    /// The approver clearing it.
    #[arg(long, value_name = "NAME")]
    pub approver: String,
    /// SSH private key of the approver (signs the clearance).
    #[arg(long, value_name = "KEY")]
    pub sign_with: Option<PathBuf>,
    /// A clearance record signed with `ssh-keygen -Y sign` (instead of --sign-with).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["sign_with", "prepare"])]
    pub record: Option<PathBuf>,
    /// Only write the unsigned clearance record (to sign with `ssh-keygen -Y sign`, then
    /// pass with --record).
    #[arg(long, conflicts_with = "sign_with")]
    pub prepare: bool,
    /// How long a prepared or signed clearance stays usable (default 24h).
    #[arg(long, value_name = "DURATION", default_value = "24h")]
    pub expires_in: String,
}

/// `missions`.
#[derive(Debug, Args)]
pub struct MissionsArgs {
    /// Directories to search for mission plans (default: `<root>/plans`).
    pub paths: Vec<PathBuf>,
    /// Out roots whose running runs to show (repeatable; default: `<root>/out`).
    #[arg(long, value_name = "DIR")]
    pub out: Vec<PathBuf>,
}

/// `init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Where to create `.nexusmon/` (default: the project root).
    pub dir: Option<PathBuf>,
}

/// `completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// `__probe`: arguments are parsed by the helper itself.
#[derive(Debug, Args)]
pub struct ProbeHelperArgs {
    /// Raw helper arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}
