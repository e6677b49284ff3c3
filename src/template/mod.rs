//! Templates and `plan-build`: plan authors start from a template, not a
//! blank file.
//!
//! A template (`templates/<template_id>/template.json`, YAML accepted; model in
//! [`crate::model::template`]) declares typed parameters ([`params`]) and a body written in
//! a small expansion language ([`expand`]). Building it ([`build`]) resolves `--set`
//! values, names the plan and its registry after the non-default parameters, expands the
//! body, writes the files to a private temp dir and lints and loads them there with the same
//! code `plan-lint` and `run` use, and only then writes them into the out directory, file by
//! file and atomically, refusing to replace anything without `--overwrite`.
//!
//! Where templates come from ([`catalog`], [`find`]): the project's `templates/` directory
//! first, then the templates built into the binary ([`builtin`], the repository's
//! `templates/` at compile time), so `plan-build` works in any directory. A project
//! template shadows a built-in one with the same id.
//!
//! Loading ([`Template::parse`]) checks everything that does not depend on values: the file
//! against its type (unknown keys, types), every parameter declaration and default, reserved
//! names, and every directive, reference, filter and condition of the body. Rendering with
//! the defaults ([`Template::check_defaults`]) then catches what only values reveal (a
//! generated id that is not an id, a plan that does not deserialize).

pub mod build;
pub mod builtin;
pub mod expand;
pub mod export;
pub mod params;
pub mod render;
pub mod worker;
pub mod yaml;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::model::SCHEMA_VERSION;
use crate::model::template::TemplateFile;
use crate::source::{Document, NodeKind};
use crate::util::{fsx, suggest};
use crate::{Error, Result};

pub use build::{BuildOptions, BuildReport, build};
pub use params::{Param, Resolved};
pub use render::{Rendered, render};

/// Longest template id: `<template_id>-<8 hex>` must still be an id (64 characters).
pub const TEMPLATE_ID_MAX: usize = 55;

/// Keys of a plan that the build sets; a template's `plan` body may not.
pub const BUILD_OWNED_PLAN_KEYS: [&str; 4] =
    ["$schema", "schema_version", "plan_id", "registry_id"];

/// Where a template comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// `<project>/templates/<id>/template.*`.
    Project,
    /// Built into the binary.
    BuiltIn,
}

impl Origin {
    /// `project` / `built-in`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Origin::Project => "project",
            Origin::BuiltIn => "built-in",
        }
    }
}

/// A loaded, checked template.
#[derive(Debug, Clone)]
pub struct Template {
    /// The file.
    pub file: TemplateFile,
    /// The parameters in declaration order, then the built-in `format`.
    pub params: Vec<Param>,
    /// The parsed document (for line and column in errors).
    pub doc: Document,
    /// The file's path (for built-in templates: `templates/<id>/template.json`, relative).
    pub path: PathBuf,
    /// Where it comes from.
    pub origin: Origin,
}

/// One problem in a template file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// JSON pointer.
    pub pointer: String,
    /// What is wrong.
    pub message: String,
    /// What to do.
    pub hint: Option<String>,
}

impl Template {
    /// The template's id.
    pub fn id(&self) -> &str {
        self.file.template_id.as_str()
    }

    /// How the file is named in messages.
    pub fn shown_path(&self) -> String {
        match self.origin {
            Origin::Project => self.path.display().to_string(),
            Origin::BuiltIn => format!("{} (built-in)", self.path.display()),
        }
    }

