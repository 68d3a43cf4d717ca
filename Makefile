# Herald — the two commands a newcomer needs: `make run` and `make test`.
SHELL := /bin/bash
CARGO ?= cargo

# Development credentials for `make run` only. Never use them in production.
DEV_SECRET ?= dev-secret-change-me
DEV_API_KEY ?= dev-api-key
LISTEN ?= 127.0.0.1:8080

.PHONY: run build sdk ts-types test test-image lint fmt fuzz bench-conn bench-unicast bench-redis-calls bench-mark bench-fanout bench-schedule bench-webhooks bench-webhooks-dead bench-million bench-compare bench-socketio bench bench-storm bench-scaleout bench-rolling bench-starvation bench-soak cluster

build:
	$(CARGO) build --release -p herald-gateway

## One node on 127.0.0.1:8080 with the in-memory backend, in dev mode (demo inbox at /).
run: build sdk
	@echo "Herald on http://$(LISTEN) (in-memory backend, dev mode: demo inbox at http://$(LISTEN)/)"
	@echo "  server API key:   $(DEV_API_KEY)"
	@echo "  mint a token:     HERALD__AUTH__JWT_SECRET=$(DEV_SECRET) target/release/herald token --user alice"
	@echo "  connect:          ws://$(LISTEN)/ws?token=<token>"
	@echo "  send:             curl -H 'Authorization: Bearer $(DEV_API_KEY)' -H 'content-type: application/json' \\"
	@echo "                      -d '{\"to\":{\"users\":[\"alice\"]},\"category\":\"system\",\"body\":\"hi\"}' http://$(LISTEN)/v1/messages"
	HERALD__SERVER__LISTEN=$(LISTEN) HERALD__AUTH__JWT_SECRET=$(DEV_SECRET) HERALD__API__KEY=$(DEV_API_KEY) \
		HERALD__DEV__ENABLED=true exec target/release/herald serve

## The browser SDK (clients/js/dist), which dev mode serves at /sdk/; skipped without npm.
sdk:
	@if command -v npm >/dev/null && [ -f clients/js/package.json ]; then \
		(cd clients/js && npm ci --no-audit --no-fund --silent && npm run --silent build) \
			|| echo "SDK build failed: the demo page at / will not load"; \
	else echo "SDK not built (needs npm and clients/js): the demo page at / will not load"; fi

## The browser SDK's protocol types (clients/js/src/generated/), regenerated from crates/herald-protocol's Rust types (ts-rs).
ts-types:
	HERALD_WRITE_TS=1 $(CARGO) test -p herald-protocol --features ts --test typescript

## Every test: unit, behavioural suites (memory and real Redis), gateway and cluster, browser (SDK + demo in Chromium), the Node and Python server SDKs against live nodes, the OpenAPI document (openapi-spec-validator; schemathesis against live nodes).
test:
	./scripts/ensure-redis.sh
	./scripts/test-browser.sh
	./scripts/test-sdk-node.sh
	./scripts/test-sdk-python.sh
	./scripts/check-k8s.sh
	./scripts/check-prometheus.sh
	./scripts/test-openapi.sh
	python3 -m pip install --quiet --disable-pip-version-check -r crates/herald-gateway/tests/fixtures/webhooks/requirements.txt
	$(CARGO) test --workspace --all-features --no-fail-fast

## The container image (deploy/Dockerfile's runtime stage on a Debian bookworm base from mmdebstrap), built with podman around the release binary and run: readiness, a WebSocket message, uid, open-files limit, SIGTERM drain (needs root; scripts/test-image.sh).
test-image:
	./scripts/test-image.sh

lint:
	$(CARGO) fmt --all -- --check
	python3 scripts/check-module-cycles.py crates/herald-core crates/herald-protocol crates/herald-redis crates/herald-gateway crates/herald-harness crates/herald-testing loadtest
	$(CARGO) clippy --workspace --all-targets --all-features -- -D warnings

fmt:
	$(CARGO) fmt --all

## Every fuzz target for FUZZ_SECS seconds each (default 20; nightly and cargo-fuzz; scripts/fuzz.sh).
fuzz:
	./scripts/fuzz.sh

## A local redis-server and three nodes (ports 8081-8083); Ctrl-C stops them.
cluster:
	./scripts/cluster.sh

## Idle-connection memory, connect rate and broadcast fan-out (docs/benchmarks.md).
bench-conn:
	./scripts/bench-conn.sh

## Walk up toward 1,000,000 connections on one Redis, stopping at a memory or time bound (scripts/bench-million.sh).
bench-million:
	./scripts/bench-million.sh

## Unicast latency across two nodes through Redis (docs/benchmarks.md).
bench-unicast:
	./scripts/bench-unicast.sh

## Redis's instructions per append_many call, the function alone under callgrind (scripts/bench-redis-calls.sh).
bench-redis-calls:
	./scripts/bench-redis-calls.sh

## Notification center: `mark` on node A until the `counts` push on node B, through Redis (scripts/bench-mark.sh).
bench-mark:
	./scripts/bench-mark.sh

## Publish to a topic with 100,000 subscribers on two nodes through Redis (scripts/bench-fanout.sh).
bench-fanout:
	./scripts/bench-fanout.sh

## 100,000 scheduled sends due in one second, then 10,000 snoozes waking in one second, on two nodes through Redis (scripts/bench-schedule.sh).
bench-schedule:
	./scripts/bench-schedule.sh

## 100,000 inbox copies with a fallback webhook, half read before due: 50,000 events, each verified with standardwebhooks (scripts/bench-webhooks.sh).
bench-webhooks:
	./scripts/bench-webhooks.sh

## A dead webhook receiver for an hour while sends go on: backlog, tries, RSS and send latency a minute (scripts/bench-webhooks-dead.sh).
bench-webhooks-dead:
	./scripts/bench-webhooks-dead.sh

## The fixed suite, one summary, <= 10 minutes here: conn at 15,000, unicast at two rates, a storm of 20,000 (scripts/bench-suite.sh).
bench:
	./scripts/bench-suite.sh

## Reconnect storm: 20,000 clients of killed nodes resume on the others, exactly once (scripts/bench-storm.sh).
bench-storm:
	./scripts/bench-storm.sh

## Scale-out: 2 nodes of 17,000 clients, then 2 more; every node within ±15% of the mean within 120 s, moves ≤ 1.2× ideal, exactly once (scripts/bench-scaleout.sh).
bench-scaleout:
	./scripts/bench-scaleout.sh

## Starvation: a node pinned to one core shared with busy loops while clients connect: it sheds (503) instead of losing its presence; afterwards presence is right and no client lost (scripts/bench-starvation.sh).
bench-starvation:
	./scripts/bench-starvation.sh

## Rolling deploy: 4 nodes of 9,000 clients each replaced in turn (SIGTERM, drain) at 1,000 msg/s; every client back within 30 s of its node's SIGTERM, exactly once (scripts/bench-rolling.sh).
bench-rolling:
	./scripts/bench-rolling.sh

## A steady mix for 10 minutes: drift of gateway RSS and latency per minute (scripts/bench-soak.sh).
bench-soak:
	./scripts/bench-soak.sh

## Herald side by side with the original Node.js + socket.io + redis-adapter design it replaces (bench/socketio/), same scenarios and machine (scripts/bench-compare.sh).
bench-compare:
	./scripts/bench-compare.sh

## Herald's Socket.IO endpoint (socketio.enabled) against the socket.io 4 peer, by the same client: memory per idle connection, connects/s (scripts/bench-socketio.sh).
bench-socketio:
	./scripts/bench-socketio.sh
