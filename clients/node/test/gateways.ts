// The live nodes every test file talks to, started once (vitest globalSetup):
// one herald node on the memory backend and, when redis-server is installed,
// a private redis-server on a free port with a node on it. Each node's log
// is in clients/node/.test-logs/. Everything started here is killed in the
// teardown, and on exit if the run dies first.
//
// HERALD_BIN names the gateway binary (default: the workspace's
// target/debug/herald, which scripts/test-sdk-node.sh builds).
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import type { TestProject } from 'vitest/node';

const here = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(here, '../../..');
const LOGS = path.resolve(here, '../.test-logs');

/** The keys the nodes accept: the admin key, and one key per narrower scope. */
export const KEYS = {
  admin: 'sdk-test-admin-key',
  send: 'sdk-test-send-key-0123456789',
  users: 'sdk-test-users-key-0123456789',
} as const;

export interface Node {
  name: string;
  url: string;
  port: number;
}

declare module 'vitest' {
  export interface ProvidedContext {
    memory: Node;
    /** null when redis-server is not installed (the Redis case is skipped, saying so). */
    redis: Node | null;
    keys: typeof KEYS;
  }
}

const children = new Set<ChildProcess>();
function killAll(): void {
  for (const p of children) p.kill('SIGKILL');
}
process.on('exit', killAll);

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** Polls `probe` until it is true; throws naming `what` after `timeout` ms. */
export async function waitFor(
  probe: () => Promise<boolean> | boolean,
  what: string,
  timeout = 15_000,
): Promise<void> {
  const end = Date.now() + timeout;
  while (!(await probe())) {
    if (Date.now() > end) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await sleep(50);
  }
}

function start(name: string, cmd: string, args: string[], env: Record<string, string> = {}): ChildProcess {
  const log = fs.openSync(path.join(LOGS, `${name}.log`), 'w');
  const p = spawn(cmd, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', log, log] });
  fs.closeSync(log);
  children.add(p);
  p.on('exit', () => children.delete(p));
  return p;
}

function tcpUp(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

async function startGateway(bin: string, name: string, env: Record<string, string>): Promise<Node> {
  const port = await freePort();
  // The narrower keys need the config file (a list); the admin key is `api.key`.
  const config = path.join(LOGS, `${name}.toml`);
  fs.writeFileSync(
    config,
    `[[api.keys]]\nname = "send"\nkey = "${KEYS.send}"\nscopes = ["send"]\n\n` +
      `[[api.keys]]\nname = "users"\nkey = "${KEYS.users}"\nscopes = ["users"]\n`,
  );
  const proc = start(name, bin, ['serve', '--config', config], {
    HERALD__SERVER__LISTEN: `127.0.0.1:${port}`,
    HERALD__AUTH__JWT_SECRET: 'sdk-test-secret',
    HERALD__API__KEY: KEYS.admin,
    HERALD__NODE__ID: name,
    // The tests share a loaded machine with builds: lag is no reason to shed.
    HERALD__ADMISSION__ENABLED: 'false',
    RUST_LOG: process.env.RUST_LOG ?? 'info',
    ...env,
  });
  let exited: string | null = null;
  proc.on('exit', (code, sig) => (exited = String(sig ?? code)));
  const url = `http://127.0.0.1:${port}`;
  await waitFor(
    async () => {
      if (exited !== null) throw new Error(`${name} exited (${exited}); see ${LOGS}/${name}.log`);
      return (await fetch(`${url}/healthz`).catch(() => null))?.ok === true;
    },
    `${name} /healthz`,
    60_000,
  );
  return { name, url, port };
}

function onPath(cmd: string): boolean {
  return (process.env.PATH ?? '').split(path.delimiter).some((d) => d !== '' && fs.existsSync(path.join(d, cmd)));
}

export default async function setup(project: TestProject): Promise<() => void> {
  fs.mkdirSync(LOGS, { recursive: true });
  const bin = process.env.HERALD_BIN ?? path.join(ROOT, 'target/debug/herald');
  if (!fs.existsSync(bin)) {
    throw new Error(
      `no herald binary at ${bin}: build it (cargo build -p herald-gateway) or set HERALD_BIN; scripts/test-sdk-node.sh does both`,
    );
  }
  const memory = await startGateway(bin, 'sdk-memory', { HERALD__BACKEND: 'memory' });
  let redis: Node | null = null;
  if (onPath('redis-server')) {
    const port = await freePort();
    start('redis', 'redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no']);
    await waitFor(() => tcpUp(port), `redis-server on ${port}`);
    redis = await startGateway(bin, 'sdk-redis', {
      HERALD__BACKEND: 'redis',
      HERALD__REDIS__URL: `redis://127.0.0.1:${port}`,
    });
  } else {
    console.warn('SKIP the Redis case: redis-server is not installed (scripts/ensure-redis.sh installs it)');
  }
  project.provide('memory', memory);
  project.provide('redis', redis);
  project.provide('keys', KEYS);
  return killAll;
}