    /// Parse and check a template from its text. `dir_name` is the directory the file is in
    /// (its id must match it).
    pub fn parse(path: &Path, text: String, origin: Origin, dir_name: &str) -> Result<Self> {
        let doc = Document::parse(path, text).map_err(|e| crate::source::syntax_error(path, &e))?;
        let file: TemplateFile = doc
            .deserialize()
            .map_err(|e| crate::load::typed_error(&doc, &e))
            .map_err(|e| {
                let msg = e.message().to_string();
                Error::input(path, msg)
                    .with_hint("the template format is described by schemas/template.schema.json")
            })?;
        let mut problems: Vec<Problem> = Vec::new();
        let push =
            |problems: &mut Vec<Problem>, pointer: &str, message: String, hint: Option<String>| {
                problems.push(Problem {
                    pointer: pointer.to_string(),
                    message,
                    hint,
                });
            };
        if file.schema_version != SCHEMA_VERSION {
            push(
                &mut problems,
                "/schema_version",
                format!(
                    "schema_version {} is not supported by this build (it reads {SCHEMA_VERSION})",
                    file.schema_version
                ),
                Some(format!("set \"schema_version\": {SCHEMA_VERSION}")),
            );
        }
        let id = file.template_id.as_str();
        if id.len() > TEMPLATE_ID_MAX {
            push(
                &mut problems,
                "/template_id",
                format!(
                    "template id `{id}` is {} characters; at most {TEMPLATE_ID_MAX} leave room for the `-<digest>` of plans built with non-default parameters",
                    id.len()
                ),
                None,
            );
        }
        if id != dir_name {
            push(
                &mut problems,
                "/template_id",
                format!("template_id `{id}` does not match its directory `{dir_name}`"),
                Some(format!(
                    "set \"template_id\": \"{dir_name}\" or rename the directory"
                )),
            );
        }
        // Parameters in the order they are written.
        let order = parameter_order(&doc);
        let all: std::collections::BTreeMap<String, crate::model::template::ParamSpec> = file
            .parameters
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        let mut params = Vec::new();
        for name in &order {
            let Some(spec) = all.get(name) else { continue };
            let ptr = format!("/parameters/{}", crate::source::escape_pointer_token(name));
            match params::check_spec(name, spec, &all) {
                Ok(default) => params.push(Param {
                    name: name.clone(),
                    spec: spec.clone(),
                    default,
                    builtin: false,
                }),
                Err(m) => push(
                    &mut problems,
                    &ptr,
                    format!("parameter `{name}`: {m}"),
                    None,
                ),
            }
        }
        params.push(params::format_param(file.output_format.unwrap_or_default()));
        for key in BUILD_OWNED_PLAN_KEYS {
            if file.plan.contains_key(key) {
                push(
                    &mut problems,
                    &format!("/plan/{}", crate::source::escape_pointer_token(key)),
                    format!("`{key}` is set by plan-build; a template's plan body leaves it out"),
                    Some(
                        "remove it: the build writes it from the template id and the parameters"
                            .into(),
                    ),
                );
            }
        }
        if problems.is_empty() {
            let types = expand::Types::new(&params);
            for (name, body) in [
                ("plan", &file.plan),
                ("probes", &file.probes),
                ("profiles", &file.profiles),
            ] {
                for e in expand::check(body, &format!("/{name}"), &types) {
                    push(&mut problems, &e.pointer, e.message, e.hint);
                }
            }
        }
        let t = Self {
            file,
            params,
            doc,
            path: path.to_path_buf(),
            origin,
        };
        if problems.is_empty() {
            Ok(t)
        } else {
            Err(t.problems_error(&problems))
        }
    }

    /// An error listing `problems` as `file:line:column: message` (up to 8, then a count).
    pub fn problems_error(&self, problems: &[Problem]) -> Error {
        let mut msg = format!(
            "template `{}` is invalid: {} problem{}",
            self.id(),
            problems.len(),
            if problems.len() == 1 { "" } else { "s" }
        );
        for p in problems.iter().take(8) {
            let loc = self.doc.locate(&p.pointer);
            let pos = loc.key_span.unwrap_or(loc.value_span).start;
            let _ = write!(
                msg,
                "\n  {}:{}:{}: {}",
                self.shown_path(),
                pos.line,
                pos.col,
                p.message
            );
            if let Some(h) = &p.hint {
                let _ = write!(msg, " ({h})");
            }
        }
        if problems.len() > 8 {
            let _ = write!(msg, "\n  … and {} more", problems.len() - 8);
        }
        Error::usage(msg)
            .with_hint("fix the template; `nexusmon list-templates` checks every template")
    }

    /// Render with every default, to catch what only values reveal. Templates with a
    /// required parameter (no default) are checked by their static checks only.
    pub fn check_defaults(&self) -> Result<()> {
        if self.params.iter().any(|p| p.default.is_none()) {
            return Ok(());
        }
        let resolved = params::resolve(self.id(), &self.params, &[])?;
        // The scenario cap is the build's choice (`plan-build --max-scenarios`); the input
        // budget still bounds what the defaults expand to.
        render::render(self, &resolved, usize::MAX).map(|_| ())
    }

