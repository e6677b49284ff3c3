//! Plan and registry lint (`DESIGN.md` §4): every finding at once, each with a stable code,
//! severity, file, line, column, JSON pointer, message and hint. Lint reads files only.
