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
    #[command(
        after_help = "Examples:\n  nexusmon run --plan plans/quickstart/plan.json\n  nexusmon run --plan plans/quickstart/plan.json --only-scenario 'system-ro:*' --show all -v\n  nexusmon run --plan plans/quickstart/plan.json --junit junit.xml --format github\n  nexusmon run --plan plans/quickstart/plan.json --rerun-failed out"
    )]
    Run(RunArgs),
    /// Merge the sealed bundles of every shard of one `run --shard` selection into one sealed bundle.
    #[command(
        after_help = "Examples:\n  nexusmon merge-bundles --out merged out-1 out-2 out-3\n  nexusmon merge-bundles --out merged --allow-incomplete shards/*"
    )]
    MergeBundles(MergeArgs),
    /// Write a Kubernetes Indexed Job, a GitHub Actions matrix or a GitLab parallel job that runs a plan's shards.
    #[command(
        after_help = "Examples:\n  nexusmon export kubernetes --plan plans/quickstart/plan.json --shards 3 --image registry.example/nexusmon:1\n  nexusmon export github-matrix --plan plans/quickstart/plan.json --shards 3 --out ci/"
    )]
    Export(ExportArgs),
    /// Run a command under a registry profile, enforced as in a plan's scenario lane; exit with its status.
    #[command(
        after_help = "Examples:\n  nexusmon sandbox --profile system-ro -- cat /etc/os-release\n  nexusmon sandbox --profile system-ro --record out -- cat /etc/hostname\n  nexusmon sandbox --profile net-deny-all --kernel-audit require -- curl -sS https://example.com"
    )]
    Sandbox(SandboxArgs),
    /// Learn a profile from what the kernel denies a command, write it with controls and a plan, and prove it by a run.
    #[command(
        after_help = "Examples:\n  nexusmon learn --out learned -- cat /etc/os-release\n  nexusmon learn --out learned --workspace /tmp/ws -- git init /tmp/ws\n  nexusmon learn --out learned --widen-to /usr/lib/python3.11 --never /etc/shadow -- python3 -c 'print(1)'\n  nexusmon learn --out learned --probe exec-cat-hostname"
    )]
    Learn(LearnArgs),
    /// Show the kernel's sandbox support, whether the runner is confined, and the out root's state.
    #[command(after_help = "Examples:\n  nexusmon status\n  nexusmon status --out /tmp/out --json")]
    Status(StatusArgs),
    /// Check a sealed bundle: index, sizes, digests, no unindexed files.
    #[command(
        after_help = "Examples:\n  nexusmon validate-bundle --bundle out\n  nexusmon --json validate-bundle --bundle out/<run_id>"
    )]
    ValidateBundle(ValidateArgs),
    /// Check (--strict) or rewrite (--repair) a bundle's index.
    #[command(
        after_help = "Examples:\n  nexusmon reindex-bundle --bundle out --strict\n  nexusmon reindex-bundle --bundle out --repair"
    )]
    ReindexBundle(ReindexArgs),
    /// Write a promotion packet (and its in-toto Statement) for a bundle; promotability is
    /// derived from the bundle alone.
    #[command(
        after_help = "Examples:\n  nexusmon emit-promotion --bundle out --out promotion/promotion_packet.json\n  nexusmon emit-promotion --bundle out --out promotion/p.json --require-promotable"
    )]
    EmitPromotion(EmitPromotionArgs),
    /// Write an op-level summary of a bundle or a packet.
    #[command(
        after_help = "Examples:\n  nexusmon summarize-ops --bundle out\n  nexusmon summarize-ops --packet promotion/promotion_packet.json --out ops.json"
    )]
    SummarizeOps(SummarizeOpsArgs),
    /// Merge promotable packets into mappings.
    #[command(
        after_help = "Examples:\n  nexusmon promote --packets promotion/ --out mappings/\n  nexusmon promote --packets promotion/*.json --out mappings/"
    )]
    Promote(PromoteArgs),
    /// List plans.
    #[command(after_help = "Examples:\n  nexusmon list-plans\n  nexusmon --json list-plans plans/")]
    ListPlans(ListPlansArgs),
    /// Lint plans (files or directories, recursive).
    #[command(
        after_help = "Examples:\n  nexusmon plan-lint plans/\n  nexusmon plan-lint plans/ --format sarif > lint.sarif"
    )]
    PlanLint(LintArgs),
    /// List registries.
    #[command(after_help = "Examples:\n  nexusmon list-registries")]
    ListRegistries,
    /// List the probes of a registry.
    #[command(
        after_help = "Examples:\n  nexusmon list-probes\n  nexusmon list-probes --registry linux-core --json"
    )]
    ListProbes(RegistrySelect),
    /// List the profiles of a registry.
    #[command(
        after_help = "Examples:\n  nexusmon list-profiles\n  nexusmon list-profiles --registry linux-core --json"
    )]
    ListProfiles(RegistrySelect),
    /// Show one probe.
    #[command(after_help = "Examples:\n  nexusmon describe-probe read-etc-hostname")]
    DescribeProbe(DescribeArgs),
    /// Show one profile and what it compiles to on this kernel.
    #[command(after_help = "Examples:\n  nexusmon describe-profile system-ro")]
    DescribeProfile(DescribeArgs),
    /// Lint registries (files or directories, recursive; default: registry/).
    #[command(
        after_help = "Examples:\n  nexusmon registry-lint\n  nexusmon registry-lint registry/linux-core --format json"
    )]
    RegistryLint(RegistryLintArgs),
    /// List templates with their parameters.
    #[command(
        after_help = "Examples:\n  nexusmon list-templates\n  nexusmon --json list-templates"
    )]
    ListTemplates,
    /// Generate a plan, its registry files and expected matrix from a template.
    #[command(
        after_help = "Examples:\n  nexusmon plan-build --template tcp-egress-allowlist --out . --set allowed_ports=443,8443\n  nexusmon plan-build --template readonly-system --out . --set format=yaml"
    )]
    PlanBuild(PlanBuildArgs),
    /// Scaffold a mission worker from the worker template: workers/<name>.py, its registry
    /// (workers.json, a confined profile) and a mission that runs it.
    #[command(
        after_help = "Examples:\n  nexusmon worker-new hello\n  nexusmon plan-lint plans/hello/plan.json"
    )]
    WorkerNew(WorkerNewArgs),
    /// Earn XP and capabilities from mission packets, each checked against its bundle.
    #[command(
        after_help = "Examples:\n  nexusmon evolve --packets promotion/\n  nexusmon evolve --packets promotion/promotion_packet.json"
    )]
    Evolve(EvolveArgs),
    /// Show evolution state.
    #[command(after_help = "Examples:\n  nexusmon evolution status")]
    Evolution(EvolutionArgs),
    /// Write (and optionally sign) an approval record for a plan.
    #[command(
        after_help = "Examples:\n  nexusmon approve --plan plans/mission-demo/plan.json --approver alice --sign-with ~/.ssh/id_ed25519\n  nexusmon approve --plan plans/mission-demo/plan.json --approver bob --expires-in 7d"
    )]
    Approve(ApproveArgs),
    /// Render a run (or a set of packets) for review: a self-contained HTML page, Markdown,
    /// JUnit XML.
    #[command(
        after_help = "Examples:\n  nexusmon report --bundle out --out report.html\n  nexusmon report --bundle out --format markdown\n  nexusmon report --bundle out --junit junit.xml\n  nexusmon report --packet promotion/"
    )]
    Report(ReportArgs),
    /// What changed between two runs (bundles, out roots, packets), each change with a
    /// severity.
    #[command(
        after_help = "Examples:\n  nexusmon diff out/<run_a> out/<run_b>\n  nexusmon diff old-out out --fail-on critical\n  nexusmon diff a/promotion_packet.json b/promotion_packet.json --format markdown"
    )]
    Diff(DiffArgs),
    /// What awaits an operator: missions awaiting approval, packets flagged for review or
    /// not promotable.
    #[command(
        after_help = "Examples:\n  nexusmon review\n  nexusmon review show mission:mission-demo\n  nexusmon --json review --packets promotion/"
    )]
    Review(ReviewArgs),
    /// The cockpit: a local web service over the runs, packets, missions, omens, evolution
    /// and audit log this project keeps (pages and a JSON API under /v1/). Never runs a plan.
    #[command(
        after_help = "Examples:\n  nexusmon serve\n  nexusmon serve --bind 127.0.0.1:8012 --out out --packets promotion --token-file ~/.nexusmon-token\n  curl -s http://127.0.0.1:8012/v1/runs"
    )]
    Serve(ServeArgs),
    /// Edit the trust file (operator keys and their roles).
    #[command(
        after_help = "Examples:\n  nexusmon trust add ~/.ssh/id_ed25519.pub --principal alice --role approver"
    )]
    Trust(TrustArgs),
    /// Audit log commands.
    #[command(
        after_help = "Examples:\n  nexusmon audit verify\n  nexusmon audit verify --anchors out/LATEST --anchors promotion/promotion_packet.json"
    )]
    Audit(AuditArgs),
    /// Failure fingerprints counted across runs.
    #[command(
        after_help = "Examples:\n  nexusmon omens list\n  nexusmon omens clear 3f2a9c --approver alice --sign-with ~/.ssh/id_ed25519"
    )]
    Omens(OmensArgs),
    /// Missions awaiting approval, and their state.
    #[command(
        after_help = "Examples:\n  nexusmon missions\n  nexusmon --json missions plans/ --out out"
    )]
    Missions(MissionsArgs),
    /// Create the state directory `.nexusmon/`.
    #[command(after_help = "Examples:\n  nexusmon init\n  nexusmon init /path/to/project")]
    Init(InitArgs),
    /// Print shell completions.
    #[command(
        after_help = "Examples:\n  nexusmon completions bash > /etc/bash_completion.d/nexusmon"
    )]
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
    /// Run only these profiles (repeatable): an id, a glob (`net-*`) or `@TAG` (the
    /// profiles with that tag).
    #[arg(long = "only-profile", value_name = "ID|GLOB|@TAG")]
    pub only_profile: Vec<String>,
    /// Run only these scenarios (repeatable): `<profile>:<probe>`, a glob
    /// (`'system-ro:*'`) or `@TAG` (the scenarios whose probe has that tag).
    #[arg(long = "only-scenario", value_name = "ID|GLOB|@TAG")]
    pub only_scenario: Vec<String>,
    /// Run only the scenarios that mismatched (or were flaky) in bundle B (a bundle
    /// directory or an out root) of the same plan.
    #[arg(long = "rerun-failed", value_name = "BUNDLE")]
    pub rerun_failed: Option<PathBuf>,
    /// Also write the results as JUnit XML to FILE.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Output: human (the table on stderr), json (NDJSON events on stdout, as --json), github
    /// (the human table, plus `::error` annotations on stdout pointing at the plan lines;
    /// the default when GITHUB_ACTIONS=true). A Markdown summary is appended to
    /// $GITHUB_STEP_SUMMARY when it is set.
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub format: Option<RunFormat>,
    /// Which rows the table shows: failures (mismatches and flaky; the default above
    /// 50 scenarios) or all.
    #[arg(long, value_enum, value_name = "WHICH")]
    pub show: Option<Show>,
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
    #[command(flatten)]
    pub scratch: ScratchParentArg,
    /// Sign the sealed bundle with this SSH private key (Ed25519, ECDSA P-256 or RSA; a
    /// passphrase-protected one through ssh-agent): artifact_index.sig (SSHSIG, namespace
    /// nexusmon-bundle-v1) and bundle.intoto.json (a DSSE-signed in-toto Statement).
    #[arg(long, value_name = "KEY", env = "NEXUSMON_SIGNING_KEY")]
    pub sign_with: Option<PathBuf>,
    /// The kernel's own record of each Landlock denial (Linux 6.15+, root): auto (read
    /// them when kernel audit is already enabled), require (enable audit for the run and
    /// restore it after; fail if impossible) or off. Scenario-lane observations then carry
    /// `kernel_denials` and the bundle `kernel_denials.jsonl`.
    #[arg(
        long,
        value_enum,
        value_name = "MODE",
        default_value_t = KernelAudit::Auto,
        env = "NEXUSMON_KERNEL_AUDIT"
    )]
    pub kernel_audit: KernelAudit,
    /// (tests) Hold every observation to the end instead of streaming the results.
    #[cfg(feature = "fault-injection")]
    #[arg(long, hide = true)]
    pub gather_results: bool,
    /// Run only shard K of N of the selected scenarios (1 <= K <= N): a deterministic
    /// partition; every shard writes an ordinary sealed bundle, and `merge-bundles` makes
    /// one bundle of all N.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<String>,
    /// How --shard partitions: hash (stable when scenarios are added or filtered) or
    /// duration (balanced by the wall times of --durations BUNDLE; unknown scenarios by hash).
    #[arg(long, value_enum, value_name = "STRATEGY", default_value_t = ShardStrategyArg::Hash)]
    pub shard_strategy: ShardStrategyArg,
    /// The prior bundle (or out root) whose recorded wall times --shard-strategy duration
    /// balances by.
    #[arg(long, value_name = "BUNDLE")]
    pub durations: Option<PathBuf>,
    /// A shard that selects nothing still writes its sealed bundle, and exits 0 instead of 6.
    #[arg(long)]
    pub allow_empty_shard: bool,
    /// Refuse to run (exit 2) unless the plan's blake3 digest is this one: what exported CI
    /// jobs pass, so a job made for another version of the plan fails instead of running it.
    #[arg(long, value_name = "BLAKE3")]
    pub expect_plan_digest: Option<String>,
}

