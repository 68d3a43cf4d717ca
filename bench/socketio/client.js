'use strict';
// A lean socket.io client for the load generator: WebSocket (RFC 6455),
// engine.io v4 and socket.io v5 spoken by hand over a plain TCP socket
// (`net`), WebSocket transport only (no polling, no reconnect, no emitter
// per event), so the load generator takes as little of the shared cores
// as it can:
//
//   GET /socket.io/?EIO=4&transport=websocket   (HTTP upgrade, 101)
//   <- 0{"sid":…,"pingInterval":…}      engine.io open
//   -> 40{"token":"<jwt>"}               socket.io CONNECT to "/" with auth
//   <- 40{"sid":…}  or  44{"message":…}  connected / refused
//   <- 42["event",payload]               an event
//   -> 42<id>["event",payload]           an event asking for an ack
//   <- 43<id>[answer]                    the ack
//   <- 2  -> 3                           engine.io ping / pong
//
// Frames from the client are masked as the RFC requires, with the mask key
// 0 (any key is valid; this one leaves the payload as it is).

const crypto = require('crypto');
const net = require('net');

/** Monotonic microseconds (CLOCK_MONOTONIC: the same clock in every process). */
function nowUs() {
  return Number(process.hrtime.bigint() / 1000n);
}

const b64url = (buf) => Buffer.from(buf).toString('base64url');

/** An HS256 JWT for `sub`, valid for a day. */
function mintToken(secret, sub) {
  const header = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const payload = b64url(JSON.stringify({ sub, exp: Math.floor(Date.now() / 1000) + 86400 }));
  const sig = crypto.createHmac('sha256', secret).update(`${header}.${payload}`).digest('base64url');
  return `${header}.${payload}.${sig}`;
}

/** `http://host:port` -> { host, port, path } of the socket.io WebSocket endpoint. */
function socketUrl(base) {
  const u = new URL(base);
  return { host: u.hostname, port: Number(u.port || 80), path: '/socket.io/?EIO=4&transport=websocket' };
}

