//! The command layer: clap definitions ([`args`]) and one handler module per command group.
//! Handlers resolve arguments into library settings, call the library, and write to the
//! [`Io`] they are given; they never call `print!` or `exit`. [`run`] is the one entry
//! point `main.rs` calls; it renders errors in one place and returns the exit code.

pub mod args;
mod bundle;
mod govern;
mod learn;
mod lint;
mod list;
mod misc;
mod promote;
pub mod render;
mod review;
mod run;
mod sandbox;
mod serve;
mod status;
mod template;

use std::io::Write;
use std::path::PathBuf;

pub use args::Cli;
use args::{ColorChoice, Command, GlobalArgs};

use crate::util::term::Term;
use crate::{Error, Result, exit_code};

/// Where command output goes. `main.rs` passes the process's stdout and stderr; tests pass
/// buffers.
///
/// Both streams are [`Term`] writers: everything written to them is human output and has
/// its control characters escaped ([`crate::util::term`]), whatever it came from (a file
/// name, a probe's output, an error message); this is the choke point, so no handler has to
/// remember it. JSON goes out byte-exact through [`Io::out_json`] (or the whole of stdout
/// with `--json`), since JSON escapes control characters itself.
pub struct Io<'a> {
    /// Machine output (and human output of listing commands).
    pub out: Term<'a>,
    /// Human diagnostics, progress, summaries.
    pub err: Term<'a>,
    /// Whether stderr is a terminal (progress bars only then).
    pub err_is_tty: bool,
    /// Whether stdout is a terminal.
    pub out_is_tty: bool,
}

impl std::fmt::Debug for Io<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Io")
            .field("err_is_tty", &self.err_is_tty)
            .finish_non_exhaustive()
    }
}

impl<'a> Io<'a> {
    /// The process's (or a test's) streams, escaped for a terminal, colour off until
    /// [`run`] decides.
    pub fn new(
        out: &'a mut dyn Write,
        err: &'a mut dyn Write,
        out_is_tty: bool,
        err_is_tty: bool,
    ) -> Self {
        Self {
            out: Term::new(out),
            err: Term::new(err),
            err_is_tty,
            out_is_tty,
        }
    }

    /// Write machine output (JSON) to stdout byte-exact, bypassing the terminal escaping.
    pub fn out_json(&mut self, b: &[u8]) -> Result<()> {
        self.out
            .raw()
            .write_all(b)
            .map_err(|e| Error::io("write", "<stdout>", e))
    }

    /// Write a line to stdout, naming stdout in the error.
    pub fn outln(&mut self, s: impl AsRef<str>) -> Result<()> {
        writeln!(self.out, "{}", s.as_ref()).map_err(|e| Error::io("write", "<stdout>", e))
    }

    /// Write a line to stderr.
    pub fn errln(&mut self, s: impl AsRef<str>) -> Result<()> {
        writeln!(self.err, "{}", s.as_ref()).map_err(|e| Error::io("write", "<stderr>", e))
    }

    /// Write human text to stdout (escaped).
    pub fn out_bytes(&mut self, b: &[u8]) -> Result<()> {
        self.out
            .write_all(b)
            .map_err(|e| Error::io("write", "<stdout>", e))
    }
}

/// Resolved global settings every handler gets.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// `--json`.
    pub json: bool,
    /// `-q`.
    pub quiet: bool,
    /// `-v` count.
    pub verbose: u8,
    /// Whether to colour stderr.
    pub color: bool,
    /// Whether to colour stdout (the same choice, judged for stdout's terminal).
    pub color_out: bool,
    /// The project root.
    pub root: PathBuf,
    /// Whether `--root` (or `NEXUSMON_ROOT`) named it.
    pub root_given: bool,
    /// `--state-dir`, if given.
    pub state_dir: Option<PathBuf>,
    /// The current directory.
    pub cwd: PathBuf,
}