/// `--scratch-parent` (`run`, `sandbox`, `learn`, `status --clean`).
#[derive(Debug, Args)]
pub struct ScratchParentArg {
    /// The directory runs create their private scratch directory in (`nexusmon-<run_id>`;
    /// default: /dev/shm, else the system temp dir). A run first cleans up after the killed
    /// runs of the same directory, and only those (as `status --clean` does with it): runs
    /// given different directories never touch each other's leftovers. It must exist, be
    /// writable by the runner, be owned by its user or root, and not be writable by other
    /// users unless sticky (as /tmp is).
    #[arg(long, value_name = "DIR", env = "NEXUSMON_SCRATCH_PARENT")]
    pub scratch_parent: Option<PathBuf>,
}

/// `--shard-strategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ShardStrategyArg {
    /// By a digest of each scenario id.
    Hash,
    /// By a prior bundle's wall times.
    Duration,
}

/// `merge-bundles`.
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The out root the merged bundle is written into (as `DIR/<run_id>`, with `LATEST`).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// The shards' bundles (bundle directories or out roots), every shard of one selection once.
    #[arg(value_name = "BUNDLE", required = true)]
    pub bundles: Vec<PathBuf>,
    /// Merge failed or interrupted shards too; the merged bundle is then not promotable
    /// (`shard-incomplete`).
    #[arg(long)]
    pub allow_incomplete: bool,
    /// Sign the merged bundle with this SSH private key (as `run --sign-with`).
    #[arg(long, value_name = "KEY", env = "NEXUSMON_SIGNING_KEY")]
    pub sign_with: Option<PathBuf>,
    /// Judge the shards' signatures against this trust file (default: the state
    /// directory's).
    #[arg(long, value_name = "FILE")]
    pub trust: Option<PathBuf>,
}

