#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ for FUZZ_SECS seconds each (default 20;
# docs/security.md has a longer run's figures). Needs the nightly toolchain
# and cargo-fuzz; installs cargo-fuzz when missing, and says SKIP (exit 0)
# with the reason when it cannot.
#
# `scripts/fuzz.sh --check` (what CI runs) only checks that every target
# still compiles against the crates it fuzzes, on the stable toolchain and
# in the workspace's target/ (so the dependencies `make lint` checked are
# reused: about a minute, where the fuzzing build takes ten on two cores).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--check" ]; then
  cargo check --manifest-path fuzz/Cargo.toml --target-dir target --bins
  echo "fuzz targets compile"
  exit 0
fi
FUZZ_SECS=${FUZZ_SECS:-20}
if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  echo "SKIP fuzzing: no nightly toolchain (rustup toolchain install nightly)"
  exit 0
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz"
  if ! cargo install cargo-fuzz --locked >/dev/null 2>&1; then
    echo "SKIP fuzzing: cargo-fuzz could not be installed"
    exit 0
  fi
fi
cd fuzz
for target in $(cargo +nightly fuzz list); do
  mkdir -p "corpus/$target"
  # Built first, on its own: a target that no longer compiles fails here
  # instead of vanishing in the filtered output of the run below.
  cargo +nightly fuzz build "$target"
  echo "== fuzz $target for ${FUZZ_SECS}s"
  cargo +nightly fuzz run "$target" "corpus/$target" -- \
    -max_total_time="$FUZZ_SECS" -max_len=65536 -print_final_stats=1 2>&1 \
    | grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|==|INFO: Done|SUMMARY|.*panicked)' || true
  # cargo fuzz exits non-zero on a crash: `set -o pipefail` would hide it
  # behind grep, so check the artifacts instead.
  if compgen -G "artifacts/$target/*" >/dev/null; then
    echo "fuzz $target: crash found, see fuzz/artifacts/$target/"
    exit 1
  fi
done
echo "fuzzing passed"
