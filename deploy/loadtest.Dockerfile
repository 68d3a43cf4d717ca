# syntax=docker/dockerfile:1
#
# The load generator's image: `herald-loadtest`, built with the same release
# build as `cargo build --release -p herald-loadtest`, on a small Debian
# runtime, as a non-root user. Used by the Kubernetes Job in k8s/loadtest/
# (k8s/README.md, "Load test").
#
#   docker build -f deploy/loadtest.Dockerfile -t herald-loadtest:dev .
#   docker run --rm --network host -e HERALD__AUTH__JWT_SECRET=… -e HERALD__API__KEY=… \
#     herald-loadtest:dev conn --gateway http://127.0.0.1:8080 -n 1000 --source-ip-base 0.0.0.0
#
# Build from the repository root. Only the paths copied below are read from
# the context (BuildKit transfers no others, so target/ is never sent).
# The gateway's image: deploy/Dockerfile.

ARG RUST_VERSION=1.95

# --- build -----------------------------------------------------------------
FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
# Every workspace member's manifest and sources (cargo loads the whole
# workspace even to build one package).
COPY Cargo.toml Cargo.lock ./
COPY crates crates
COPY loadtest/Cargo.toml loadtest/Cargo.toml
COPY loadtest/src loadtest/src
# Only the binary: the gateway is a dev-dependency (tests), not built here.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p herald-loadtest \
 && install -D -m 0755 target/release/herald-loadtest /out/herald-loadtest \
 && strip --strip-debug /out/herald-loadtest

# --- runtime ---------------------------------------------------------------
# Debian slim, the same glibc as the build stage. No shell is needed: the
# binary raises its own open-files soft limit to the hard one (each
# connection is one file descriptor), and the `conn` coordinator starts its
# worker processes by running itself again.
FROM debian:bookworm-slim AS runtime
RUN groupadd --system --gid 10001 herald \
 && useradd --system --uid 10001 --gid herald --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin herald
COPY --from=build /out/herald-loadtest /usr/local/bin/herald-loadtest
USER 10001:10001
ENTRYPOINT ["/usr/local/bin/herald-loadtest"]
CMD ["--help"]
