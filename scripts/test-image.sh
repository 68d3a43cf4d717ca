#!/usr/bin/env bash
# The container image, built and run here (`make test-image`, run by .ci/run).
#
# No registry image is reachable from CI, so the image is built the way the
# production one is, minus the two things that need a registry: the base is
# a Debian bookworm rootfs made with mmdebstrap from Debian packages, and
# the binary is this checkout's release build (stripped as the build stage
# strips it). deploy/Dockerfile's `runtime` stage is built unchanged around
# them (RUNTIME_BASE, HERALD_BINARY=prebuilt), so what is tested is what
# ships. Then it runs that image (podman, runc, host network) and checks:
#   - /readyz answers;
#   - a WebSocket client gets a message sent through the API;
#   - PID 1 is herald itself, as uid 10001;
#   - the entrypoint raised the open-files soft limit (started at 1024, as
#     containerd does) to the container's hard limit;
#   - SIGTERM to PID 1 drains (the client is told to reconnect) and the
#     container exits 0 within the drain window.
#
# Needs root (podman and mmdebstrap make mounts). Installs podman, runc and
# mmdebstrap with apt when missing. SKIPs (exit 0) only when the kernel
# refuses to run a container at all; any other failure fails.
#
# The rootfs tarball is cached in target/image/ (delete it to rebuild; it is
# rebuilt when older than REBUILD_DAYS), and podman keeps the imported base
# and the layers, so a warm run is about a minute; a cold run (no release
# build, no rootfs) is dominated by the release build (docs/operations.md).
#
# Knobs: WINDOW (drain window, s, default 3), REBUILD_DAYS (default 7),
# MIRROR (default http://deb.debian.org/debian), HERALD_BIN (a binary to use
# instead of building target/release/herald).
set -euo pipefail
cd "$(dirname "$0")/.."

WINDOW=${WINDOW:-3}
REBUILD_DAYS=${REBUILD_DAYS:-7}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
WORK=target/image
BASE=localhost/herald-test-base:bookworm
IMAGE=localhost/herald:test
NAME=herald-image-test-$$
started=$(date +%s)

log() { echo "test-image: $*"; }
fail() {
    echo "test-image: FAIL: $*" >&2
    exit 1
}

# --- the release binary (as the build stage makes it) ------------------------
if [ -z "${HERALD_BIN:-}" ]; then
    ${CARGO:-cargo} build --release --locked -p herald-gateway
    HERALD_BIN=target/release/herald
fi
export HERALD_BIN
if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || fail "needs root (podman and mmdebstrap mount filesystems)"
    exec sudo -E env "PATH=$PATH" "$0" "$@"
fi

# --- tools --------------------------------------------------------------------
missing=()
for tool in podman runc mmdebstrap curl node; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
    [[ " ${missing[*]} " == *" node "* ]] && fail "node (>= 20) is needed for the WebSocket client"
    log "installing ${missing[*]} with apt"
    apt-get install -y --no-install-recommends "${missing[@]}" ||
        { apt-get update && apt-get install -y --no-install-recommends "${missing[@]}"; }
fi

mkdir -p "$WORK"
# Our own containers.conf (CONTAINERS_CONF replaces the system's): runc,
# because crun fails on this VM's cgroups (v1); no default ulimits, because
# podman's (1048576 open files) cannot be set under a hard limit of 20,000.
cat >"$WORK/containers.conf" <<'EOF'
[containers]
default_ulimits = []

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
export CONTAINERS_CONF="$PWD/$WORK/containers.conf"
podman() { command podman --runtime runc "$@"; }

# --- the base: Debian bookworm from Debian packages ---------------------------
rootfs="$WORK/bookworm-rootfs.tar"
if [ -s "$rootfs" ] && [ -z "$(find "$rootfs" -mtime +"$REBUILD_DAYS")" ]; then
    log "rootfs: cached $rootfs"
