'use strict';
// Load generator for the socket.io peer (server.js), the counterpart of
// herald-loadtest's `conn` and `unicast` scenarios, measured the same way:
// the SERVER's RSS and CPU (utime + stime from /proc/<pid>/stat), so what
// the load generator itself costs is not counted.
//
//   node loadgen.js conn --url http://127.0.0.1:P --pid PID -n 10000 --rounds 5 --out r.json
//   node loadgen.js unicast --from http://A --to http://B --via ws|http --rate 5000 --cpu-pid PID… --out r.json
//
// conn: N connections spread over worker processes of at most --per-worker
// each (worker w binds its sockets to --source-ip-base + w), --concurrency
// attempts in flight per worker; a connection counts once the server's
// `push_message` (its answer to the login) arrived; with --login 1 each
// connection emits `user_login {userId}` first, as the old client did (Herald's
// Socket.IO endpoint, scripts/bench-socketio.sh; the peer logs in at connect
// and ignores it). Then --settle seconds
// idle, the server's VmRSS read again, and --rounds broadcasts (POST
// /broadcast, one per --round-interval-ms) carrying their send time; each
// round's "all received" is the time until the last connection had it.
//
// unicast: --receivers connections on --to (one worker process); messages
// enter node --from from another process, open loop, either as `todo`
// events with an ack from --senders connections (--via ws, the original design's way;
// accepted = the ack says ok) or as POST /send with up to
// --http-concurrency requests in flight (--via http, a backend's way;
// accepted = 202). Message k is due at start + k / rate and carries that
// time, in `data` as herald-loadtest's stamps (lt_run, lt_trial, lt_k,
// lt_sched_us); latency is
// arrival minus the scheduled time. A warm-up of --warmup s at the same rate
// first (not reported). Sustained = achieved >= 95% of offered, nothing
// accepted lost or refused, p99 <= --max-p99-ms (herald-loadtest's rule).
//
// The JWT secret and API key come from JWT_SECRET and API_KEY.

const { fork } = require('child_process');
const fs = require('fs');
const http = require('http');
const { HttpPool, connectMany, mintToken, nowUs, socketUrl, stamp } = require('./client');

const CLK_TCK = 100;

// ---------------------------------------------------------------- helpers

function parseArgs(argv) {
  const out = { _: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a.startsWith('--') || a === '-n') {
      const key = a === '-n' ? 'n' : a.slice(2);
      const val = argv[i + 1];
      i++;
      if (out[key] === undefined) out[key] = val;
      else out[key] = [].concat(out[key], val);
    } else {
      out._.push(a);
    }
  }
  return out;
}
const list = (v) => (v === undefined ? [] : [].concat(v));
const num = (v, d) => (v === undefined ? d : Number(v));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function cpuMicros(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields 14 and 15 of stat are f[11] and f[12] after "pid (comm) "
  return ((Number(f[11]) + Number(f[12])) * 1e6) / CLK_TCK;
}
const totalCpu = (pids) => pids.reduce((s, p) => s + cpuMicros(p), 0);

function rssKib(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : 0;
}
const totalRss = (pids) => pids.reduce((s, p) => s + rssKib(p), 0);

function summary(values) {
  if (values.length === 0) return { count: 0, p50_us: 0, p99_us: 0, p999_us: 0, max_us: 0 };
  const v = Float64Array.from(values).sort();
  const at = (q) => Math.round(v[Math.min(v.length - 1, Math.ceil(q * v.length) - 1)]);
  return { count: v.length, p50_us: at(0.5), p99_us: at(0.99), p999_us: at(0.999), max_us: Math.round(v[v.length - 1]) };
}
const fmtMs = (us) => `${(us / 1000).toFixed(us < 10000 ? 2 : 1)} ms`;

function post(base, path, body, apiKey) {
  const data = Buffer.from(JSON.stringify(body));
  const u = new URL(path, base);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: u.hostname,
        port: u.port,
        path: u.pathname,
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': data.length, authorization: `Bearer ${apiKey}` },
        timeout: 30000,
      },
      (res) => {
        res.resume();
        res.on('end', () => (res.statusCode < 300 ? resolve(res.statusCode) : reject(new Error(`HTTP ${res.statusCode}`))));
      },
    );
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end(data);
  });
}

