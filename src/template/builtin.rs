//! The templates built into the binary: the repository's `templates/` at compile time, so
//! `plan-build` works in any directory. A test checks that this list is exactly the
//! shipped templates named in the tests' `SHIPPED` list (a new template goes in both).

/// One built-in template.
#[derive(Debug, Clone, Copy)]
pub struct BuiltIn {
    /// The template id (its directory name).
    pub id: &'static str,
    /// The file name in that directory.
    pub file: &'static str,
    /// The file's text.
    pub text: &'static str,
}

macro_rules! builtin {
    ($($id:literal),* $(,)?) => {
        /// Every built-in template, sorted by id.
        pub const BUILTIN: &[BuiltIn] = &[
            $(BuiltIn {
                id: $id,
                file: "template.json",
                text: include_str!(concat!("../../templates/", $id, "/template.json")),
            },)*
        ];
    };
}

builtin!(
    "build-tool",
    "exec-allowlist",
    "readonly-system",
    "tcp-egress-allowlist",
    "workspace-confinement",
);