impl Ctx {
    fn resolve(g: &GlobalArgs, err_is_tty: bool, out_is_tty: bool) -> Result<Self> {
        let cwd =
            std::env::current_dir().map_err(|e| Error::io("read the current directory", ".", e))?;
        let root = match &g.root {
            Some(r) => crate::util::fsx::absolute(r)?,
            None => crate::load::find_project_root(&cwd),
        };
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let color_for = |is_tty: bool| match g.color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => is_tty && !no_color,
        };
        let (color, color_out) = (color_for(err_is_tty), color_for(out_is_tty));
        Ok(Self {
            json: g.json,
            quiet: g.quiet,
            verbose: g.verbose,
            color,
            color_out,
            root,
            root_given: g.root.is_some(),
            state_dir: g.state_dir.clone(),
            cwd,
        })
    }

    /// The default out root: `<root>/out`.
    pub fn default_out(&self) -> PathBuf {
        self.root.join("out")
    }

    /// `--scratch-parent` (or `NEXUSMON_SCRATCH_PARENT`), resolved against the current
    /// directory and checked (`Scratch::resolve_parent`); `None`: the default parent.
    pub fn scratch_parent(&self, a: &args::ScratchParentArg) -> Result<Option<PathBuf>> {
        a.scratch_parent
            .as_ref()
            .map(|p| crate::exec::fixtures::Scratch::resolve_parent(&self.cwd.join(p)))
            .transpose()
    }
}

/// Run a parsed command line; returns the process exit code. Errors are rendered here, once:
/// `error: <message>`, `  hint: …`, `  caused by: …` on stderr, and with `--json` also an
/// `{"error": …}` object on stdout.
pub fn run(cli: Cli, io: &mut Io<'_>) -> i32 {
    let json = cli.global.json;
    if json {
        // All of stdout is JSON: byte-exact.
        io.out.set_raw(true);
    }
    let result = Ctx::resolve(&cli.global, io.err_is_tty, io.out_is_tty).and_then(|ctx| {
        io.err.set_color(ctx.color);
        io.out.set_color(ctx.color_out);
        dispatch(cli.command, &ctx, io)
    });
    match result {
        Ok(code) => code,
        Err(e) if e.is_broken_pipe() => exit_code::OK,
        Err(e) => {
            render::error(&e, json, io);
            e.exit_code()
        }
    }
}

fn dispatch(command: Command, ctx: &Ctx, io: &mut Io<'_>) -> Result<i32> {
    match command {
        Command::Run(a) => run::run(ctx, io, &a),
        Command::MergeBundles(a) => bundle::merge(ctx, io, &a),
        Command::Export(a) => template::export(ctx, io, &a),
        Command::Sandbox(a) => sandbox::sandbox(ctx, io, &a),
        Command::Learn(a) => learn::learn(ctx, io, &a),
        Command::Status(a) => status::status(ctx, io, &a),
        Command::ValidateBundle(a) => bundle::validate(ctx, io, &a),
        Command::ReindexBundle(a) => bundle::reindex(ctx, io, &a),
        Command::EmitPromotion(a) => promote::emit(ctx, io, &a),
        Command::SummarizeOps(a) => promote::summarize_ops(ctx, io, &a),
        Command::Promote(a) => promote::promote(ctx, io, &a),
        Command::ListPlans(a) => list::list_plans(ctx, io, &a),
        Command::PlanLint(a) => lint::plan_lint(ctx, io, &a),
        Command::ListRegistries => list::list_registries(ctx, io),
        Command::ListProbes(a) => list::list_probes(ctx, io, &a),
        Command::ListProfiles(a) => list::list_profiles(ctx, io, &a),
        Command::DescribeProbe(a) => list::describe_probe(ctx, io, &a),
        Command::DescribeProfile(a) => list::describe_profile(ctx, io, &a),
        Command::RegistryLint(a) => lint::registry_lint(ctx, io, &a),
        Command::ListTemplates => template::list_templates(ctx, io),
        Command::PlanBuild(a) => template::plan_build(ctx, io, &a),
        Command::WorkerNew(a) => template::worker_new(ctx, io, &a),
        Command::Evolve(a) => govern::evolve(ctx, io, &a),
        Command::Evolution(a) => govern::evolution(ctx, io, &a),
        Command::Approve(a) => govern::approve(ctx, io, &a),
        Command::Report(a) => review::report(ctx, io, &a),
        Command::Diff(a) => review::diff(ctx, io, &a),
        Command::Review(a) => review::review(ctx, io, &a),
        Command::Serve(a) => serve::serve(ctx, io, &a),
        Command::Trust(a) => review::trust(ctx, io, &a),
        Command::Audit(a) => govern::audit(ctx, io, &a),
        Command::Omens(a) => govern::omens(ctx, io, &a),
        Command::Missions(a) => govern::missions(ctx, io, &a),
        Command::Init(a) => govern::init(ctx, io, &a),
        Command::Completions(a) => misc::completions(io, &a),
        Command::Probe(a) => Ok(crate::exec::probe_helper_main(&a.args, io.out.raw())),
        #[cfg(feature = "fault-injection")]
        Command::BundleWrite(a) => bundle::bundle_write(ctx, io, &a),
    }
}