/** A forked worker with request/answer over IPC (answers matched by type). */
class Worker {
  constructor(role, args) {
    this.child = fork(__filename, [role, JSON.stringify(args)], { serialization: 'advanced', stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.waiting = new Map();
    this.child.on('message', (m) => {
      const w = this.waiting.get(m.type);
      if (w) {
        this.waiting.delete(m.type);
        w.resolve(m);
      }
    });
    this.child.on('exit', (code) => {
      for (const w of this.waiting.values()) w.reject(new Error(`${role} worker exited (${code})`));
      this.waiting.clear();
    });
  }

  /** Waits for the next message of `type` (after sending `msg`, if any). */
  ask(type, msg, timeoutMs = 600000) {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.waiting.delete(type);
        reject(new Error(`no ${type} from worker within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(type, {
        resolve: (m) => { clearTimeout(t); resolve(m); },
        reject: (e) => { clearTimeout(t); reject(e); },
      });
      if (msg) this.child.send(msg);
    });
  }

  cpuMicros() {
    try { return cpuMicros(this.child.pid); } catch (_) { return 0; }
  }

  close() {
    if (this.child.connected) this.child.send({ type: 'exit' });
    const c = this.child;
    setTimeout(() => { if (c.exitCode === null) c.kill(); }, 3000).unref();
  }
}

function ipPlus(base, k) {
  const p = base.split('.').map(Number);
  let n = ((p[0] << 24) >>> 0) + (p[1] << 16) + (p[2] << 8) + p[3] + k;
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

// ---------------------------------------------------------------- conn

async function conn(a) {
  const n = num(a.n, 10000);
  const perWorker = num(a['per-worker'], 5000);
  const rounds = num(a.rounds, 5);
  const settle = num(a.settle, 5);
  const interval = num(a['round-interval-ms'], 1000);
  const roundTimeout = num(a['round-timeout'], 30);
  const pids = list(a.pid).map(Number);
  const url = a.url;
  const apiKey = process.env.API_KEY;
  const deadline = Date.now() + num(a.timeout, 300) * 1000;
  const run = Math.floor(Math.random() * 1e9);

  const rssBefore = totalRss(pids);
  const workers = [];
  for (let w = 0, first = 0; first < n; w++, first += perWorker) {
    workers.push(new Worker('conn-worker', {
      url,
      run,
      worker: w,
      count: Math.min(perWorker, n - first),
      sourceIp: ipPlus(a['source-ip-base'] || '127.0.0.2', w),
      concurrency: num(a.concurrency, 256),
      retries: num(a.retries, 3),
      timeoutMs: num(a['connect-timeout'], 15) * 1000,
      login: Boolean(a.login),
    }));
  }
  try {
    const hellos = await Promise.all(workers.map((w) => w.ask('hello', null, 60000)));
    const workerRssBefore = hellos.map((h) => h.rss_kib);
    const cpuBeforeConnect = totalCpu(pids);
    const lgBeforeConnect = workers.reduce((s, w) => s + w.cpuMicros(), 0);
    const go = nowUs();
    const connected = await Promise.all(workers.map((w) => w.ask('connected', { type: 'connect' }, deadline - Date.now())));
    const ok = connected.reduce((s, c) => s + c.ok, 0);
    const failed = connected.reduce((s, c) => s + c.failed, 0);
    const lastUs = Math.max(go, ...connected.map((c) => c.last_us));
    const connectSecs = (lastUs - go) / 1e6;
    const connectCpu = totalCpu(pids) - cpuBeforeConnect;
    const lgConnectCpu = workers.reduce((s, w) => s + w.cpuMicros(), 0) - lgBeforeConnect;
    const connectLatency = summary(connected.flatMap((c) => c.latencies));
    if (ok === 0) throw new Error(`no connection succeeded: ${connected.flatMap((c) => c.errors).join('; ')}`);

    await sleep(settle * 1000);
    const rssIdle = totalRss(pids);
    const workerRssIdle = (await Promise.all(workers.map((w) => w.ask('rss', { type: 'rss' }, 30000)))).map((r) => r.rss_kib);

    const cpuBeforeRounds = totalCpu(pids);
    const lgBeforeRounds = workers.reduce((s, w) => s + w.cpuMicros(), 0);
    const latencies = [];
    const allReceived = [];
    const perRound = [];
    let expectedTotal = 0;
    let receivedTotal = 0;
    let duplicates = 0;
    let dropped = 0;
    for (let round = 0; round < rounds && Date.now() < deadline; round++) {
      const sentUs = nowUs();
      await post(url, '/broadcast', { body: `loadtest broadcast ${round}`, data: { lt_run: run, lt_round: round, lt_sent_us: sentUs } }, apiKey);
      const until = Math.min(deadline, Date.now() + roundTimeout * 1000);
      const reps = await Promise.all(workers.map((w) => w.ask('round', { type: 'round', round, until }, until - Date.now() + 30000)));
      let got = 0;
      let want = 0;
      let last = 0;
      dropped = 0;
      for (const r of reps) {
        got += r.received;
        want += r.expected + r.dropped;
        dropped += r.dropped;
        duplicates += r.duplicates;
        last = Math.max(last, r.last_recv_us);
        for (const l of r.latencies) latencies.push(l);
      }
      want = Math.max(want, ok);
      expectedTotal += want;
      receivedTotal += got;
      const allUs = Math.max(0, last - sentUs);
      if (got === want) allReceived.push(allUs);
      perRound.push(allUs);
      if (round + 1 < rounds) await sleep(interval);
    }
    const roundsCpu = totalCpu(pids) - cpuBeforeRounds;
    const lgRoundsCpu = workers.reduce((s, w) => s + w.cpuMicros(), 0) - lgBeforeRounds;
    const rssAfter = totalRss(pids);

    const report = {
      system: 'socket.io',
      connections_requested: n,
      connections_ok: ok,
      connections_failed: failed,
      connect_retries: connected.reduce((s, c) => s + c.retries, 0),
      connect_errors: connected.flatMap((c) => c.errors),
      workers: workers.length,
      connect_secs: connectSecs,
      connect_latency: connectLatency,
      gateway_cpu_us_per_connect: connectCpu / ok,
      connects_per_sec: connectSecs > 0 ? ok / connectSecs : 0,
      gateway_rss_before_kib: rssBefore,
      gateway_rss_idle_kib: rssIdle,
      gateway_rss_after_broadcasts_kib: rssAfter,
      rss_per_conn_kib: Math.max(0, rssIdle - rssBefore) / ok,
      loadgen_worker_rss_before_kib: workerRssBefore,
      loadgen_worker_rss_idle_kib: workerRssIdle,
      loadgen_cpu_us_per_connect: lgConnectCpu / ok,
      rounds,
      deliveries_expected: expectedTotal,
      deliveries_received: receivedTotal,
      duplicates,
      dropped_connections: dropped,
      gateway_cpu_us_per_delivery: roundsCpu / Math.max(1, receivedTotal),
      loadgen_cpu_us_per_delivery: lgRoundsCpu / Math.max(1, receivedTotal),
      delivery_latency: summary(latencies),
      all_received: summary(allReceived),
      per_round_all_received_us: perRound,
    };
    console.log('== socket.io loadgen conn ==');
    console.log(`connections        ${ok} ok / ${n} requested (${failed} failed, ${report.connect_retries} retried, ${workers.length} workers)`);
    for (const e of report.connect_errors) console.log(`  connect error    ${e}`);
    console.log(`connect phase      ${connectSecs.toFixed(2)} s, ${report.connects_per_sec.toFixed(0)} connections/s, server CPU ${report.gateway_cpu_us_per_connect.toFixed(0)} µs per connection`);
    console.log(`  per connection   p50=${fmtMs(connectLatency.p50_us)} p99=${fmtMs(connectLatency.p99_us)} max=${fmtMs(connectLatency.max_us)}`);
    console.log(`server RSS         ${rssBefore} KiB before, ${rssIdle} KiB idle with connections, ${rssAfter} KiB after broadcasts`);
    console.log(`RSS per connection ${report.rss_per_conn_kib.toFixed(2)} KiB (idle - before) / connections`);
    console.log(`broadcast          ${rounds} rounds, ${receivedTotal} / ${expectedTotal} deliveries, ${duplicates} duplicates, ${dropped} connections dropped`);
    console.log(`  server CPU       ${report.gateway_cpu_us_per_delivery.toFixed(1)} µs per delivered message (rounds' CPU / deliveries)`);
    console.log(`  all received     p50=${fmtMs(report.all_received.p50_us)} max=${fmtMs(report.all_received.max_us)} (complete rounds: ${report.all_received.count})`);
    if (a.out) fs.writeFileSync(a.out, JSON.stringify(report, null, 2));
  } finally {
    workers.forEach((w) => w.close());
  }
}

async function connWorker(opts) {
  const { url, run, worker, count, sourceIp, concurrency, retries, timeoutMs } = opts;
  const tokens = Array.from({ length: count }, (_, i) => mintToken(process.env.JWT_SECRET, `lt-${run}-${worker}-${i}`));
  // Per round: which connections have it, how many, the latest arrival, latencies.
  const rounds = new Map();
  let live = 0;
  let dropped = 0;
  let duplicates = 0;
  const roundOf = (r) => {
    let s = rounds.get(r);
    if (!s) {
      s = { got: new Uint8Array(count), received: 0, last: 0, latencies: [] };
      rounds.set(r, s);
    }
    return s;
  };
  const make = (i) => ({
    token: tokens[i],
    login: opts.login ? `lt-${run}-${worker}-${i}` : null,
    localAddress: sourceIp,
    timeoutMs,
    readyEvent: 'push_message',
    onEvent: (frame) => {
      if (!frame.startsWith('42["announcement"') || stamp(frame, 'lt_run') !== run) return;
      const t = nowUs();
      const round = stamp(frame, 'lt_round');
      if (Number.isNaN(round)) return;
      const s = roundOf(round);
      if (s.got[i]) { duplicates++; return; }
      s.got[i] = 1;
      s.received++;
      s.last = Math.max(s.last, t);
      s.latencies.push(t - stamp(frame, 'lt_sent_us'));
    },
    onClose: () => { live--; dropped++; },
  });
  let conns = [];
  process.on('message', async (m) => {
    if (m.type === 'connect') {
      const r = await connectMany(socketUrl(url), count, { concurrency, retries, make });
      conns = r.conns;
      live = conns.filter(Boolean).length;
      process.send({ type: 'connected', ok: live, failed: r.failed, retries: r.retries, errors: r.errors, last_us: r.lastUs, latencies: r.latencies });
    } else if (m.type === 'rss') {
      process.send({ type: 'rss', rss_kib: Math.round(process.memoryUsage().rss / 1024) });
    } else if (m.type === 'round') {
      const s = roundOf(m.round);
      while (s.received < live && Date.now() < m.until) await sleep(5);
      process.send({ type: 'round', round: m.round, received: s.received, expected: live, dropped, duplicates, last_recv_us: s.last, latencies: s.latencies });
      duplicates = 0;
    } else if (m.type === 'exit') {
      for (const c of conns) if (c) c.close();
      process.exit(0);
    }
  });
  process.send({ type: 'hello', rss_kib: Math.round(process.memoryUsage().rss / 1024) });
}

// ---------------------------------------------------------------- unicast

async function unicast(a) {
  const rate = num(a.rate, 5000);
  const duration = num(a.duration, 10);
  const warmup = num(a.warmup, 3);
  const grace = num(a.grace, 5);
  const receivers = num(a.receivers, 1000);
  const maxP99Us = num(a['max-p99-ms'], 100) * 1000;
  const pids = list(a['cpu-pid']).map(Number);
  const run = Math.floor(Math.random() * 1e9);
  const common = { run, concurrency: num(a.concurrency, 256), retries: num(a.retries, 3), timeoutMs: 15000, login: Boolean(a.login) };
  const recv = new Worker('recv-worker', { ...common, url: a.to, count: receivers, sourceIp: ipPlus(a['source-ip-base'] || '127.0.0.2', 0) });
  const via = a.via || 'ws';
  if (via !== 'ws' && via !== 'http') throw new Error('--via must be ws or http');
  const send = new Worker('send-worker', {
    ...common,
    url: a.from,
    via,
    count: num(a.senders, 16),
    httpConcurrency: num(a['http-concurrency'], 64),
    receivers,
    sourceIp: ipPlus(a['source-ip-base'] || '127.0.0.2', 1),
  });
  const reports = [];
  try {
    const [rr, sr] = await Promise.all([recv.ask('ready', null, 120000), send.ask('ready', null, 120000)]);
    if (rr.ok < receivers || sr.ok < 1) throw new Error(`connect failed: receivers ${rr.ok}/${receivers} (${rr.errors}), senders ${sr.ok} (${sr.errors})`);
    let id = 0;
    const trial = async (r, secs) => {
      id++;
      const total = Math.round(r * secs);
      await recv.ask('trial', { type: 'trial', id, total });
      const cpuBefore = totalCpu(pids);
      const lgBefore = recv.cpuMicros() + send.cpuMicros();
      const sent = await send.ask('sent', { type: 'run', id, rate: r, total, stopAtMs: secs * 1000 + Math.max(secs * 500, 2000) });
      const graceEnd = Date.now() + grace * 1000;
      for (;;) {
        const { received } = await recv.ask('count', { type: 'count' });
        if (received >= sent.accepted || Date.now() >= graceEnd) break;
        await sleep(50);
      }
      const cpu = totalCpu(pids) - cpuBefore;
      const lgCpu = recv.cpuMicros() + send.cpuMicros() - lgBefore;
      const got = await recv.ask('ended', { type: 'end', id });
      let lost = 0;
      for (let k = 0; k < total; k++) if (sent.acked[k] && !got.marks[k]) lost++;
      const sendElapsed = Math.max(sent.last_dispatch_ms, secs * 1000) / 1000;
      const rep = {
        system: 'socket.io',
        via: via === 'ws' ? 'ws (todo event with ack)' : 'http (POST /send)',
        offered_rate: r,
        duration_secs: secs,
        scheduled: total,
        dispatched: sent.dispatched,
        accepted: sent.accepted,
        rejected: sent.rejected,
        achieved_rate: sent.accepted / sendElapsed,
        received: got.received,
        lost,
        duplicates: got.duplicates,
        receivers_live: got.live,
        latency: summary(got.latencies),
        cpu_us_per_msg: pids.length && sent.accepted ? cpu / sent.accepted : null,
        loadgen_cpu_us_per_msg: sent.accepted ? lgCpu / sent.accepted : null,
        sustained: false,
        first_error: sent.first_error,
      };
      rep.sustained = rep.achieved_rate >= 0.95 * r && lost === 0 && rep.rejected === 0 && rep.received > 0 && rep.latency.p99_us <= maxP99Us;
      return rep;
    };
    if (warmup > 0) {
      await trial(rate, warmup);
      await sleep(2000);
    }
    const r = await trial(rate, duration);
    reports.push(r);
    console.log(`unicast (socket.io) via ${via} offered ${r.offered_rate.toFixed(0)}/s achieved ${r.achieved_rate.toFixed(0)}/s | sent ${r.dispatched} accepted ${r.accepted} rejected ${r.rejected} received ${r.received} lost ${r.lost} dup ${r.duplicates} | p50 ${fmtMs(r.latency.p50_us)} p99 ${fmtMs(r.latency.p99_us)} p999 ${fmtMs(r.latency.p999_us)} max ${fmtMs(r.latency.max_us)} | CPU ${r.cpu_us_per_msg === null ? '-' : r.cpu_us_per_msg.toFixed(1)} µs/msg | ${r.sustained ? 'sustained' : 'NOT sustained'}`);
    if (a.out) fs.writeFileSync(a.out, JSON.stringify(reports, null, 2));
  } finally {
    recv.close();
    send.close();
  }
}

async function recvWorker(opts) {
  const { url, run, count, sourceIp, concurrency, retries, timeoutMs } = opts;
  let cur = null;
  let live = 0;
  const make = (i) => ({
    token: mintToken(process.env.JWT_SECRET, `lt-r-${run}-${i}`),
    login: opts.login ? `lt-r-${run}-${i}` : null,
    localAddress: sourceIp,
    timeoutMs,
    readyEvent: 'push_message',
    onEvent: (frame) => {
      if (!cur || !frame.startsWith('42["todo_message"') || stamp(frame, 'lt_run') !== run || stamp(frame, 'lt_trial') !== cur.id) return;
      const k = stamp(frame, 'lt_k');
      if (!(k < cur.total)) return;
      if (cur.marks[k]) { cur.duplicates++; return; }
      cur.marks[k] = 1;
      cur.received++;
      cur.latencies.push(nowUs() - stamp(frame, 'lt_sched_us'));
    },
    onClose: () => { live--; },
  });
  const r = await connectMany(socketUrl(url), count, { concurrency, retries, make });
  live = r.conns.filter(Boolean).length;
  process.on('message', (m) => {
    if (m.type === 'trial') {
      cur = { id: m.id, total: m.total, marks: new Uint8Array(m.total), received: 0, duplicates: 0, latencies: [] };
      process.send({ type: 'trial' });
    } else if (m.type === 'count') {
      process.send({ type: 'count', received: cur ? cur.received : 0 });
    } else if (m.type === 'end') {
      const c = cur;
      cur = null;
      process.send({ type: 'ended', marks: c.marks, received: c.received, duplicates: c.duplicates, latencies: Float64Array.from(c.latencies), live });
    } else if (m.type === 'exit') {
      for (const c of r.conns) if (c) c.close();
      process.exit(0);
    }
  });
  process.send({ type: 'ready', ok: live, errors: r.errors.join('; ') });
}

async function sendWorker(opts) {
  const { url, run, count, receivers, sourceIp, concurrency, retries, timeoutMs, via, httpConcurrency } = opts;
  const TRIAL = 2 ** 24; // ack id (and HTTP job) = trial * 2^24 + k
  let cur = null;
  const answer = (t, k, ok, error) => {
    if (!cur || t !== cur.id || k >= cur.total) return;
    cur.answered++;
    if (ok) {
      cur.acked[k] = 1;
      cur.accepted++;
    } else {
      cur.rejected++;
      if (!cur.firstError) cur.firstError = error;
    }
  };

  // How a message leaves: send(id, k, to, data) -> false if it could not;
  // tick() before each group of messages due at one moment.
  let send;
  let tick = () => {};
  let close;
  let ok;
  let errors = '';
  if (via === 'http') {
    // POST /send on node A, up to httpConcurrency requests in flight.
    const pool = new HttpPool(socketUrl(url), {
      size: httpConcurrency,
      path: '/send',
      apiKey: process.env.API_KEY,
      localAddress: sourceIp,
      onDone: (job, status) => answer(Math.floor(job / TRIAL), job % TRIAL, status >= 200 && status < 300, `HTTP ${status}`),
    });
    for (let i = 0; i < 250 && pool.idle.length < httpConcurrency; i++) await sleep(20);
    ok = pool.idle.length;
    send = (id, k, to, data) => {
      pool.post(JSON.stringify({ to, body: `loadtest unicast ${id}/${k}`, data }), id * TRIAL + k);
      return true;
    };
    close = () => pool.close();
  } else {
    // `todo` events with an ack from `count` sender connections on node A;
    // the messages due at one moment go out in one write per connection.
    const r = await connectMany(socketUrl(url), count, {
      concurrency,
      retries,
      make: (i) => ({
        token: mintToken(process.env.JWT_SECRET, `lt-s-${run}-${i}`),
        login: opts.login ? `lt-s-${run}-${i}` : null,
        localAddress: sourceIp,
        timeoutMs,
        readyEvent: 'push_message',
        // The peer answers {ok, id}; Herald's endpoint {id, seq} or {error}.
        onAck: (ackId, a) => answer(Math.floor(ackId / TRIAL), ackId % TRIAL, Boolean(a && (a.ok || a.seq)), JSON.stringify(a)),
      }),
    });
    const senders = r.conns.filter(Boolean);
    let corked = [];
    ok = senders.length;
    errors = r.errors.join('; ');
    tick = () => { corked = senders.map(() => false); };
    send = (id, k, to, data) => {
      const s = k % senders.length;
      if (!corked[s]) {
        corked[s] = true;
        senders[s].batch(() => {}); // corked until the next tick
      }
      // With --login, the old client's shape Herald reads (`receiver_id`).
      const todo = opts.login ? { receiver_id: to, body: `loadtest unicast ${id}/${k}`, data } : { to, body: `loadtest unicast ${id}/${k}`, data };
      return senders[s].emit('todo', todo, id * TRIAL + k);
    };
    close = () => senders.forEach((c) => c.close());
  }

  process.on('message', async (m) => {
    if (m.type === 'run') {
      const { id, rate, total, stopAtMs } = m;
      cur = { id, total, acked: new Uint8Array(total), accepted: 0, rejected: 0, answered: 0, firstError: null };
      const startUs = nowUs();
      const dueUs = (k) => startUs + Math.round((k * 1e6) / rate);
      let dispatched = 0;
      let lastDispatchMs = 0;
      while (dispatched < total) {
        const wait = (dueUs(dispatched) - nowUs()) / 1000;
        if (wait > 0) await sleep(wait);
        const elapsedUs = nowUs() - startUs;
        if (elapsedUs > stopAtMs * 1000) break;
        const until = Math.min(total, Math.floor((elapsedUs * rate) / 1e6 + 1e-6) + 1);
        // Everything due by now goes out, oldest first.
        tick();
        for (let k = dispatched; k < until; k++) {
          const to = `lt-r-${run}-${Math.floor(Math.random() * receivers)}`;
          if (!send(id, k, to, { lt_run: run, lt_trial: id, lt_k: k, lt_sched_us: dueUs(k) })) {
            answer(id, k, false, 'sender connection closed');
          }
        }
        dispatched = until;
        lastDispatchMs = (nowUs() - startUs) / 1000;
      }
      // Wait (bounded) for every dispatched send's answer.
      const drainEnd = Date.now() + 30000;
      while (cur.answered < dispatched && Date.now() < drainEnd) await sleep(10);
      process.send({ type: 'sent', dispatched, accepted: cur.accepted, rejected: cur.rejected, acked: cur.acked, first_error: cur.firstError, last_dispatch_ms: lastDispatchMs });
    } else if (m.type === 'exit') {
      close();
      process.exit(0);
    }
  });
  process.send({ type: 'ready', ok, errors });
}

// ---------------------------------------------------------------- main

const [role, arg, ...rest] = process.argv.slice(2);
const roles = {
  conn: () => conn(parseArgs([arg, ...rest].filter((x) => x !== undefined))),
  unicast: () => unicast(parseArgs([arg, ...rest].filter((x) => x !== undefined))),
  'conn-worker': () => connWorker(JSON.parse(arg)),
  'recv-worker': () => recvWorker(JSON.parse(arg)),
  'send-worker': () => sendWorker(JSON.parse(arg)),
};
if (!roles[role]) {
  console.error('usage: node loadgen.js conn|unicast [--options]  (see the top of this file)');
  process.exit(2);
}
// A worker never outlives its coordinator; a coordinator gives up after
// --timeout seconds (600) whatever it is waiting for.
if (role.endsWith('-worker')) {
  process.on('disconnect', () => process.exit(0));
} else {
  const limit = num(parseArgs(process.argv.slice(3)).timeout, 600);
  setTimeout(() => {
    console.error(`loadgen ${role}: overall timeout of ${limit} s reached`);
    process.exit(1);
  }, (limit + 60) * 1000).unref();
}
roles[role]().catch((e) => {
  console.error(`loadgen ${role}: ${e.stack || e}`);
  process.exit(1);
});