/// `export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// What to write.
    #[command(subcommand)]
    pub target: ExportTarget,
}

/// `export` targets.
#[derive(Debug, Subcommand)]
pub enum ExportTarget {
    /// A Kubernetes Indexed Job (JSON, which kubectl reads as it reads YAML) running one
    /// shard per completion index.
    #[command(
        after_help = "Examples:\n  nexusmon export kubernetes --plan plans/quickstart/plan.json --shards 3 --image registry.example/nexusmon:1 --out ci/k8s\n  nexusmon export kubernetes --plan plans/quickstart/plan.json --shards 3 --image registry.example/nexusmon:1 --namespace ci > job.json"
    )]
    Kubernetes(ExportKubeArgs),
    /// A GitHub Actions `strategy.matrix` (JSON) and a workflow running the shards,
    /// uploading each bundle and merging them in a final job.
    #[command(
        after_help = "Examples:\n  nexusmon export github-matrix --plan plans/quickstart/plan.json --shards 3 --out .github/workflows"
    )]
    GithubMatrix(ExportCommonArgs),
    /// A GitLab CI pipeline whose `parallel:` job runs the shards and a merge job.
    #[command(
        after_help = "Examples:\n  nexusmon export gitlab --plan plans/quickstart/plan.json --shards 3 --out ci/gitlab"
    )]
    Gitlab(ExportCommonArgs),
}

