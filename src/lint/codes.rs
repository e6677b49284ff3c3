//! The one table of lint codes: stable ids (`NX0xx` files, syntax and schema; `NX1xx`
//! references; `NX2xx` probes, targets and variables; `NX3xx` profiles; `NX4xx` plan
//! structure and missions; `NX5xx` workers), their severity and the texts SARIF rules and `--explain`-style
//! documentation use. Codes are an API: never renumber one; retire it instead.

use serde::{Serialize, Serializer};

/// How bad a finding is. `error` makes lint exit 1; warnings and notes alone exit 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// The file is wrong: `run` would refuse it or do something other than intended.
    Error,
    /// Probably a mistake, or has no effect.
    Warning,
    /// Information: a default that applies, a consequence worth knowing.
    Note,
}

impl Severity {
    /// `error`, `warning`, `note` (also the SARIF `level`).
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Note => "note",
        }
    }
}

impl Serialize for Severity {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

macro_rules! codes {
    ($( $(#[$doc:meta])* $variant:ident = $id:literal, $name:literal, $sev:ident,
        $short:literal, $help:literal; )*) => {
        /// A lint code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Code {
            $( $(#[$doc])* $variant, )*
        }

        impl Code {
            /// Every code, in id order.
            pub const ALL: &'static [Code] = &[ $( Code::$variant, )* ];

            /// The stable id, e.g. `NX101`.
            pub fn id(self) -> &'static str {
                match self { $( Code::$variant => $id, )* }
            }

            /// A short kebab-case name, e.g. `unknown-probe`.
            pub fn name(self) -> &'static str {
                match self { $( Code::$variant => $name, )* }
            }

            /// The severity every finding of this code has.
            pub fn severity(self) -> Severity {
                match self { $( Code::$variant => Severity::$sev, )* }
            }

            /// One sentence: what the code reports.
            pub fn short(self) -> &'static str {
                match self { $( Code::$variant => $short, )* }
            }

            /// Why it matters and how to fix it.
            pub fn help(self) -> &'static str {
                match self { $( Code::$variant => $help, )* }
            }
        }
    };
}

