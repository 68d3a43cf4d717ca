//! Herald's Lua as one Redis Functions library (`FUNCTION LOAD`, `FCALL`).
//!
//! Every script of the backend is a function of one library, assembled from
//! the `.lua` files under `src/lua/`. The library is compiled by Redis once
//! per load, so its helpers (the stream helpers in `stream.lua`: retention,
//! un-counting, collapse, …) are defined once, not on every call as the
//! `prelude .. body` of an `EVALSHA` script was.
//!
//! The library's name carries a version, `herald_<12 hex digits of the
//! SHA-1 of its code>`, and so does each function (`herald_<v>_append_many`):
//! function names are global to a Redis server, and during a rolling deploy
//! nodes of two versions must each call their own code. A version's library
//! stays loaded until someone deletes it (`FUNCTION DELETE herald_<v>`);
//! an old one costs only its memory.
//!
//! Loaded at connect (`FUNCTION LOAD REPLACE`, on every primary of a
//! Cluster) and again whenever a call answers that its function does not
//! exist: a server restarted without persistence, a node added to a
//! Cluster, a `FUNCTION FLUSH`. (A replica promoted by a failover has the
//! library: `FUNCTION LOAD` is replicated.)

use std::sync::LazyLock;

use fred::interfaces::FunctionInterface;
use fred::types::Version;
use herald_core::{CoreError, Result};

use crate::unavailable;

/// The library's files, in load order: `stream.lua` defines the helpers
/// the others call; each other file registers the functions of one part of
/// the backend.
const PARTS: [&str; 14] = [
    include_str!("lua/stream.lua"),
    include_str!("lua/append_many.lua"),
    include_str!("lua/stream_reads.lua"),
    include_str!("lua/counts.lua"),
    include_str!("lua/conversations.lua"),
    include_str!("lua/preferences.lua"),
    include_str!("lua/capped_set.lua"),
    include_str!("lua/idempotency.lua"),
    include_str!("lua/jobs.lua"),
    include_str!("lua/schedule.lua"),
    include_str!("lua/snooze.lua"),
    include_str!("lua/webhooks.lua"),
    include_str!("lua/presence.lua"),
    include_str!("lua/erase.lua"),
];

/// The oldest Redis with Functions.
const OLDEST: Version = Version::new(7, 0, 0);

/// The library of this build: its versioned name and its code.
pub(crate) struct Library {
    /// `herald_<version>`; functions are named `herald_<version>_<name>`.
    name: String,
    /// What `FUNCTION LOAD` gets.
    code: String,
}

static LIBRARY: LazyLock<Library> = LazyLock::new(Library::build);

impl Library {
    fn build() -> Library {
        // Rust's constants the Lua uses, so that no test has to keep a
        // copy in the Lua in sync.
        let suffixes: Vec<String> = crate::keys::LUA_SUFFIXES
            .iter()
            .map(|(name, suffix)| format!("{name} = '{suffix}'"))
            .collect();
        let constants = format!(
            "local MAX_PEERS = {}\nlocal KEY = {{{}}}\n",
            herald_core::MAX_PEERS,
            suffixes.join(", ")
        );
        let body = format!("{constants}{}", PARTS.join("\n"));
        let version = &fred::util::sha1_hash(&body)[..12];
        let name = format!("herald_{version}");
        let code = format!(
            "#!lua name={name}\n\
             local function register(name, f) redis.register_function('{name}_' .. name, f) end\n\
             {body}"
        );
        Library { name, code }
    }
}

/// The name `FCALL` calls the library's function `name` by.
pub(crate) fn function_name(name: &str) -> String {
    format!("{}_{name}", LIBRARY.name)
}

/// The library's name (`herald_<version>`), as `FUNCTION LIST` shows it.
pub fn library_name() -> &'static str {
    &LIBRARY.name
}

/// Whether a call failed because the server does not hold the function.
pub(crate) fn is_missing(err: &fred::error::Error) -> bool {
    err.details().contains("Function not found")
}

/// Refuses a server older than Redis 7.0 (no Functions), then loads the
/// library. Run once per backend, at connect; `version` is the server's as
/// fred read it at connect (`None` if it could not).
pub(crate) async fn install(
    client: &impl FunctionInterface,
    version: Option<Version>,
) -> Result<()> {
    if let Some(v) = version {
        check_version(&v)?;
    }
    load(client).await
}

/// `FUNCTION LOAD REPLACE` of the library, on every primary of a Cluster.
/// REPLACE, so that a load racing another node's (or a reload after a
/// miss) is not an error: the code of one name is always the same.
pub(crate) async fn load(client: &impl FunctionInterface) -> Result<()> {
    client
        .function_load_cluster::<fred::prelude::Value, _>(true, LIBRARY.code.as_str())
        .await
        .map(drop)
        .map_err(|err| {
            if err
                .details()
                .to_ascii_lowercase()
                .contains("unknown command")
            {
                too_old("a server without FUNCTION LOAD")
            } else {
                unavailable(err)
            }
        })
}

fn check_version(version: &Version) -> Result<()> {
    if *version < OLDEST {
        return Err(too_old(&format!("Redis {version}")));
    }
    Ok(())
}

fn too_old(what: &str) -> CoreError {
    CoreError::Invalid(format!(
        "redis: {what} is too old: Herald needs Redis 7.0 or newer (its Lua is a Redis Functions library)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_before_7_are_refused() {
        for old in ["6.2.14", "6.0.0", "5.0.7"] {
            let err = check_version(&Version::parse(old).unwrap()).unwrap_err();
            assert!(err.to_string().contains("Redis 7.0 or newer"), "{err}");
        }
        for new in ["7.0.0", "7.0.15", "7.2.4", "8.0.1"] {
            check_version(&Version::parse(new).unwrap()).unwrap();
        }
    }

    #[test]
    fn the_library_is_named_by_its_version() {
        let lib = &*LIBRARY;
        assert!(lib.code.starts_with(&format!("#!lua name={}\n", lib.name)));
        assert_eq!(lib.name.len(), "herald_".len() + 12);
        assert_eq!(function_name("read"), format!("{}_read", lib.name));
        assert!(lib
            .code
            .contains(&format!("local MAX_PEERS = {}\n", herald_core::MAX_PEERS)));
        assert!(lib
            .code
            .contains("local KEY = {seq = 'seq', inbox = 'inbox', "));
    }
}
