'use strict';
// The table of scripts/bench-compare.sh: reads the JSON reports of one run
// (herald-conn.json, socketio-conn.json, herald-unicast-<rate>.json,
// socketio-unicast-<rate>.json and the *.time files) from the folder given,
// prints "scenario | Herald | socket.io | socket.io ÷ Herald" and writes
// compare.json next to them. Knobs and versions come from the environment.
//
//   node report.js bench-out/compare-<timestamp>

const fs = require('fs');
const os = require('os');
const path = require('path');

const dir = process.argv[2];
if (!dir) {
  console.error('usage: node report.js <bench-out/compare-… folder>');
  process.exit(2);
}
const read = (name) => {
  try {
    return JSON.parse(fs.readFileSync(path.join(dir, name), 'utf8'));
  } catch (_) {
    return null;
  }
};
const readTime = (name) => {
  try {
    const [user, sys, wall] = fs.readFileSync(path.join(dir, `${name}.time`), 'utf8').trim().split(/\s+/).map(Number);
    return { cpu_s: user + sys, wall_s: wall };
  } catch (_) {
    return null;
  }
};
// "LABEL TICKS" lines -> "A / B / Redis" shares of their sum, in percent.
const readSplit = (name) => {
  try {
    const ticks = Object.fromEntries(fs.readFileSync(path.join(dir, `${name}.split`), 'utf8').trim().split('\n')
      .map((l) => l.split(' ')).map(([k, v]) => [k, Number(v)]));
    const sum = (ticks.a || 0) + (ticks.b || 0) + (ticks.redis || 0);
    return sum > 0 ? { a: ticks.a / sum, b: ticks.b / sum, redis: ticks.redis / sum } : null;
  } catch (_) {
    return null;
  }
};
const version = (pkg) => {
  try {
    return require(`${pkg}/package.json`).version;
  } catch (_) {
    return 'unknown';
  }
};

const rates = (process.env.RATES || '5000 10000').split(/\s+/).filter(Boolean);
const hConn = read('herald-conn.json');
const sConn = read('socketio-conn.json');
const vias = (process.env.VIAS || 'http ws').split(/\s+/).filter(Boolean);
const uni = vias.flatMap((via) => rates.map((rate) => ({
  via,
  rate: Number(rate),
  herald: (read(`herald-unicast-${via}-${rate}.json`) || [])[0] || null,
  socketio: (read(`socketio-unicast-${via}-${rate}.json`) || [])[0] || null,
})));

const int = (v) => Math.round(v).toLocaleString('en-US');
const fix = (d) => (v) => v.toFixed(d);
const ms = (us) => (us / 1000).toFixed(us < 10000 ? 1 : 0);
const rows = [];
// get(report) -> number (or null); fmt for the cell; ratio = socket.io / Herald.
function row(scenario, unit, get, fmt, { ratio = true, hr = hConn, sr = sConn } = {}) {
  const h = hr ? get(hr) : null;
  const s = sr ? get(sr) : null;
  const r = ratio && h !== null && s !== null && h > 0 ? s / h : null;
  rows.push({ scenario, unit, herald: h, socketio: s, ratio: r, cells: [h === null ? '–' : fmt(h), s === null ? '–' : fmt(s), r === null ? '' : `${r >= 10 ? r.toFixed(1) : r >= 0.1 ? r.toFixed(2) : r.toPrecision(2)}×`] });
}

row(`idle memory per connection (server RSS Δ / ${int(Number(process.env.N || 0))})`, 'KiB', (r) => r.rss_per_conn_kib, fix(2));
row('connect rate', 'connects/s', (r) => r.connects_per_sec, int);
row('  server CPU per connect', 'µs', (r) => r.gateway_cpu_us_per_connect, int);
row('  connections up', '', (r) => r.connections_ok, (v) => int(v), { ratio: false });
row('broadcast: server CPU per delivered message', 'µs', (r) => r.gateway_cpu_us_per_delivery, fix(1));
row('broadcast: all received, p50 of rounds', 'ms', (r) => (r.all_received.count ? r.all_received.p50_us : null), ms);
row('broadcast: all received, max of rounds', 'ms', (r) => (r.all_received.count ? r.all_received.max_us : null), ms);
row('broadcast: deliveries received', '', (r) => r.deliveries_received, (v) => int(v), { ratio: false });
for (const u of uni) {
  const o = { hr: u.herald, sr: u.socketio };
  const at = `unicast ${u.via} ${int(u.rate)}/s`;
  row(`${at}: CPU per message (A + B + Redis)`, 'µs', (r) => r.cpu_us_per_msg, fix(1), o);
  row(`${at}: p50 latency`, 'ms', (r) => (r.latency.count ? r.latency.p50_us : null), ms, o);
  row(`${at}: p99 latency`, 'ms', (r) => (r.latency.count ? r.latency.p99_us : null), ms, o);
  row(`${at}: achieved send rate`, 'msg/s', (r) => r.achieved_rate, int, o);
  const pct = (v) => `${Math.round(v.a * 100)} / ${Math.round(v.b * 100)} / ${Math.round(v.redis * 100)}`;
  row(`${at}: CPU split A / B / Redis, whole run`, '%', (r) => r, pct, {
    hr: readSplit(`herald-unicast-${u.via}-${u.rate}`),
    sr: readSplit(`socketio-unicast-${u.via}-${u.rate}`),
    ratio: false,
  });
  row(`${at}: lost (accepted, never received)`, '', (r) => r.lost, (v) => int(v), { ...o, ratio: false });
  row(`${at}: sustained (≥95% of rate, none lost, p99 ≤ ${process.env.MAX_P99_MS || 100} ms)`, '', (r) => (r.sustained ? 1 : 0), (v) => (v ? 'yes' : 'NO'), { ...o, ratio: false });
}

