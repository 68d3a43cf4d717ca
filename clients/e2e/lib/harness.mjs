// Processes for the browser tests: our own redis-server, herald nodes on
// free ports (dev mode, Redis backend), a TCP front that plays the load
// balancer (so a node can die and another take its place behind one
// origin), and headless Chromium. Everything started here is killed on exit.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.resolve(here, '../../..');
export const ARTIFACTS = path.resolve(here, '../artifacts');
export const HERALD_BIN = process.env.HERALD_BIN ?? path.join(ROOT, 'target/debug/herald');
export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
export const SECRET = 'e2e-secret-not-for-production';
export const API_KEY = 'e2e-api-key';

fs.mkdirSync(ARTIFACTS, { recursive: true });

const children = new Set();

function killAll() {
  for (const p of children) {
    try {
      p.kill('SIGKILL');
    } catch {
      /* gone */
    }
  }
}
process.on('exit', killAll);
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    killAll();
    process.exit(130);
  });
}

export async function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Polls `fn` until it returns a truthy value; throws with `what` after `timeout` ms. */
export async function waitFor(fn, { timeout = 15_000, interval = 50, what = 'condition' } = {}) {
  const end = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
      last = v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > end) throw new Error(`timed out after ${timeout} ms waiting for ${what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
    await sleep(interval);
  }
}

function spawnLogged(name, cmd, args, env = {}) {
  const log = fs.openSync(path.join(ARTIFACTS, `${name}.log`), 'w');
  const p = spawn(cmd, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', log, log] });
  fs.closeSync(log);
  children.add(p);
  p.on('exit', () => children.delete(p));
  return p;
}

function tcpUp(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export async function startRedis() {
  const port = await freePort();
  const proc = spawnLogged('redis', 'redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no']);
  await waitFor(() => tcpUp(port), { what: `redis-server on ${port}` });
  return { port, url: `redis://127.0.0.1:${port}`, stop: () => proc.kill('SIGKILL') };
}

/** A herald node in dev mode on the Redis at `redisUrl`; `env` adds settings. */
export async function startGateway(name, redisUrl, env = {}) {
  const port = await freePort();
  const proc = spawnLogged(name, HERALD_BIN, ['serve'], {
    HERALD__SERVER__LISTEN: `127.0.0.1:${port}`,
    HERALD__AUTH__JWT_SECRET: SECRET,
    HERALD__API__KEY: API_KEY,
    HERALD__DEV__ENABLED: 'true',
    HERALD__DEV__DEMO_DIR: path.join(ROOT, 'clients/demo'),
    HERALD__DEV__SDK_DIR: path.join(ROOT, 'clients/js/dist'),
    HERALD__BACKEND: 'redis',
    HERALD__REDIS__URL: redisUrl,
    HERALD__NODE__ID: name,
    // Chromium and the node share a loaded test machine: its lag is no
    // reason to shed (the gateway's tests/admission.rs covers shedding).
    HERALD__ADMISSION__ENABLED: 'false',
    RUST_LOG: process.env.RUST_LOG ?? 'info',
    ...env,
  });
  let exited = null;
  proc.on('exit', (code, sig) => (exited = sig ?? code));
  const base = `http://127.0.0.1:${port}`;
  await waitFor(
    async () => {
      if (exited != null) throw new Error(`${name} exited (${exited}); see artifacts/${name}.log`);
      return (await fetch(`${base}/healthz`).catch(() => null))?.ok;
    },
    // A node's first start after a rebuild is slow on a loaded machine.
    { timeout: 60_000, what: `${name} /healthz` },
  );
  return {
    name,
    port,
    base,
    proc,
    /** kill -9: the node dies without a goodbye. */
    kill() {
      proc.kill('SIGKILL');
      return new Promise((r) => (exited != null ? r() : proc.once('exit', () => r())));
    },
  };
}

/**
 * The load balancer in front of the nodes: each new TCP connection goes to
 * the first target that accepts it; when a node dies its connections are cut.
 * `refuse` drops new connections (a network blip); `heads` keeps the HTTP
 * request heads that went through, for the tests to read.
 */
export async function startFront(targets) {
  const port = await freePort();
  const live = new Set();
  const front = { port, base: `http://127.0.0.1:${port}`, targets, refuse: false, heads: [] };
  const server = net.createServer((client) => {
    client.on('error', () => {});
    if (front.refuse) return client.destroy();
    live.add(client);
    client.on('close', () => live.delete(client));
    client.pause();
    const list = [...front.targets()];
    // Every HTTP request head (a kept-alive connection carries several).
    client.on('data', (d) => {
      for (const m of d.toString('latin1').matchAll(/(?:GET|POST|PUT|DELETE) \/[^\r\n]* HTTP\/1\.1\r\n[\s\S]*?\r\n\r\n/g)) {
        front.heads.push(m[0].trimEnd());
      }
    });
    const next = () => {
      const target = list.shift();
      if (target == null) return client.destroy();
      const up = net.connect(target, '127.0.0.1');
      up.once('error', next);
      up.once('connect', () => {
        up.removeListener('error', next);
        up.on('error', () => {});
        live.add(up);
        up.on('close', () => {
          live.delete(up);
          client.destroy();
        });
        client.on('close', () => up.destroy());
        client.pipe(up);
        up.pipe(client);
        client.resume();
      });
    };
    next();
  });
  await new Promise((r) => server.listen(port, '127.0.0.1', r));
  front.cut = () => {
    for (const s of live) s.destroy();
  };
  front.close = () =>
    new Promise((r) => {
      front.cut();
      server.close(() => r());
    });
  return front;
}

/** Chromium as a root user in a closed network needs these. */
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-dev-shm-usage',
  '--disable-gpu',
  '--no-first-run',
  '--disable-default-apps',
  '--disable-domain-reliability',
  '--disable-client-side-phishing-detection',
  '--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication,CertificateTransparencyComponentUpdater',
  '--no-pings',
  '--metrics-recording-only',
];

export function launchBrowser() {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 60_000 });
}

/** The server API (with the API key). */
export async function api(base, method, p, body) {
  const res = await fetch(`${base}${p}`, {
    method,
    headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
    body: body == null ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  const json = text ? JSON.parse(text) : null;
  if (!res.ok) throw new Error(`${method} ${p}: ${res.status} ${text}`);
  return json;
}

let uniq = 0;
/** A user name not used before in this run (the Redis is fresh, but tests share it). */
export function user(name) {
  return `${name}-${process.pid}-${++uniq}`;
}