else
    log "rootfs: mmdebstrap bookworm from $MIRROR (about a minute)"
    # What debian:bookworm-slim is: minbase (Essential + apt) plus passwd
    # (useradd), /usr merged by a hook (not the usrmerge package, which
    # pulls in perl), no docs, man pages or locales, and apt told to keep
    # no caches (debuerreotype's docker-clean and friends).
    mmdebstrap --quiet --format=tar --variant=minbase --include=passwd \
        --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
        --dpkgopt='path-exclude=/usr/share/man/*' \
        --dpkgopt='path-exclude=/usr/share/doc/*' \
        --dpkgopt='path-include=/usr/share/doc/*/copyright' \
        --dpkgopt='path-exclude=/usr/share/locale/*' \
        --dpkgopt='path-exclude=/usr/share/info/*' \
        --customize-hook='cp scripts/image-apt-slim.conf "$1/etc/apt/apt.conf.d/docker-clean"' \
        --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin "$1"/var/log/*.log' \
        bookworm "$rootfs.tmp" "$MIRROR" >"$WORK/mmdebstrap.log" 2>&1 ||
        fail "mmdebstrap (see $WORK/mmdebstrap.log): $(tail -5 "$WORK/mmdebstrap.log")"
    mv "$rootfs.tmp" "$rootfs"
fi
stamp=$(stat -c %Y "$rootfs")
if [ "$(podman image inspect --format '{{index .Labels "herald.rootfs"}}' "$BASE" 2>/dev/null)" != "$stamp" ]; then
    log "base: importing $rootfs as $BASE"
    podman import --change "LABEL herald.rootfs=$stamp" --change 'CMD ["/bin/bash"]' \
        "$rootfs" "$BASE" >/dev/null 2>"$WORK/import.log" ||
        fail "podman import: $(cat "$WORK/import.log")"
fi

# Can this kernel run a container at all? Only this may SKIP.
if ! probe=$(podman run --rm --network host "$BASE" cat /proc/self/limits 2>&1); then
    if grep -qiE 'operation not permitted|not supported|unshare|cgroup|namespace|mount' <<<"$probe"; then
        log "SKIP: the kernel refuses to run a container here:"
        echo "$probe" | sed 's/^/  /'
        exit 0
    fi
    fail "podman cannot run $BASE: $probe"
fi
# The process limit a container gets here (podman's own, not the shell's).
nproc=$(awk '/^Max processes/ {print $3 ":" $4}' <<<"$probe")

# --- the image: deploy/Dockerfile's runtime stage around the binary -----------
context="$WORK/context"
rm -rf "$context"
mkdir -p "$context"
strip --strip-debug -o "$context/herald" "$HERALD_BIN"
log "image: building the runtime stage of deploy/Dockerfile"
previous=$(podman image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)
podman build --quiet --network host --pull=never \
    --build-arg "RUNTIME_BASE=$BASE" --build-arg HERALD_BINARY=prebuilt \
    --target runtime -f deploy/Dockerfile -t "$IMAGE" "$context" >/dev/null
# The previous test image, untagged now: its binary layer would pile up
# run after run (the cached layers below it stay, the new image uses them).
if [ -n "$previous" ] && [ "$previous" != "$(podman image inspect --format '{{.Id}}' "$IMAGE")" ]; then
    podman rmi "$previous" >/dev/null 2>&1 || true
fi
size=$(podman image inspect --format '{{.Size}}' "$IMAGE")
log "image: $IMAGE is $((size / 1000000)) MB ($size bytes; binary $(($(stat -c %s "$context/herald") / 1000000)) MB)"

# --- run it --------------------------------------------------------------------
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
hard=$(ulimit -Hn)
client_log="$WORK/client.log"
client_pid=
cleanup() {
    [ -n "$client_pid" ] && kill "$client_pid" 2>/dev/null
    podman rm -f "$NAME" >/dev/null 2>&1 || true
}
trap cleanup EXIT
# nproc as the probe had it: once any ulimit is given, podman sets nproc
# to 1048576 too, above this VM's hard limit, which runc may not raise.
podman run -d --name "$NAME" --network host --ulimit "nofile=1024:$hard" \
    --ulimit "nproc=$nproc" \
    -e "HERALD__SERVER__LISTEN=127.0.0.1:$port" \
    -e HERALD__AUTH__JWT_SECRET=image-test-secret \
    -e HERALD__API__KEY=image-test-key \
    -e "HERALD__DRAIN__WINDOW_SECS=$WINDOW" \
    "$IMAGE" >/dev/null
base_url="http://127.0.0.1:$port"
for _ in $(seq 1 100); do
    curl -fsS "$base_url/readyz" >/dev/null 2>&1 && break
    [ "$(podman inspect --format '{{.State.Running}}' "$NAME")" = true ] ||
        fail "the container exited: $(podman logs "$NAME" 2>&1 | tail -20)"
    sleep 0.2
done
curl -fsS "$base_url/readyz" >/dev/null || fail "/readyz did not answer within 20 s"
log "run: /readyz answers on $base_url"

pid=$(podman inspect --format '{{.State.Pid}}' "$NAME")
comm=$(cat "/proc/$pid/comm")
[ "$comm" = herald ] || fail "PID 1 is $comm, not herald (the entrypoint must exec it)"
uid=$(awk '/^Uid:/ {print $2}' "/proc/$pid/status")
[ "$uid" = 10001 ] || fail "herald runs as uid $uid, not 10001"
read -r soft hard_inside < <(awk '/^Max open files/ {print $4, $5}' "/proc/$pid/limits")
[ "$hard_inside" = "$hard" ] || fail "hard open-files limit inside is $hard_inside, not $hard"
[ "$soft" = "$hard" ] || fail "open-files soft limit inside is $soft: the entrypoint did not raise it to $hard"
log "run: PID 1 is herald as uid $uid, open files $soft (soft raised from 1024 to the hard limit)"

token=$(podman exec "$NAME" herald token --user alice)
node --experimental-websocket --no-warnings scripts/test-image-client.mjs \
    "$base_url" "$token" image-test-key >"$client_log" 2>&1 &
client_pid=$!
for _ in $(seq 1 100); do
    grep -q '^message ' "$client_log" && break
    kill -0 "$client_pid" 2>/dev/null || fail "WebSocket client: $(cat "$client_log")"
    sleep 0.1
done
grep -q '^message ' "$client_log" || fail "no message over the WebSocket within 10 s: $(cat "$client_log")"
log "run: the WebSocket client got the message sent through the API"

term_at=$(date +%s%N)
podman kill --signal TERM "$NAME" >/dev/null
code=$(timeout $((WINDOW + 15)) podman wait "$NAME") || fail "still running $((WINDOW + 15)) s after SIGTERM"
took_ms=$((($(date +%s%N) - term_at) / 1000000))
[ "$code" = 0 ] || fail "exit code $code after SIGTERM: $(podman logs "$NAME" 2>&1 | tail -20)"
[ "$took_ms" -le $(((WINDOW + 5) * 1000)) ] || fail "exited $took_ms ms after SIGTERM (window $WINDOW s)"
wait "$client_pid" || fail "WebSocket client during the drain: $(cat "$client_log")"
client_pid=
grep -q '^reconnect ' "$client_log" || fail "the client was not told to reconnect: $(cat "$client_log")"
log "run: SIGTERM drained (client told to reconnect) and exited 0 in $took_ms ms (window $WINDOW s)"
log "PASS in $(($(date +%s) - started)) s"