/// What every export needs.
#[derive(Debug, Args)]
pub struct ExportCommonArgs {
    /// The plan file.
    #[arg(long, value_name = "FILE")]
    pub plan: PathBuf,
    /// How many shards.
    #[arg(long, value_name = "N")]
    pub shards: u32,
    /// Write the files into this directory (default: print the main file on stdout).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// `export kubernetes`.
#[derive(Debug, Args)]
pub struct ExportKubeArgs {
    /// Plan, shards, out.
    #[command(flatten)]
    pub common: ExportCommonArgs,
    /// The container image that has nexusmon and the project (at its working directory).
    #[arg(long, value_name = "IMG")]
    pub image: String,
    /// The Job's namespace.
    #[arg(long, value_name = "NS")]
    pub namespace: Option<String>,
}

/// `sandbox`.
#[derive(Debug, Args)]
pub struct SandboxArgs {
    /// The profile (from the project's registries).
    #[arg(long, value_name = "ID")]
    pub profile: String,
    /// The registry holding it (default: the one registry of the project that has it).
    #[arg(long, value_name = "R")]
    pub registry: Option<String>,
    /// Also keep a sealed bundle of this one execution in the out root OUT (kernel
    /// denials included when collected).
    #[arg(long, value_name = "OUT")]
    pub record: Option<PathBuf>,
    /// Wall timeout in seconds (then SIGTERM to its process group, SIGKILL after the
    /// grace; exit 124).
    #[arg(long, value_name = "SECS", default_value_t = 600)]
    pub timeout: u64,
    #[command(flatten)]
    pub scratch: ScratchParentArg,
    /// The kernel's record of each denial (as `run --kernel-audit`); printed on stderr.
    #[arg(
        long,
        value_enum,
        value_name = "MODE",
        default_value_t = KernelAudit::Auto,
        env = "NEXUSMON_KERNEL_AUDIT"
    )]
    pub kernel_audit: KernelAudit,
    /// The command and its arguments (after `--`).
    #[arg(required = true, last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// `learn`.
