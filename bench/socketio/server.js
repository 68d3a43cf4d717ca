'use strict';
// The original design Herald replaces (a Node.js + socket.io server),
// built as a benchmark peer for Herald (scripts/bench-compare.sh):
// socket.io 4 on Node's http server, @socket.io/redis-adapter so several
// nodes share one Redis, every message stored in Redis before it is pushed.
//
// What it keeps of that design: a check on the handshake (here a JWT, HS256,
// like Herald's, instead of "has a cookie"), the user bound to its
// connection on connect (a room per user, and the original's `addSocketId` as an
// HSET of the online socket), the unread messages pushed on login
// (`push_message`, an LRANGE of the user's list), the `todo` event that
// stores a message (RPUSH to the receiver's list) and then emits it to the
// receiver (`io.to(user).emit('todo_message')`, which the redis adapter
// publishes to every node), acknowledged through socket.io's ack callback,
// and `disconnect` removing the online entry. For a backend it also takes
// POST /send (the same as `todo`) and POST /broadcast (stored once, then
// `io.emit('announcement')`), behind an API key.
//
// Environment: REDIS_URL, JWT_SECRET and API_KEY (required), PORT, HOST
// (127.0.0.1), NODE_ID, PING_INTERVAL_MS (socket.io's 25000), BACKLOG
// (4096: Herald's listen backlog; Node's default is 511).

const crypto = require('crypto');
const http = require('http');
const { Server } = require('socket.io');
const { createAdapter } = require('@socket.io/redis-adapter');
const { createClient } = require('redis');
const jwt = require('jsonwebtoken');

const PORT = Number(process.env.PORT || 3000);
const HOST = process.env.HOST || '127.0.0.1';
const REDIS_URL = process.env.REDIS_URL; // no default: never someone else's Redis by accident
const JWT_SECRET = process.env.JWT_SECRET;
const API_KEY = process.env.API_KEY;
const NODE_ID = process.env.NODE_ID || `sio-${process.pid}`;
const PING_INTERVAL_MS = Number(process.env.PING_INTERVAL_MS || 25000);
const BACKLOG = Number(process.env.BACKLOG || 4096);
if (!JWT_SECRET || !API_KEY || !REDIS_URL) {
  console.error('REDIS_URL, JWT_SECRET and API_KEY are required');
  process.exit(2);
}

// A KeyObject: given the secret as a string, jsonwebtoken 9 first tries
// createPublicKey() on it at every verify (≈1 ms of CPU each, measured here).
const JWT_KEY = crypto.createSecretKey(Buffer.from(JWT_SECRET, 'utf8'));

const ONLINE = 'sio:online';
const inboxKey = (user) => `sio:inbox:${user}`;
const ANNOUNCEMENTS = 'sio:announcements';
let seq = 0;

async function main() {
  const store = createClient({ url: REDIS_URL });
  const pub = createClient({ url: REDIS_URL });
  const sub = pub.duplicate();
  for (const c of [store, pub, sub]) c.on('error', (e) => console.error('redis:', e.message));
  await Promise.all([store.connect(), pub.connect(), sub.connect()]);

  const httpServer = http.createServer((req, res) => api(req, res).catch((e) => {
    console.error('api:', e);
    if (!res.headersSent) res.writeHead(500);
    res.end();
  }));
  const io = new Server(httpServer, {
    adapter: createAdapter(pub, sub),
    pingInterval: PING_INTERVAL_MS,
  });

  // Store first, then push: the original's `todo` (addMessage, then emit).
  async function deliver(from, msg) {
    const stored = {
      id: `${NODE_ID}-${++seq}`,
      from,
      to: String(msg.to),
      body: msg.body,
      data: msg.data,
      at: Date.now(),
    };
    await store.rPush(inboxKey(stored.to), JSON.stringify(stored));
    io.to(stored.to).emit('todo_message', stored);
    return stored.id;
  }

  io.use((socket, next) => {
    const token = (socket.handshake.auth && socket.handshake.auth.token) || socket.handshake.query.token;
    try {
      const claims = jwt.verify(String(token), JWT_KEY, { algorithms: ['HS256'] });
      if (!claims.sub) throw new Error('no sub');
      socket.data.user = String(claims.sub);
      next();
    } catch (_) {
      next(new Error('Authentication error'));
    }
  });

  io.on('connection', (socket) => {
    const user = socket.data.user;
    socket.join(user);
    // The original's user_login: remember the socket, push what is stored.
    Promise.all([store.hSet(ONLINE, user, socket.id), store.lRange(inboxKey(user), 0, -1)])
      .then(([, unread]) => socket.emit('push_message', unread.map((m) => JSON.parse(m))))
      .catch((e) => console.error('login:', e.message));

    socket.on('todo', (msg, ack) => {
      if (!msg || typeof msg.to !== 'string' || typeof ack !== 'function') {
        if (typeof ack === 'function') ack({ ok: false, error: 'bad message' });
        return;
      }
      deliver(user, msg).then(
        (id) => ack({ ok: true, id }),
        (e) => ack({ ok: false, error: e.message }),
      );
    });

    socket.on('disconnect', () => {
      store.hDel(ONLINE, user).catch(() => {});
    });
  });

  async function api(req, res) {
    if (req.method === 'GET' && req.url === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      return res.end('ok');
    }
    if (req.method !== 'POST' || (req.url !== '/send' && req.url !== '/broadcast')) {
      res.writeHead(404);
      return res.end();
    }
    if (req.headers.authorization !== `Bearer ${API_KEY}`) {
      res.writeHead(401);
      return res.end();
    }
    const chunks = [];
    for await (const c of req) chunks.push(c);
    let msg;
    try {
      msg = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch (_) {
      res.writeHead(400);
      return res.end();
    }
    if (req.url === '/send') {
      if (typeof msg.to !== 'string') {
        res.writeHead(400);
        return res.end();
      }
      const id = await deliver(msg.from || 'api', msg);
      return reply(res, 202, { id });
    }
    // Broadcast: stored once, emitted to every socket on every node.
    const stored = { id: `${NODE_ID}-${++seq}`, body: msg.body, data: msg.data, at: Date.now() };
    await store.rPush(ANNOUNCEMENTS, JSON.stringify(stored));
    io.emit('announcement', stored);
    return reply(res, 202, { id: stored.id });
  }

  function reply(res, status, body) {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  }

  // Keep-alive connections from a backend stay open between bursts.
  httpServer.keepAliveTimeout = 65000;
  httpServer.listen(PORT, HOST, BACKLOG, () => {
    console.error(`socket.io ${require('socket.io/package.json').version} node ${NODE_ID} on ${HOST}:${PORT}`);
  });
  const stop = () => {
    io.close();
    Promise.allSettled([store.quit(), pub.quit(), sub.quit()]).finally(() => process.exit(0));
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