const KEY = crypto.randomBytes(16).toString('base64');
const ACCEPT = crypto.createHash('sha1').update(`${KEY}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');

/** One client frame (FIN, `opcode`, masked with key 0) carrying `payload`. */
function frame(opcode, payload) {
  const data = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload;
  const n = data.length;
  const head = n < 126 ? 6 : n < 65536 ? 8 : 14;
  const buf = Buffer.allocUnsafe(head + n);
  buf[0] = 0x80 | opcode;
  if (n < 126) {
    buf[1] = 0x80 | n;
  } else if (n < 65536) {
    buf[1] = 0x80 | 126;
    buf.writeUInt16BE(n, 2);
  } else {
    buf[1] = 0x80 | 127;
    buf.writeUInt32BE(0, 2);
    buf.writeUInt32BE(n, 6);
  }
  buf.writeUInt32BE(0, head - 4); // mask key 0
  data.copy(buf, head);
  return buf;
}

/**
 * One socket.io connection. `onEvent(frame)` gets every event packet as
 * received (`42["name",payload]`, a string left to the caller: the load
 * generator reads only its stamps, see `stamp`), `onAck(id, answer)` every
 * ack, `onClose()` the end of a connection that was up. `ready` resolves
 * when the event named `readyEvent` first arrives (the server's answer to
 * the login), or when the namespace is connected if `readyEvent` is null.
 */
class Conn {
  constructor(target, { token, login = null, localAddress, timeoutMs = 15000, readyEvent = null, onEvent, onAck, onClose }) {
    this.onEvent = onEvent || (() => {});
    this.onAck = onAck || (() => {});
    this.onClose = onClose || (() => {});
    this.open = false;
    this.upgraded = false;
    this.pending = null; // bytes of an incomplete frame (or HTTP head)
    this.ready = new Promise((resolve, reject) => {
      let settled = false;
      this.done = (err) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (err) {
          this.sock.destroy();
          reject(err);
        } else {
          resolve(this);
        }
      };
      const timer = setTimeout(() => this.done(new Error('connect timeout')), timeoutMs);
      this.readyEvent = readyEvent === null ? null : `42["${readyEvent}"`;
      this.token = token;
      // `login`: the user id to emit `user_login` with once connected (the
      // old client's flow, which Herald's endpoint answers with
      // `push_message`; the peer pushes at connect without it).
      this.login = login;
      this.sock = net.connect({ host: target.host, port: target.port, localAddress });
      this.sock.setNoDelay(true);
      this.sock.on('connect', () => {
        this.sock.write(
          `GET ${target.path} HTTP/1.1\r\nHost: ${target.host}:${target.port}\r\nUpgrade: websocket\r\n` +
            `Connection: Upgrade\r\nSec-WebSocket-Key: ${KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
        );
      });
      this.sock.on('data', (chunk) => this.read(chunk));
      this.sock.on('error', (e) => this.done(e));
      this.sock.on('close', () => {
        const was = this.open;
        this.open = false;
        this.done(new Error('closed before ready'));
        if (was) this.onClose();
      });
    });
  }

  read(chunk) {
    let buf = this.pending ? Buffer.concat([this.pending, chunk]) : chunk;
    this.pending = null;
    if (!this.upgraded) {
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) {
        this.pending = buf;
        return;
      }
      const head = buf.toString('latin1', 0, end);
      if (!head.startsWith('HTTP/1.1 101') || !head.includes(ACCEPT)) {
        this.done(new Error(`upgrade refused: ${head.split('\r\n')[0]}`));
        return;
      }
      this.upgraded = true;
      buf = buf.subarray(end + 4);
    }
    let at = 0;
    while (buf.length - at >= 2) {
      const b0 = buf[at];
      let n = buf[at + 1] & 0x7f;
      let h = 2;
      if (n === 126) {
        if (buf.length - at < 4) break;
        n = buf.readUInt16BE(at + 2);
        h = 4;
      } else if (n === 127) {
        if (buf.length - at < 10) break;
        n = buf.readUInt32BE(at + 2) * 2 ** 32 + buf.readUInt32BE(at + 6);
        h = 10;
      }
      if (buf.length - at < h + n) break;
      const payload = buf.subarray(at + h, at + h + n);
      at += h + n;
      const opcode = b0 & 0x0f;
      if (opcode === 1) this.packet(payload.toString('utf8'));
      else if (opcode === 9) this.sock.write(frame(10, payload)); // ping -> pong
      else if (opcode === 8) {
        this.sock.end(frame(8, Buffer.alloc(0)));
        return;
      }
      // The server (ws) never fragments these small messages; binary and
      // continuation frames are not used by socket.io's text protocol.
    }
    if (at < buf.length) this.pending = Buffer.from(buf.subarray(at));
  }

  packet(s) {
    switch (s.charCodeAt(0)) {
      case 0x30: // '0' engine.io open
        this.sock.write(frame(1, `40${JSON.stringify({ token: this.token })}`));
        return;
      case 0x32: // '2' ping
        this.sock.write(frame(1, '3'));
        return;
      case 0x34: // '4' socket.io packet
        break;
      default:
        return;
    }
    switch (s.charCodeAt(1)) {
      case 0x30: // '0' CONNECT ok
        this.open = true;
        if (this.login !== null) this.emit('user_login', { userId: this.login, socketId: null });
        if (this.readyEvent === null) this.done();
        return;
      case 0x34: // '4' CONNECT_ERROR
        this.done(new Error(`refused: ${s.slice(2)}`));
        return;
      case 0x32: { // '2' EVENT, `42<id>[…]` when it asks for an ack
        const at = s.indexOf('[');
        if (at > 2) {
          // Acknowledged at once (Herald's endpoint moves the device's
          // cursor on it), and handed on as an event without the id.
          this.sock.write(frame(1, `43${s.slice(2, at)}[]`));
          s = `42${s.slice(at)}`;
        }
        if (this.readyEvent !== null && s.startsWith(this.readyEvent)) {
          this.readyEvent = null;
          this.done();
        }
        this.onEvent(s);
        return;
      }
      case 0x33: { // '3' ACK
        const at = s.indexOf('[');
        this.onAck(Number(s.slice(2, at)), JSON.parse(s.slice(at))[0]);
        return;
      }
      default:
    }
  }

  /** Emits `name` with `payload`, asking for ack `id` when given. */
  emit(name, payload, id) {
    if (!this.open || this.sock.destroyed) return false;
    this.sock.write(frame(1, `42${id === undefined ? '' : id}${JSON.stringify([name, payload])}`));
    return true;
  }

  /** Writes everything `fn` sends as one batch (the socket is corked). */
  batch(fn) {
    this.sock.cork();
    try {
      fn();
    } finally {
      process.nextTick(() => this.sock.uncork());
    }
  }

  close() {
    this.open = false;
    this.sock.destroy();
  }
}

/**
 * Opens `count` connections with at most `concurrency` attempts in flight,
 * `retries` extra attempts each. `make(i)` returns the options of
 * connection i. Resolves to { conns (null where it failed), latencies (µs,
 * first attempt to ready), failed, retries, errors, lastUs }.
 */