#[derive(Debug, Args)]
pub struct LearnArgs {
    /// The project directory to write: `registry/learned/`, `plans/learn-<name>/`,
    /// `schemas/`, `learn_log.json`, and the proof bundle under `out/`.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Learn for this exec probe of the project's registries instead of a command.
    #[arg(long, value_name = "ID", conflicts_with = "command")]
    pub probe: Option<String>,
    /// The registry holding the probe (default: the one that has it).
    #[arg(long, value_name = "R", requires = "probe")]
    pub registry: Option<String>,
    /// Where the command writes, as its arguments name it: learning and the proof run it
    /// with a fresh `${SCRATCH}/ws` there, and grant writes only within it.
    #[arg(long, value_name = "DIR")]
    pub workspace: Option<String>,
    /// A directory learn may grant as a whole (read/exec) when the command is denied
    /// something beneath it (repeatable); without it, only single files are granted.
    #[arg(long = "widen-to", value_name = "DIR")]
    pub widen_to: Vec<PathBuf>,
    /// A path no learned rule may be on or contain (repeatable).
    #[arg(long, value_name = "PATH")]
    pub never: Vec<PathBuf>,
    /// The most runs of the command under a growing profile.
    #[arg(long, value_name = "N", default_value_t = crate::exec::learn::DEFAULT_MAX_ROUNDS)]
    pub max_rounds: u32,
    /// The profile is `learned-NAME` (default: the program's or probe's name).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Wall timeout per run of the command, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub timeout: u64,
    /// After learning, run the command once without each rule the rounds added and drop
    /// the rules it does without (one more run per rule).
    #[arg(long)]
    pub minimize: bool,
    #[command(flatten)]
    pub scratch: ScratchParentArg,
    /// The command and its arguments (after `--`).
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// `--kernel-audit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KernelAudit {
    /// Read the records when kernel audit is already enabled.
    Auto,
    /// Enable kernel audit for the run (restored after); fail if impossible.
    Require,
    /// Do not read them.
    Off,
}

