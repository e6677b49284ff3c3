//! Templates and plan-build (`DESIGN.md` §3.4).