async function connectMany(target, count, { concurrency, retries, make }) {
  const conns = new Array(count).fill(null);
  const latencies = [];
  const errors = [];
  let next = 0;
  let failed = 0;
  let retried = 0;
  let lastUs = 0;
  async function lane() {
    while (next < count) {
      const i = next++;
      const started = nowUs();
      for (let attempt = 0; ; attempt++) {
        try {
          conns[i] = await new Conn(target, make(i)).ready;
          const t = nowUs();
          lastUs = Math.max(lastUs, t);
          latencies.push(t - started);
          break;
        } catch (e) {
          if (attempt >= retries) {
            failed++;
            if (errors.length < 5) errors.push(String(e.message || e));
            break;
          }
          retried++;
          await new Promise((r) => setTimeout(r, 100 * (attempt + 1)));
        }
      }
    }
  }
  await Promise.all(Array.from({ length: Math.max(1, concurrency) }, lane));
  return { conns, latencies, failed, retries: retried, errors, lastUs };
}

/**
 * A pool of `size` keep-alive HTTP/1.1 connections to `target` (one request
 * in flight on each, like herald-loadtest's --http-concurrency), POSTing
 * JSON bodies to `path` with a bearer `apiKey`. `post(body, job)` sends at
 * once on an idle connection or queues; `onDone(job, status)` gets each
 * answer's status (0 when the connection failed).
 */
class HttpPool {
  constructor(target, { size, path, apiKey, localAddress, onDone }) {
    this.target = target;
    this.localAddress = localAddress;
    this.head = `POST ${path} HTTP/1.1\r\nHost: ${target.host}:${target.port}\r\nAuthorization: Bearer ${apiKey}\r\n` +
      'Content-Type: application/json\r\nContent-Length: ';
    this.onDone = onDone;
    this.queue = [];
    this.queued = 0; // index of the next queued item
    this.idle = [];
    this.closed = false;
    this.reconnects = 0;
    for (let i = 0; i < size; i++) this.lane();
  }

  /** One connection; it reconnects (bounded) when the server closes it. */
  lane() {
    const lane = { sock: net.connect({ host: this.target.host, port: this.target.port, localAddress: this.localAddress }), buf: '', job: null };
    lane.sock.setNoDelay(true);
    lane.sock.setEncoding('latin1');
    lane.sock.on('connect', () => this.next(lane));
    lane.sock.on('data', (d) => this.read(lane, d));
    lane.sock.on('error', () => {});
    lane.sock.on('close', () => {
      const i = this.idle.indexOf(lane);
      if (i >= 0) this.idle.splice(i, 1);
      if (lane.job !== null) this.onDone(lane.job, 0);
      lane.job = null;
      if (!this.closed && this.reconnects++ < 10000) setTimeout(() => this.lane(), 10);
    });
  }

  post(body, job) {
    const lane = this.idle.pop();
    if (lane) this.write(lane, body, job);
    else this.queue.push(body, job);
  }

  write(lane, body, job) {
    lane.job = job;
    lane.sock.write(`${this.head}${Buffer.byteLength(body)}\r\n\r\n${body}`);
  }

  next(lane) {
    if (this.queued < this.queue.length) {
      const body = this.queue[this.queued];
      const job = this.queue[this.queued + 1];
      this.queued += 2;
      if (this.queued > 65536 && this.queued * 2 > this.queue.length) {
        this.queue = this.queue.slice(this.queued);
        this.queued = 0;
      }
      this.write(lane, body, job);
    } else {
      this.idle.push(lane);
    }
  }

  /** Answers: a Content-Length body, or a chunked one (up to its last chunk). */
  read(lane, data) {
    lane.buf += data;
    for (;;) {
      const end = lane.buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = lane.buf.slice(0, end);
      const m = /content-length:\s*(\d+)/i.exec(head);
      let next;
      if (m) {
        next = end + 4 + Number(m[1]);
        if (lane.buf.length < next) return;
      } else if (/transfer-encoding:\s*chunked/i.test(head)) {
        const last = lane.buf.indexOf('\r\n0\r\n\r\n', end + 2);
        if (last < 0) return;
        next = last + 7;
      } else {
        next = end + 4;
      }
      const status = Number(lane.buf.slice(9, 12));
      lane.buf = lane.buf.slice(next);
      const job = lane.job;
      lane.job = null;
      this.onDone(job, status);
      this.next(lane);
    }
  }

  close() {
    this.closed = true;
    for (const l of this.idle) l.sock.destroy();
  }
}

/**
 * The integer field `name` of an event frame (its first occurrence), or
 * NaN: enough for the load generator's stamps, which are numbers, without
 * parsing every frame.
 */
function stamp(frameText, name) {
  const at = frameText.indexOf(`"${name}":`);
  if (at < 0) return NaN;
  let i = at + name.length + 3;
  let v = 0;
  let any = false;
  for (let c = frameText.charCodeAt(i); c >= 48 && c <= 57; c = frameText.charCodeAt(++i)) {
    v = v * 10 + (c - 48);
    any = true;
  }
  return any ? v : NaN;
}

module.exports = { Conn, HttpPool, connectMany, mintToken, nowUs, socketUrl, stamp };