impl KernelAudit {
    /// The library's mode.
    pub fn mode(self) -> crate::model::results::KernelAuditMode {
        match self {
            KernelAudit::Auto => crate::model::results::KernelAuditMode::Auto,
            KernelAudit::Require => crate::model::results::KernelAuditMode::Require,
            KernelAudit::Off => crate::model::results::KernelAuditMode::Off,
        }
    }
}

/// `run --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RunFormat {
    /// The table and the result on stderr.
    Human,
    /// NDJSON events on stdout (as --json).
    Json,
    /// GitHub Actions annotations on stdout, the table on stderr.
    Github,
}

/// `run --show`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Show {
    /// Only rows with a mismatch or a flaky pass.
    Failures,
    /// Every row.
    All,
}

/// `report --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    /// One self-contained HTML page.
    Html,
    /// Markdown (the run's summary with its verdict).
    Markdown,
    /// JUnit XML.
    Junit,
}

/// `report`.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("input").required(true))]
pub struct ReportArgs {
    /// A bundle directory, or an out root (resolved through LATEST).
    #[arg(long, value_name = "DIR", group = "input")]
    pub bundle: Option<PathBuf>,
    /// Promotion packets or directories holding them (in-toto Statements are skipped): a
    /// page of their promotability and the per-profile signatures and conflicts they map
    /// to; one packet of a run renders that run's page.
    #[arg(long, value_name = "FILE|DIR", num_args = 1.., group = "input")]
    pub packet: Vec<PathBuf>,
    /// A mappings directory (`promote --out`): its per-profile signatures and conflicts.
    #[arg(long, value_name = "DIR", group = "input")]
    pub mappings: Option<PathBuf>,
    /// Largest mapping file read, in bytes: mappings grow with every packet promoted, and
    /// a file over the limit is refused before it is read (input limits: README).
    #[arg(long, value_name = "BYTES", default_value_t = crate::util::limits::MAX_MAPPING_BYTES)]
    pub max_mapping_bytes: u64,
    /// Where to write the report (default: `report.html` for html; stdout otherwise).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// The format.
    #[arg(long, value_enum, default_value_t = ReportFormat::Html)]
    pub format: ReportFormat,
    /// Also write JUnit XML to FILE (with --bundle).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
}

/// `diff --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DiffFormat {
    /// Text, one change per line (the default).
    Human,
    /// The JSON document (as --json).
    Json,
    /// A Markdown table.
    Markdown,
}

/// `diff --fail-on`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FailOn {
    /// A policy hole opened (expected deny, now allowed).
    Critical,
    /// Critical, or something that worked no longer does.
    Breaking,
    /// Any change at all.
    Any,
}

/// `diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The earlier run: a bundle, an out root (through LATEST) or a promotion packet.
    pub a: PathBuf,
    /// The later run.
    pub b: PathBuf,
    /// Exit 1 when a change at least this serious is found (default: exit 0 whatever
    /// changed).
    #[arg(long, value_enum, value_name = "SEVERITY")]
    pub fail_on: Option<FailOn>,
    /// Output format.
    #[arg(long, value_enum)]
    pub format: Option<DiffFormat>,
}