const head = ['scenario', 'Herald', 'socket.io', 'socket.io ÷ Herald'];
const shown = rows.filter((r) => r.herald !== null || r.socketio !== null);
const body = shown.map((r) => [`${r.scenario}${r.unit ? ` (${r.unit})` : ''}`, ...r.cells]);
const width = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
const line = (cols) => `| ${cols.map((c, i) => (i === 0 ? c.padEnd(width[i]) : c.padStart(width[i]))).join(' | ')} |`;
console.log('');
console.log(line(head));
console.log(`|${width.map((w, i) => (i === 0 ? '-'.repeat(w + 2) : `${'-'.repeat(w + 1)}:`)).join('|')}|`);
for (const b of body) console.log(line(b));

// Context: what each load generator cost (whole process tree, from `time`).
const lg = {};
const uniNames = uni.map((u) => `${u.via}-${u.rate}`);
for (const name of ['herald-conn', 'socketio-conn', ...uniNames.flatMap((n) => [`herald-unicast-${n}`, `socketio-unicast-${n}`])]) {
  lg[name] = readTime(name);
}
const lgLine = (a, b) => `${a}: ${lg[a] ? `${lg[a].cpu_s.toFixed(1)} s CPU in ${lg[a].wall_s.toFixed(0)} s` : '–'}; ${b}: ${lg[b] ? `${lg[b].cpu_s.toFixed(1)} s CPU in ${lg[b].wall_s.toFixed(0)} s` : '–'}`;
console.log('');
console.log('load generators, whole process tree (not in the figures above):');
for (const n of ['conn', ...uniNames.map((u) => `unicast-${u}`)]) {
  if (lg[`herald-${n}`] || lg[`socketio-${n}`]) console.log(`  ${lgLine(`herald-${n}`, `socketio-${n}`)}`);
}
const loadEnd = os.loadavg().map((v) => v.toFixed(2)).join(' ');
console.log(`load average: ${process.env.LOAD_START || '?'} at the start, ${loadEnd} at the end (${os.cpus().length} cores, shared)`);
console.log(`versions: socket.io ${version('socket.io')}, @socket.io/redis-adapter ${version('@socket.io/redis-adapter')}, redis (node) ${version('redis')}, node ${process.version}, redis-server ${process.env.REDIS_VERSION || '?'}`);

const out = {
  when: new Date().toISOString(),
  commit: process.env.COMMIT || 'unknown',
  machine: { cores: os.cpus().length, model: os.cpus()[0] && os.cpus()[0].model, mem_gib: Math.round(os.totalmem() / 2 ** 30), load_start: process.env.LOAD_START || null, load_end: loadEnd },
  knobs: Object.fromEntries(['N', 'PER_WORKER', 'CONCURRENCY', 'ROUNDS', 'RATES', 'VIAS', 'DURATION', 'RECEIVERS', 'SENDERS', 'HERALD_BACKEND'].map((k) => [k, process.env[k] || null])),
  versions: { socket_io: version('socket.io'), redis_adapter: version('@socket.io/redis-adapter'), node_redis: version('redis'), node: process.version, redis_server: process.env.REDIS_VERSION || null },
  rows: rows.map(({ scenario, unit, herald, socketio, ratio }) => ({ scenario, unit, herald, socketio, ratio_socketio_over_herald: ratio })),
  loadgen: lg,
  raw: { herald_conn: hConn, socketio_conn: sConn, unicast: uni },
};
fs.writeFileSync(path.join(dir, 'compare.json'), JSON.stringify(out, null, 2));
