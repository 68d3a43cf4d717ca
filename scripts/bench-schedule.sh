#!/usr/bin/env bash
# bench-schedule: scheduled sends and snoozes in bulk, on two gateway nodes
# joined by Redis, measured by `herald-loadtest schedule`. The targets:
# 100,000 scheduled messages due in the same second all delivered within
# 10 s, exactly once; 10,000 snoozes waking in the same second, counts
# right, within 5 s.
#
#   scripts/bench-schedule.sh
#   MESSAGES=20000 SNOOZES=2000 scripts/bench-schedule.sh
#
# MESSAGES sends with one deliver_at, LEAD_SECS ahead, to RECEIVERS users
# (POST /v1/messages/batch, 1,000 a request, over both nodes); from the due
# second the load generator reads the schedule's index in Redis until it is
# empty (every send delivered), then checks every receiver's inbox holds
# each of its messages exactly once. Then SNOOZES users each get a message
# and snooze it until one moment LEAD_SECS ahead; from then the wake-up
# index is read until empty, then every user's snoozed history must be
# empty and their counts one unread, one unseen. The CPU of gateway A,
# gateway B and redis-server (utime + stime from /proc) from the due second
# to done is reported per item. Both nodes run their scheduler (defaults:
# schedule.poll_ms 250, batch 1000).
#
# Environment: MESSAGES (100000), RECEIVERS (10000), SNOOZES (10000),
# LEAD_SECS (30), CONCURRENCY (32), GATEWAY_LOG (warn), NO_BUILD=1 to skip
# cargo. The gateways' settings pass through (any HERALD__*, e.g.
# HERALD__SCHEDULE__BATCH).
# Processes: a private redis-server and two `herald serve` on free loopback
# ports with a random JWT secret and API key, stopped by PID on exit.
# Raw output: bench-out/schedule-<timestamp>/ (report.txt, schedule.json, logs).
set -euo pipefail

cd "$(dirname "$0")/.."
MESSAGES=${MESSAGES:-100000}
RECEIVERS=${RECEIVERS:-10000}
SNOOZES=${SNOOZES:-10000}
LEAD_SECS=${LEAD_SECS:-30}
CONCURRENCY=${CONCURRENCY:-32}

source scripts/bench-lib.sh
bench_two_nodes schedule

bench_header "# bench-schedule $(date -u +%FT%TZ) messages=$MESSAGES receivers=$RECEIVERS snoozes=$SNOOZES lead=${LEAD_SECS}s targets: deliver<=10s wake<=5s schedule: batch=${HERALD__SCHEDULE__BATCH:-default} poll_ms=${HERALD__SCHEDULE__POLL_MS:-default}"

"$LOADTEST" schedule --gateway "http://127.0.0.1:$A_PORT" --gateway "http://127.0.0.1:$B_PORT" \
  --redis-url "$REDIS_URL" --messages "$MESSAGES" --receivers "$RECEIVERS" --snoozes "$SNOOZES" \
  --lead-secs "$LEAD_SECS" --requests-in-flight "$CONCURRENCY" \
  --cpu-pid "gateway-a=$A_PID" --cpu-pid "gateway-b=$B_PID" --cpu-pid "redis=$REDIS_PID" \
  --out "$OUT/schedule.json" | tee -a "$OUT/report.txt"
echo "raw output in $OUT"