/// `review`.
#[derive(Debug, Args)]
pub struct ReviewArgs {
    /// Subcommand (default: list the queue).
    #[command(subcommand)]
    pub command: Option<ReviewCommand>,
    /// Directories to search for mission plans (default: `<root>/plans`).
    #[arg(long = "plans", value_name = "DIR", global = true)]
    pub plans: Vec<PathBuf>,
    /// Directories (or files) of promotion packets (default: `<root>/promotion`).
    #[arg(long = "packets", value_name = "DIR", global = true)]
    pub packets: Vec<PathBuf>,
}

/// `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on. Anything but loopback needs --token-file (and then every
    /// request needs the token).
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:8012")]
    pub bind: std::net::SocketAddr,
    /// Out roots whose bundles to show (repeatable; default: `<root>/out`).
    #[arg(long = "out", value_name = "DIR")]
    pub out: Vec<PathBuf>,
    /// Directories of promotion packets for the review queue (default: `<root>/promotion`).
    #[arg(long = "packets", value_name = "DIR")]
    pub packets: Vec<PathBuf>,
    /// Directories of mission plans (default: `<root>/plans`).
    #[arg(long = "plans", value_name = "DIR")]
    pub plans: Vec<PathBuf>,
    /// File holding the bearer token (one line, mode 600). Approval uploads need it even on
    /// loopback; without it they are disabled.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Seconds between scans of the out roots (new and changed bundles appear then).
    #[arg(long, value_name = "SECONDS", default_value_t = 2.0)]
    pub rescan: f64,
    /// Seconds after which a bundle is verified again in full even if its metadata did not
    /// change.
    #[arg(long, value_name = "SECONDS", default_value_t = 3600)]
    pub reverify: u64,
}

/// `review …`.
#[derive(Debug, Subcommand)]
pub enum ReviewCommand {
    /// One item in full: what the operator must decide, and for an approval voided by an
    /// edit, what changed in the plan (field by field).
    #[command(
        after_help = "Examples:\n  nexusmon review show mission:mission-demo\n  nexusmon review show packet:20261124T172507.255Z-6c2eb6f3"
    )]
    Show(ReviewShowArgs),
}

/// `review show`.
#[derive(Debug, Args)]
pub struct ReviewShowArgs {
    /// The item: `mission:<plan_id>` or `packet:<run_id>` (as `review` lists them).
    pub id: String,
}

/// `trust`.
#[derive(Debug, Args)]
pub struct TrustArgs {
    /// Subcommand.
    #[command(subcommand)]
    pub command: TrustCommand,
}

/// `trust …`.
#[derive(Debug, Subcommand)]
pub enum TrustCommand {
    /// Add an operator key: a line `NAME namespaces="nexusmon-approval-v1" KEY roles=ROLE`
    /// in the trust file (atomically, recorded in the audit log).
    #[command(
        after_help = "Examples:\n  nexusmon trust add ~/.ssh/id_ed25519.pub --principal alice --role approver\n  nexusmon trust add 'ssh-ed25519 AAAA…' --principal bob --role approver"
    )]
    Add(TrustAddArgs),
}

/// `trust add`.
#[derive(Debug, Args)]
pub struct TrustAddArgs {
    /// The public key: a `.pub` file, or the key text `ssh-ed25519 AAAA…`.
    pub key: String,
    /// The principal the key signs as.
    #[arg(long, value_name = "NAME")]
    pub principal: String,
    /// A role granted to the key (repeatable), e.g. `approver`.
    #[arg(long = "role", value_name = "ROLE", required = true)]
    pub roles: Vec<String>,
}

