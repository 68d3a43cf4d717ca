//! The TypeScript declarations of the wire types (feature `ts`), which the
//! browser SDK imports from `clients/js/src/generated/` instead of keeping a
//! hand copy that drifts from this crate.
//!
//! The derives are `ts_rs::TS` next to each type's serde derive, so the
//! declarations follow the serde attributes (`tag`, `rename_all`,
//! `flatten`, `skip_serializing_if` with `default` → an optional field).
//! Where serde's attribute says nothing ts-rs can read (`with = …` for the
//! RFC 3339 times, a JSON value that is always an object, a free string the
//! server checks as a severity or a category), the field carries a
//! `ts(type)` or `ts(as)` saying what is on the wire.
//!
//! `ts(optional_fields)` on a type makes each `Option` field skipped when
//! `None` an optional `f?: T` (the server never sends `null` for those),
//! where ts-rs would say `f?: T | null`. It also makes ts-rs forget that a
//! field of another type skipped when empty (`tags`, `critical`…) may be
//! absent; those carry `ts(optional = nullable)`, which for a type that is
//! not an `Option` reads "optional, of its own type": `tags?: Array<string>`.
//! `Reply::rid` is never skipped (`null` when the request had none):
//! `ts(optional = false)`. `tests/typescript.rs` checks, for the types the
//! server sends, that a field is optional exactly when serde leaves it out.
//!
//! The files are committed; `tests/typescript.rs` fails when they differ
//! from what [`export`] writes, and rewrites them with `HERALD_WRITE_TS=1`
//! (`make ts-types`).

use std::path::Path;

use ts_rs::{Config, ExportError, TS};

use crate::{ClientFrame, MarkSelector, ServerFrame};

/// Where the committed declarations live, from the repository root.
pub const GENERATED_DIR: &str = "clients/js/src/generated";

/// The settings of the generated files: every integer is a `number` (seqs
/// and counts stay far below 2^53, and the SDK does arithmetic on them; a
/// `bigint` would not even parse from `JSON.parse`), and imports name the
/// `.js` file, as the SDK's own do, so the emitted `.d.ts` resolve under
/// `moduleResolution: node16` too.
pub fn config(dir: &Path) -> Config {
    Config::new()
        .with_large_int("number")
        .with_import_extension(Some("js"))
        .with_out_dir(dir)
}

/// Writes one `<Type>.ts` per wire type into `dir`: both frame unions and
/// everything they reach, and `MarkSelector` (flattened into the `mark`
/// frame, so not reached; the SDK checks its own stricter selector against
/// it). `dir` should be empty: ts-rs merges a type into a file that exists
/// rather than replacing it.
pub fn export(dir: &Path) -> Result<(), ExportError> {
    let cfg = config(dir);
    ClientFrame::export_all(&cfg)?;
    ServerFrame::export_all(&cfg)?;
    MarkSelector::export_all(&cfg)?;
    Ok(())
}