codes! {
    /// The file is not valid JSON or YAML.
    Syntax = "NX001", "syntax-error", Error,
        "The file is not valid JSON or YAML.",
        "Fix the syntax at the reported line and column. JSON allows no trailing commas, comments or single quotes; YAML files hold exactly one document.";
    /// A key the format does not define.
    UnknownKey = "NX002", "unknown-key", Error,
        "A key the format does not define.",
        "Unknown keys are errors, never silently ignored: a misspelt key would otherwise change nothing. Rename it to the suggested key or remove it.";
    /// An id that does not match `^[a-z0-9][a-z0-9._-]{0,63}$`.
    InvalidId = "NX003", "invalid-id", Error,
        "An id that is not 1-64 lowercase letters, digits, `.`, `_` or `-` starting with a letter or digit.",
        "Ids are used as file names and in scenario ids (`<profile>:<probe>`), so they are restricted to `^[a-z0-9][a-z0-9._-]{0,63}$`. Rename the id and every reference to it.";
    /// A word that is not one of the allowed values.
    InvalidValue = "NX004", "invalid-value", Error,
        "A value that is not one of the allowed words.",
        "Use one of the listed words; the hint names the closest one.";
    /// A value of the wrong JSON type.
    WrongType = "NX005", "wrong-type", Error,
        "A value of the wrong type (e.g. a string where a list is expected).",
        "Write the value with the type the message names.";
    /// A required key is missing.
    MissingKey = "NX006", "missing-key", Error,
        "A required key is missing.",
        "Add the key; the schema in `schemas/` lists what each object needs.";
    /// A key written twice in one object.
    DuplicateKey = "NX007", "duplicate-key", Error,
        "A key written twice in the same object.",
        "JSON and YAML parsers silently keep one of the two values; remove the duplicate so the file says one thing.";
    /// A `schema_version` this build does not read.
    UnsupportedVersion = "NX008", "unsupported-schema-version", Error,
        "A `schema_version` this build does not read.",
        "Set `schema_version` to the version this build reads (1), or use the nexusmon release that reads this version.";
    /// A number, string or list outside its allowed range.
    OutOfRange = "NX009", "out-of-range", Error,
        "A number, string or list outside its allowed range.",
        "Use a value inside the range the message names.";
    /// An id defined or listed twice.
    DuplicateId = "NX010", "duplicate-id", Error,
        "An id defined or listed twice (two plans with one `plan_id`, a profile listed twice).",
        "Ids name bundles, scenarios and mappings; each must be unique where it is defined and listed once where it is used.";
    /// A file that cannot be read.
    UnreadableFile = "NX011", "unreadable-file", Error,
        "A file that cannot be read, or is not UTF-8.",
        "Check the file's permissions and encoding: plans and registries are UTF-8 JSON or YAML.";
    /// Two files for one role.
    AmbiguousFile = "NX012", "ambiguous-file", Error,
        "Two files for one role (e.g. `probes.json` and `probes.yaml` in one registry).",
        "Keep one: the tool would otherwise have to pick, and the other would be silently ignored.";
    /// Any other schema violation.
    SchemaViolation = "NX013", "schema-violation", Error,
        "A value the schema does not allow.",
        "The message says which rule the value breaks; `schemas/` holds the full schema.";
    /// A file over one of the input limits.
    InputLimit = "NX014", "input-limit", Error,
        "A file over one of the input limits: too large, nested too deeply, too many values (YAML aliases counted as the copies they expand to) or too long a string.",
        "Every input is read in bounded time and memory, so a file over a limit is refused before it is used; the message names the limit and the place it was exceeded (for a YAML alias bomb, the first alias over the budget). Real plans and registries are far below the limits: make the file smaller, use fewer YAML aliases, or split it.";
    /// Findings of one file beyond the number lint lists.
    FindingsOmitted = "NX015", "findings-omitted", Note,
        "A file with more findings than lint lists for one file; the rest are counted, not listed.",
        "Lint lists at most 1,000 findings per file (errors first) so that its time, memory and output stay bounded; the counts in the summary include the ones not listed. Fix the listed problems and run lint again.";

    /// A probe id that the registry does not define.
    UnknownProbe = "NX101", "unknown-probe", Error,
        "A probe id that the plan's registry does not define.",
        "Every probe a plan names (scenarios, controls, mission tasks) must be defined in `registry/<registry_id>/probes.json`. Fix the spelling (see the hint) or add the probe.";
    /// A profile id that the registry does not define.
    UnknownProfile = "NX102", "unknown-profile", Error,
        "A profile id that the plan's registry does not define.",
        "Every profile a plan names must be defined in `registry/<registry_id>/profiles.json`. Fix the spelling (see the hint) or add the profile.";
    /// A registry that cannot be found.
    UnknownRegistry = "NX103", "unknown-registry", Error,
        "The plan's `registry_id` names no `registry/<id>/` directory in the plan's directory or any parent.",
        "Fix `registry_id` (see the hint) or create the registry directory with `probes.json` and `profiles.json`.";
    /// A profile used in scenarios or tasks but not listed in `profiles`.
    ProfileNotSelected = "NX104", "profile-not-selected", Error,
        "A profile used by `scenarios` or a mission task but not listed in the plan's `profiles`.",
        "`profiles` is the list of profiles the plan runs; add the profile there or remove its scenarios.";
    /// `registry_id` differs from the registry's directory name.
    RegistryIdMismatch = "NX105", "registry-id-mismatch", Warning,
        "A registry file whose `registry_id` differs from its directory name.",
        "Plans find a registry by its directory name (`registry/<registry_id>/`); keep the id and the directory name equal.";
    /// `plan_id` differs from the plan's directory name.
    PlanIdMismatch = "NX106", "plan-id-mismatch", Warning,
        "A plan whose `plan_id` differs from its directory name.",
        "By convention `plans/<plan_id>/plan.json`; keeping them equal makes bundles and listings easy to trace back.";
    /// `depends_on` names a task that does not exist.
    UnknownTask = "NX107", "unknown-task", Error,
        "A mission task `depends_on` a task the mission does not define.",
        "Fix the task id (see the hint) or define the task.";
    /// A registry directory without both files, or whose files disagree.
    RegistryIncomplete = "NX108", "registry-incomplete", Error,
        "A registry directory without both `probes` and `profiles` files, or whose two files name different registries.",
        "A registry is `registry/<id>/probes.json` plus `registry/<id>/profiles.json` (or `.yaml`), both with the same `registry_id`.";
    /// A worker that the registry does not declare.
    UnknownWorker = "NX109", "unknown-worker", Error,
        "A mission task names a worker that the plan's registry does not declare in `workers.json`.",
        "Fix the worker's name (see the hint) or declare it in `registry/<registry_id>/workers.json`.";

    /// A target that does not fit the operation.
    BadTarget = "NX201", "bad-target", Error,
        "A probe target that does not fit its operation (`host:port`, a pid, `@name`).",
        "Network operations take `host:port` (IPv6 as `[addr]:port`), `signal-send` a pid or `${RUNNER_PID}`, `unix-abstract-connect` `@name`.";
    /// A path target that is not absolute.
    RelativePath = "NX202", "relative-path", Error,
        "A path that is not absolute after variable expansion.",
        "Probes run with a scratch working directory, so relative paths are ambiguous: start the path with `/` or a variable such as `${SCRATCH}`.";
    /// A builtin probe without a target.
    MissingTarget = "NX203", "missing-target", Error,
        "A probe without the `target` its operation needs.",
        "Builtin probes act on their target; exec probes that declare an operation other than `exec` name what the program acts on, so the oracle can predict it.";
    /// `destination` missing on `file-rename`, or present on another operation.
    BadDestination = "NX204", "bad-destination", Error,
        "`file-rename` without a `destination`, or a `destination` on another operation.",
        "Only `file-rename` has two paths: `target` (the file) and `destination` (its new name).";
    /// `operation: exec` with the builtin driver.
    ExecDriverMismatch = "NX205", "exec-driver-mismatch", Error,
        "`operation: exec` on a probe whose driver is not `exec`.",
        "`exec` runs a program, which only the `exec` driver does; set `driver: exec` and give `argv`.";
    /// An exec probe without a usable `argv`.
    BadArgv = "NX206", "bad-argv", Error,
        "An `exec` probe without `argv`, with an empty one, or whose program is not an absolute path.",
        "Exec probes run `argv` directly (never through a shell, never searching PATH): `argv[0]` must be an absolute path or start with a variable.";
    /// `argv` or exit codes on a builtin probe.
    ArgvOnBuiltin = "NX207", "argv-on-builtin", Error,
        "`argv`, `allow_exit_codes` or `deny_exit_codes` on a builtin probe.",
        "Builtin probes are performed by the runner itself; these keys only mean something with `driver: exec`.";
    /// An exit code listed as both allow and deny.
    ExitCodeOverlap = "NX208", "exit-code-overlap", Error,
        "An exit code listed in both `allow_exit_codes` and `deny_exit_codes`.",
        "Each exit code must classify one way.";
    /// A `${NAME}` that nothing defines.
    UndefinedVariable = "NX209", "undefined-variable", Error,
        "A `${NAME}` that neither the runner (`SCRATCH`, `HOME`, `RUNNER_PID`), the plan's `variables` nor a `tcp-listener` fixture defines.",
        "Define it in the plan's `variables`, or fix the name (see the hint).";
    /// An absolute machine path where a variable is meant.
    MachinePath = "NX210", "machine-path", Warning,
        "An absolute path tied to one machine or user (`/home/<user>`, `/root`, `/tmp/...`) where a variable is meant.",
        "Use `${HOME}` or `${SCRATCH}` so the plan means the same on every machine and in every run.";
    /// A writing probe whose target is not under `${SCRATCH}`.
    WriteOutsideScratch = "NX211", "write-outside-scratch", Error,
        "A probe that modifies the filesystem with a target outside `${SCRATCH}`.",
        "The baseline lane runs every probe without any policy: a writing probe aimed at a real path would really modify the host. Point it under `${SCRATCH}` and create what it needs with `fixtures`.";
    /// A fixture outside `${SCRATCH}`.
    FixtureOutsideScratch = "NX212", "fixture-outside-scratch", Error,
        "A fixture whose path is not under `${SCRATCH}`.",
        "Fixtures are created by the runner before a probe runs; they belong in the run's scratch directory, never on the host.";
    /// No timeout applies, so the runner default does.
    DefaultTimeout = "NX213", "default-timeout", Note,
        "No timeout is set for some scenarios, so the runner's default applies.",
        "Every child has a hard timeout. Set `timeout_ms` on the probe, `limits.wall_timeout_ms` on the profile or `execution.timeout_ms` on the plan to choose it; otherwise the default (10000 ms) applies and is recorded.";
    /// A malformed `${...}` reference.
    BadVariableSyntax = "NX214", "bad-variable-syntax", Error,
        "A malformed variable reference (`${` without `}`, or a name that is not `[A-Z][A-Z0-9_]*`).",
        "Write variables as `${NAME}` with an uppercase name.";
    /// `$NAME` without braces.
    UnbracedVariable = "NX215", "unbraced-variable", Warning,
        "`$NAME` without braces, which is not expanded.",
        "Only `${NAME}` is expanded; write `${NAME}`, or leave it if the `$` is meant literally.";
    /// A fixture variable that collides with another definition.
    VariableConflict = "NX216", "variable-conflict", Error,
        "A `tcp-listener` fixture variable that is also a builtin or a plan variable.",
        "The runner publishes the listener's port under that name; pick a name nothing else defines.";
    /// A plan variable nothing uses.
    UnusedVariable = "NX217", "unused-variable", Warning,
        "A plan variable that no probe, fixture or profile of the plan uses.",
        "Remove it, or use it: an unused variable often means a misspelt reference elsewhere.";
    /// A plan variable that shadows a builtin.
    BuiltinShadowed = "NX218", "builtin-shadowed", Error,
        "A plan variable named like a builtin (`SCRATCH`, `HOME`, `RUNNER_PID`).",
        "The runner sets the builtins for every run; a plan cannot override them. Rename the variable.";
    /// A non-builtin variable in a registry entry, defined by the plans that use it.
    PlanVariable = "NX219", "plan-variable", Note,
        "A registry entry uses a variable that is not a builtin, so every plan that uses the entry must define it.",
        "Plan-lint checks each plan that uses the entry; define the variable in those plans' `variables`.";
    /// A path through a per-process link the runner cannot resolve for the child.
    PerProcessPath = "NX220", "per-process-path", Error,
        "A target through a per-process link the oracle cannot resolve for the child (`/proc/self/fd`, `/proc/self/exe`, `/dev/fd`, `/dev/stdin`, …), or a rule path beneath `/proc/self`.",
        "The oracle runs in the runner and resolves targets as the child sees them: `/proc/self/<file>`, `/proc/self/cwd` and `/proc/self/root` are the child's, but its descriptors, executable and namespaces are not known before it runs. Rule paths are opened by the runner, so a rule beneath `/proc/self` would attach to the runner's process. Name the file the descriptor is for, or `/proc` for a rule.";
    /// A host path in an exec probe's `argv` that the probe does not declare in `reads`.
    ArgvHostPath = "NX221", "argv-host-path", Error,
        "An absolute path in an exec probe's `argv` outside `${SCRATCH}` and `${HOME}` that the probe does not declare as a read-only input in `reads`.",
        "The baseline lane runs the program without any policy, so a host path in its arguments could really be modified. If the program only reads the path, declare it in `reads` (the runner keeps it read-only in both lanes); if it writes, point it under `${SCRATCH}` and create what it needs with `fixtures`.";

    /// An access word, net key or scope above the pinned ABI.
    AboveAbi = "NX301", "above-abi", Error,
        "An access word, network key or scope that needs a newer Landlock ABI than the profile pins.",
        "`abi` pins what the profile means. Raise `abi` (the kernel must then support it, or the `hard` profile fails to apply) or drop the word. ABI 2 adds `rename`, 3 truncate (in `write`), 4 TCP, 5 `ioctl-dev`, 6 scopes, 9 `unix-connect`, 10 UDP.";
    /// A right granted by a rule but not handled.
    UnhandledRight = "NX302", "unhandled-right-granted", Warning,
        "An allow rule grants a right that `handle` does not list.",
        "Rights that are not handled are allowed everywhere, so granting one has no effect. Add it to `handle`, or drop it from the rule.";
    /// A nested rule that tries to restrict its ancestor.
    ExceptionRule = "NX303", "exception-rule", Warning,
        "An allow rule that adds nothing: it grants nothing, attaches where an earlier rule does, or every right it grants is granted by rules on directories above it (paths compared as the kernel resolves them).",
        "Valid and harmless: Landlock rules are allow-only unions along the path. It often means an intended exception — a rule beneath an allowed directory cannot take rights away, so \"allow /home except /home/.ssh\" cannot be expressed; narrow the ancestor rule to the sub-paths that should be allowed instead. A redundancy kept on purpose (a narrower rule that documents intent, as in landrun-style policies) is acknowledged with `allow_lint: [\"NX303\"]` on the rule or the profile.";
    /// A port listed twice.
    DuplicatePort = "NX304", "duplicate-port", Warning,
        "A port listed twice in one network rule.",
        "Remove the duplicate.";
    /// An rlimit or timeout that cannot work.
    BadLimit = "NX305", "bad-limit", Error,
        "A limit that cannot work (a CPU limit of 0 seconds, a wall timeout of 0 ms).",
        "Use a positive value, or remove the limit.";
    /// A malformed environment variable name.
    BadEnvName = "NX306", "bad-env-name", Error,
        "An `env.set` or `env.pass` name that is not a valid environment variable name.",
        "Environment names are `[A-Za-z_][A-Za-z0-9_]*`.";
    /// A rule that repeats another.
    RedundantRule = "NX307", "redundant-rule", Warning,
        "Retired: a rule on the same path as an earlier rule is reported as NX303, like every other kind of redundant rule.",
        "No longer reported; see NX303. The code stays reserved (codes are never reused).";
    /// A rule path that is not absolute.
    RelativeRulePath = "NX308", "relative-rule-path", Error,
        "An allow rule whose path is not absolute after variable expansion.",
        "Landlock rules are opened by path when the profile is compiled; start the path with `/` or a variable such as `${SCRATCH}`.";
    /// A profile that restricts nothing.
    EmptyProfile = "NX309", "empty-profile", Warning,
        "A profile that restricts nothing: no Landlock rules, no seccomp group, no limit, no environment change.",
        "Scenarios under it behave like the baseline; if that is the intent (a reference profile), say so in its description.";
    /// A best-effort profile.
    BestEffort = "NX310", "best-effort", Note,
        "A profile with `compat: best-effort`.",
        "The kernel enforces what it can and the downgrade is recorded; runs that downgraded are not promotable.";
    /// A Landlock block that handles nothing.
    NothingHandled = "NX311", "nothing-handled", Error,
        "A `landlock` block that handles no right: no filesystem rights, no network key, no scope.",
        "The kernel refuses an empty ruleset. Handle something, or remove the `landlock` block.";
    /// A limit that is legal but probably wrong.
    SuspiciousLimit = "NX312", "suspicious-limit", Warning,
        "A limit so low that most programs cannot start (e.g. `address_space_bytes` under 16 MiB, `open_files` 0).",
        "Check the unit: byte limits are in bytes, timeouts in milliseconds.";
    /// An `allow_lint` entry that cannot acknowledge anything.
    BadAllowLint = "NX313", "bad-allow-lint", Error,
        "An `allow_lint` entry that is not a lint code, or names an error (errors cannot be acknowledged).",
        "`allow_lint` acknowledges warnings and notes kept on purpose; an error means `run` would refuse the plan or the kernel would refuse the profile, so it must be fixed. Use the code of the warning (e.g. `NX303`).";
    /// An `allow_lint` entry nothing needs.
    UnusedAllowLint = "NX314", "unused-allow-lint", Warning,
        "An `allow_lint` entry whose code is not reported for the rule or profile it is on.",
        "The acknowledgement is stale (the finding was fixed, or the code is a typo of another): remove it, so a future finding of that code is seen.";

    /// A plan that selects no scenario.
    NoScenarios = "NX401", "no-scenarios", Error,
        "A plan that selects no scenario (and, for a mission, no task).",
        "A plan that runs nothing would exit 6 (nothing selected); add scenarios or controls for the listed profiles.";
    /// `kind` and the `mission` block disagree.
    MissionMismatch = "NX402", "mission-mismatch", Error,
        "`kind: mission` without a `mission` block, or a `mission` block in an experiment.",
        "Missions and experiments share one schema; the `mission` block is required exactly when `kind` is `mission`.";
    /// A cycle in the mission's task graph.
    TaskCycle = "NX403", "task-cycle", Error,
        "Mission tasks whose `depends_on` form a cycle.",
        "Tasks run in dependency order, so a cycle can never start. Break it by removing one of the named dependencies.";
    /// No lane enabled.
    NoLanes = "NX404", "no-lanes", Error,
        "A plan whose `lanes` are all `false`.",
        "Enable at least one of `baseline`, `scenario`, `oracle`.";
    /// A listed profile that runs nothing.
    UnusedProfile = "NX405", "unused-profile", Warning,
        "A profile listed in `profiles` with no scenario, control or task.",
        "It would be applied to nothing; add scenarios for it or remove it from `profiles`.";
    /// Two mission tasks with the same probe and profile.
    DuplicateTask = "NX406", "duplicate-task", Error,
        "Two mission tasks that run the same probe under the same profile.",
        "Each task is one scenario `<profile>:<probe>` in the bundle, so two tasks cannot share one; merge them, or give one of them its own probe.";
    /// A mission task and a declared scenario expect different decisions.
    TaskScenarioConflict = "NX407", "task-scenario-conflict", Error,
        "A mission task whose `expect` differs from the expectation `scenarios` declares for the same profile and probe.",
        "A task and a declared scenario with the same `<profile>:<probe>` are one row of the run; make their expectations agree or drop the scenario.";
    /// A mission task that names both a probe and a worker, or neither.
    TaskProbeOrWorker = "NX408", "task-probe-or-worker", Error,
        "A mission task that names both `probe` and `worker`, or neither, or passes `inputs` to a probe.",
        "A task runs exactly one probe or one worker; only workers take `inputs`.";
    /// A worker task whose profile or expectation does not fit its worker.
    WorkerTaskMismatch = "NX409", "worker-task-mismatch", Error,
        "A worker task whose `profile` is not the one its worker must run under, or that expects `deny`.",
        "A worker declares the profile it runs under; the task names that profile. A worker task succeeds when the worker does its work, so it expects `allow`.";
    /// A worker task's inputs do not match what the worker declares.
    BadInput = "NX410", "bad-input", Error,
        "A worker task passes an input the worker does not declare, misses a required one, or passes a value of the wrong type.",
        "Inputs are typed by the worker's declaration (`string`, `integer`, `boolean`, `artifact`); see the hint for what the worker takes.";
    /// An artifact input that names a file no earlier task produces.
    ArtifactInput = "NX411", "artifact-input", Error,
        "An `artifact` input that names a task that is not a worker task, or one the task does not depend on.",
        "An artifact input is `\"<task>/<file>\"`: a file a worker task produced; the consuming task must list that task in `depends_on` so the file exists first.";
    /// A mission with worker tasks that asks for the baseline lane.
    WorkerBaseline = "NX412", "worker-baseline", Error,
        "A mission with worker tasks that sets `lanes.baseline: true`.",
        "The baseline lane would run every worker a second time without its profile; workers run only under the profile they declare. Remove `\"baseline\": true`.";

    /// A worker's `command` that does not name an executable file of the project.
    BadWorkerCommand = "NX501", "bad-worker-command", Error,
        "A worker whose `command[0]` is not an executable file of the project (relative to the project root, no `..`).",
        "`command[0]` is the worker's executable (a script with a `#!` line and the executable bit, or a program), e.g. `workers/transform.py`; its bytes are digested into the plan digest and the run executes a checked copy.";
    /// A worker whose profile the registry does not define.
    UnknownWorkerProfile = "NX502", "unknown-worker-profile", Error,
        "A worker whose `profile` is not defined in the registry's `profiles.json`.",
        "A worker runs under a profile of its own registry; define it or fix the name.";
    /// A worker's profile grants writes outside the worker's output directory.
    WorkerWritesOutside = "NX503", "worker-writes-outside-output", Warning,
        "A worker's profile grants `write`, `create` or `remove` on a path other than `${OUTPUT}` (the worker's output directory) or beneath it.",
        "With such a rule the kernel lets the worker write outside its output directory; the runner still fails the task if it changed the mission workspace, but nothing stops it elsewhere. Grant writes on `${OUTPUT}` only.";
    /// A worker whose timeout is very long.
    WorkerTimeout = "NX504", "worker-timeout", Warning,
        "A worker whose `timeout_ms` is over ten minutes.",
        "A hung worker holds the mission until its timeout; keep it as short as the work allows.";
}

impl Code {
    /// True for problems that cause findings elsewhere (a file that cannot be read or
    /// parsed, a registry that cannot be found or is incomplete): reported first.
    pub fn is_root_cause(self) -> bool {
        matches!(
            self,
            Code::Syntax
                | Code::UnreadableFile
                | Code::AmbiguousFile
                | Code::InputLimit
                | Code::UnknownRegistry
                | Code::RegistryIncomplete
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_sorted_and_well_formed() {
        let ids: Vec<&str> = Code::ALL.iter().map(|c| c.id()).collect();
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(ids, sorted, "codes must be unique and listed in id order");
        for c in Code::ALL {
            assert!(c.id().starts_with("NX") && c.id().len() == 5, "{}", c.id());
            assert!(!c.short().is_empty() && !c.help().is_empty());
            assert!(
                c.name()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'-')
            );
        }
    }
}