/// `status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Out root to report on (default: `<root>/out`).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Clean up after killed runs: kill what is left in their pids cgroups and remove them,
    /// remove their scratch directories, and (when the out root is not locked) the
    /// unsealed staging directories; say what was done. Only the runs of one scratch
    /// parent (--scratch-parent) are cleaned.
    #[arg(long)]
    pub clean: bool,
    #[command(flatten)]
    pub scratch: ScratchParentArg,
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
    /// Promotion packets, or directories holding them (each must be promotable and match
    /// its bundle; if any is refused, nothing is written). In-toto Statements
    /// (`*.intoto.json`) beside the packets are skipped.
    #[arg(long, value_name = "FILE|DIR", num_args = 1.., required = true)]
    pub packets: Vec<PathBuf>,
    /// Mappings directory (created if missing; mappings already there are merged with).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Check each bundle's signature against this trust file (default: the state
    /// directory's trusted_signers, if there is one).
    #[arg(long, value_name = "FILE")]
    pub trust: Option<PathBuf>,
    /// Largest mapping file read, in bytes: mappings grow with every packet promoted, and
    /// a file over the limit is refused before it is read (input limits: README).
    #[arg(long, value_name = "BYTES", default_value_t = crate::util::limits::MAX_MAPPING_BYTES)]
    pub max_mapping_bytes: u64,
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

/// `worker-new`.
#[derive(Debug, Args)]
pub struct WorkerNewArgs {
    /// The worker's name (an id): gives `workers/<name>.py`, `registry/<name>/` and
    /// `plans/<name>/`.
    #[arg(value_name = "NAME")]
    pub name: String,
    /// Replace files a previous scaffold of the same name wrote.
    #[arg(long)]
    pub overwrite: bool,
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
    /// The plan's id (and its registry's), instead of the one derived from the template
    /// and the non-default parameters.
    #[arg(long, value_name = "ID")]
    pub plan_id: Option<String>,
    /// Replace files that already exist with other content (files whose content is already
    /// what the build would write are left alone without it).
    #[arg(long)]
    pub overwrite: bool,
    /// Do not write expected_matrix.json.
    #[arg(long)]
    pub no_expected_matrix: bool,
    /// Most scenarios (profile × probe) the build may generate; a template's loops
    /// multiply, so a larger plan is refused unless you raise this (input limits: README).
    #[arg(long, value_name = "N", default_value_t = crate::util::limits::MAX_TEMPLATE_SCENARIOS)]
    pub max_scenarios: usize,
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
    /// skipped. Directories are read for their packets; in-toto Statements
    /// (`*.intoto.json`) are skipped.
    #[arg(long, value_name = "FILE|DIR", num_args = 1.., required = true)]
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
    #[command(
        after_help = "Examples:\n  nexusmon evolution status\n  nexusmon --json evolution status"
    )]
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
    /// The scope the approval is for (default `run`, the only scope the gate consults).
    #[arg(long, value_name = "SCOPE", default_value = "run", value_parser = ["run"])]
    pub scope: String,
    /// How many runs the approval may be used for (e.g. `--uses 1`: single use; each use
    /// is recorded in the audit log under the record's nonce). Default: any number until
    /// it expires.
    #[arg(long, value_name = "N")]
    pub uses: Option<u32>,
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
    #[command(
        after_help = "Examples:\n  nexusmon audit verify\n  nexusmon audit verify --anchors out --anchors promotion/promotion_packet.json"
    )]
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
    #[command(after_help = "Examples:\n  nexusmon omens list\n  nexusmon --json omens list")]
    List,
    /// Clear a locked omen (needs a valid approval of an approver).
    #[command(
        after_help = "Examples:\n  nexusmon omens clear 3f2a9c --approver alice --sign-with ~/.ssh/id_ed25519\n  nexusmon omens clear 3f2a9c --approver alice --prepare"
    )]
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

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// Every command and subcommand a user can type shows examples in its `--help`.
    #[test]
    fn every_command_has_an_examples_section() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
                let name = format!("{path} {}", sub.get_name());
                if sub.get_name() == "help" {
                    continue;
                }
                let help = sub
                    .get_after_help()
                    .map(ToString::to_string)
                    .unwrap_or_default();
                let has_subs = sub.get_subcommands().any(|s| s.get_name() != "help");
                if !help.starts_with("Examples:") && !has_subs {
                    missing.push(name.clone());
                }
                walk(sub, &name, missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "nexusmon", &mut missing);
        assert!(missing.is_empty(), "no Examples in --help of: {missing:?}");
    }
}