    /// True if the template has a parameter without a default.
    pub fn has_required(&self) -> bool {
        self.params.iter().any(|p| p.default.is_none())
    }
}

/// The names of `/parameters` in the order they are written.
fn parameter_order(doc: &Document) -> Vec<String> {
    let NodeKind::Object(members) = &doc.root.kind else {
        return Vec::new();
    };
    members
        .iter()
        .rev()
        .find(|m| m.key == "parameters")
        .and_then(|m| match &m.value.kind {
            NodeKind::Object(ps) => {
                let mut seen: Vec<String> = Vec::new();
                for p in ps {
                    if !seen.iter().any(|k| p.key == *k) {
                        seen.push(p.key.to_string());
                    }
                }
                Some(seen)
            }
            _ => None,
        })
        .unwrap_or_default()
}

/// One template of the catalog: loaded, or the error that kept it from loading.
#[derive(Debug)]
pub struct Entry {
    /// The template id (its directory name).
    pub id: String,
    /// Where it comes from.
    pub origin: Origin,
    /// The file.
    pub path: PathBuf,
    /// The template, or why it is invalid.
    pub template: Result<Template>,
}

/// The template files of `<root>/templates/`: `(id, file)`, sorted by id.
fn project_files(root: &Path) -> Result<Vec<(String, Result<PathBuf>)>> {
    let dir = root.join("templates");
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for d in fsx::read_dir_sorted(&dir)? {
        if !d.is_dir() {
            continue;
        }
        let Some(name) = d.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        out.push((name, crate::load::find_data_file(&d, "template")));
    }
    Ok(out)
}

fn load_project(id: &str, file: Result<PathBuf>) -> (PathBuf, Result<Template>) {
    match file {
        Err(e) => (PathBuf::new(), Err(e)),
        Ok(path) => {
            let t = fsx::read_document(&path)
                .and_then(|text| Template::parse(&path, text, Origin::Project, id))
                .and_then(|t| t.check_defaults().map(|()| t));
            (path, t)
        }
    }
}

fn load_builtin(b: &builtin::BuiltIn) -> Result<Template> {
    let path = PathBuf::from(format!("templates/{}/{}", b.id, b.file));
    let t = Template::parse(&path, b.text.to_string(), Origin::BuiltIn, b.id)?;
    t.check_defaults()?;
    Ok(t)
}

/// Every template: the project's (`<root>/templates/`), then the built-in ones it does not
/// shadow, sorted by id. Templates that do not load are listed with their error.
pub fn catalog(root: &Path) -> Result<Vec<Entry>> {
    let mut out = Vec::new();
    for (id, file) in project_files(root)? {
        let (path, template) = load_project(&id, file);
        out.push(Entry {
            id,
            origin: Origin::Project,
            path,
            template,
        });
    }
    for b in builtin::BUILTIN {
        if out.iter().any(|e| e.id == b.id) {
            continue;
        }
        out.push(Entry {
            id: b.id.to_string(),
            origin: Origin::BuiltIn,
            path: PathBuf::from(format!("templates/{}/{}", b.id, b.file)),
            template: load_builtin(b),
        });
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

/// The template `id`: the project's, else the built-in one. An unknown id is a usage error
/// with "did you mean" and the list of templates.
pub fn find(root: &Path, id: &str) -> Result<Template> {
    let project = project_files(root)?;
    if let Some((pid, file)) = project.into_iter().find(|(p, _)| p == id) {
        return load_project(&pid, file).1;
    }
    if let Some(b) = builtin::BUILTIN.iter().find(|b| b.id == id) {
        return load_builtin(b);
    }
    let mut known: Vec<String> = builtin::BUILTIN.iter().map(|b| b.id.to_string()).collect();
    known.extend(project_files(root)?.into_iter().map(|(p, _)| p));
    known.sort();
    known.dedup();
    let hint = match suggest::did_you_mean(id, known.iter().map(String::as_str)) {
        Some(s) => format!("did you mean `{s}`?"),
        None => format!(
            "templates: {}; `nexusmon list-templates` describes them",
            known
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    Err(Error::usage(format!("no template `{id}`")).with_hint(hint))
}
