// The Socket.IO endpoint (`socketio.enabled`) against the real socket.io-client 4
// from npm: the old socket.io server's client flow on two Herald nodes over one
// Redis (user_login → push_message, todo across nodes → todo_message and the ack,
// a native WebSocket client of the receiver getting the same message once), a
// forged userId, a reconnect that misses nothing, long-polling, a broadcast.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import net from 'node:net';
import { io } from 'socket.io-client';
import WebSocket from 'ws';

import { api, startFront, startGateway, startRedis, user, waitFor } from './lib/harness.mjs';

const ORIGIN = 'https://app.example.test';
const SESSION_SECRET = 'keyboard-cat';
const SOCKETIO = {
  HERALD__SOCKETIO__ENABLED: 'true',
  // The old web app's express-session (connect-redis) in the same Redis.
  HERALD__AUTH__SESSION__COOKIE: 'connect.sid',
  HERALD__AUTH__SESSION__SECRETS: SESSION_SECRET,
  HERALD__AUTH__ALLOWED_ORIGINS: ORIGIN,
};
let redis;
let nodeA;
let nodeB;

before(async () => {
  redis = await startRedis();
  [nodeA, nodeB] = await Promise.all([
    startGateway('sio-a', redis.url, SOCKETIO),
    startGateway('sio-b', redis.url, SOCKETIO),
  ]);
});

after(() => {
  nodeA?.proc.kill('SIGKILL');
  nodeB?.proc.kill('SIGKILL');
  redis?.stop();
});

async function token(node, name) {
  const res = await fetch(`${node.base}/dev/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ user: name }),
  });
  assert.equal(res.status, 200, await res.clone().text());
  return (await res.json()).token;
}

/**
 * An old client: socket.io-client 4 as the old web app used it, with what it
 * received kept per event. `ack` calls each message's ack callback.
 */
async function oldClient(node, name, { device = 'web', transports = ['websocket'], ack = true } = {}) {
  const socket = io(node.base, {
    auth: { token: await token(node, name), device },
    transports,
    reconnection: false,
    forceNew: true,
  });
  const got = { push_message: [], todo_message: [], message: [], error: [], counts: [] };
  for (const event of Object.keys(got)) {
    socket.on(event, (payload, callback) => {
      got[event].push(payload);
      if (ack && typeof callback === 'function') callback();
    });
  }
  await new Promise((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('connect_error', reject);
  });
  return { socket, got, close: () => socket.disconnect() };
}

/** A native WebSocket client, its message frames kept. */
async function nativeClient(node, name) {
  const ws = new WebSocket(`ws://127.0.0.1:${node.port}/ws?token=${await token(node, name)}&device=native`);
  const messages = [];
  ws.on('message', (data) => {
    const frame = JSON.parse(data.toString());
    if (frame.type === 'message') messages.push(frame);
  });
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  return { messages, close: () => ws.close() };
}

/** Stores an express-session for `name` as connect-redis does; its signed cookie. */
async function session(name) {
  const id = crypto.randomBytes(12).toString('hex');
  const doc = JSON.stringify({ cookie: { path: '/', httpOnly: true }, user: { id: name } });
  await new Promise((resolve, reject) => {
    const c = net.connect(redis.port, '127.0.0.1', () => {
      const args = ['SET', `sess:${id}`, doc, 'EX', '600'];
      c.write(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`);
    });
    c.once('data', (d) => (c.end(), d.toString().startsWith('+OK') ? resolve() : reject(new Error(d.toString()))));
    c.once('error', reject);
  });
  const sig = crypto.createHmac('sha256', SESSION_SECRET).update(id).digest('base64').replace(/=+$/, '');
  return `connect.sid=${encodeURIComponent(`s:${id}.${sig}`)}`;
}

/** Connects with `options`; resolves with the socket, or rejects with the connect_error. */
function connectWith(node, options) {
  const socket = io(node.base, { reconnection: false, forceNew: true, ...options });
  return new Promise((resolve, reject) => {
    socket.once('connect', () => resolve(socket));
    socket.once('connect_error', (err) => (socket.close(), reject(err)));
  });
}

const send = (node, to, body, extra = {}) =>
  api(node.base, 'POST', '/v1/messages', { to: { users: [to] }, category: 'remind', body, ...extra }).then((r) => r.id);

test('the old client flow across two nodes: user_login, push_message, todo with its ack, todo_message', async () => {
  const [alice, bob] = [user('alice'), user('bob')];
  const earlier = await send(nodeA, bob, 'sent before bob logged in');
  const bobOld = await oldClient(nodeB, bob);
  const bobNative = await nativeClient(nodeB, bob);
  const aliceOld = await oldClient(nodeA, alice);
  try {
    bobOld.socket.emit('user_login', { userId: bob, socketId: bobOld.socket.id });
    const push = await waitFor(() => bobOld.got.push_message[0], { what: 'push_message' });
    assert.deepEqual(push.unread.remind.map((m) => m.id), [earlier]);
    assert.deepEqual(push.read.remind, []);
    assert.equal(push.counts.unread.remind, 1);
    assert.ok('mailbox' in push.unread && 'announcement' in push.read, 'every category listed');

    const ack = await aliceOld.socket.timeout(10_000).emitWithAck('todo', { receiver_id: bob, content: 'an order to approve', order: 42 });
    assert.ok(ack.id && ack.seq > 0, JSON.stringify(ack));
    const todo = await waitFor(() => bobOld.got.todo_message.find((m) => m.id === ack.id), { what: 'todo_message on node B' });
    assert.equal(todo.from, alice);
    assert.equal(todo.body, 'an order to approve');
    assert.equal(todo.receiver_id, bob, 'the todo fields stay where the old client read them');
    assert.equal(todo.order, 42);
    // The native client gets it too, once: a later message behind it proves
    // nothing more of it is on the way.
    const marker = await send(nodeA, bob, 'marker');
    await waitFor(() => bobNative.messages.some((m) => m.id === marker), { what: 'the marker on the native client' });
    assert.equal(bobNative.messages.filter((m) => m.id === ack.id).length, 1);
    assert.equal(bobOld.got.todo_message.filter((m) => m.id === ack.id).length, 1);

    const refused = await aliceOld.socket.timeout(10_000).emitWithAck('todo', { content: 'to nobody' });
    assert.equal(refused.error, 'invalid');
    const blockedSelf = await aliceOld.socket.timeout(10_000).emitWithAck('todo', { receiver_id: '', content: 'x' });
    assert.equal(blockedSelf.error, 'invalid');
  } finally {
    bobOld.close();
    bobNative.close();
    aliceOld.close();
  }
});

test('the web app\'s session cookie is the handshake\'s identity, as the old server required', async () => {
  const victor = user('victor');
  const cookie = await session(victor);
  const socket = await connectWith(nodeB, { transports: ['websocket'], extraHeaders: { cookie, origin: ORIGIN } });
  try {
    const push = new Promise((resolve) => socket.once('push_message', resolve));
    socket.emit('user_login', { userId: victor, socketId: socket.id });
    assert.equal((await push).counts.unread_total, 0);
  } finally {
    socket.close();
  }
  // Long-polling from a page on the same origin: a GET without Origin, which
  // the browser marks same-origin.
  const polling = await connectWith(nodeB, { transports: ['polling'], extraHeaders: { cookie, 'sec-fetch-site': 'same-origin' } });
  try {
    const push = new Promise((resolve) => polling.once('push_message', resolve));
    polling.emit('user_login', { userId: victor, socketId: polling.id });
    assert.equal((await push).counts.unread_total, 0);
  } finally {
    polling.close();
  }
  // No cookie, a cookie from another origin, a forged signature: refused.
  await assert.rejects(connectWith(nodeB, { transports: ['polling'], extraHeaders: { cookie, 'sec-fetch-site': 'cross-site' } }), /origin/);
  await assert.rejects(connectWith(nodeB, { transports: ['websocket'] }), /credentials/);
  await assert.rejects(connectWith(nodeB, { transports: ['websocket'], extraHeaders: { cookie, origin: 'https://evil.example' } }), /origin/);
  const forged = cookie.replace(/\.[^.]*$/, '.AAAA');
  await assert.rejects(connectWith(nodeB, { transports: ['websocket'], extraHeaders: { cookie: forged, origin: ORIGIN } }), /session/);
});

test('a forged userId is refused and changes nothing', async () => {
  const [mallory, victim] = [user('mallory'), user('victim')];
  await send(nodeA, victim, 'not for mallory');
  const client = await oldClient(nodeA, mallory);
  try {
    client.socket.emit('user_login', { userId: victim, socketId: client.socket.id });
    const error = await waitFor(() => client.got.error[0], { what: 'the error event' });
    assert.equal(error.error, 'forbidden');
    client.socket.emit('user_login', { userId: mallory, socketId: client.socket.id });
    const push = await waitFor(() => client.got.push_message[0], { what: 'push_message for the real user' });
    // Events keep their order on one socket: the forged login pushed nothing.
    assert.equal(client.got.push_message.length, 1);
    assert.deepEqual(push.unread.remind, []);
    assert.equal(push.counts.unread_total, 0);
  } finally {
    client.close();
  }
});

test('a reconnecting client gets what it missed, and nothing twice', async () => {
  const carol = user('carol');
  const client = await oldClient(nodeA, carol, { device: 'phone' });
  const first = await send(nodeB, carol, 'while connected');
  await waitFor(() => client.got.message.some((m) => m.id === first), { what: 'the first message' });
  // Its ack (called in the handler) travels before the disconnect on the one socket.
  client.socket.disconnect();
  const missed = await send(nodeB, carol, 'while away');
  client.socket.connect();
  try {
    await waitFor(() => client.got.message.some((m) => m.id === missed), { what: 'the missed message after the reconnect' });
    const marker = await send(nodeB, carol, 'marker');
    await waitFor(() => client.got.message.some((m) => m.id === marker), { what: 'the marker' });
    assert.deepEqual(
      client.got.message.map((m) => m.id),
      [first, missed, marker],
    );
  } finally {
    client.close();
  }
});

test('long-polling on one node: login, todo, live messages', async () => {
  const [dan, erin] = [user('dan'), user('erin')];
  const dansPoll = await oldClient(nodeA, dan, { transports: ['polling'] });
  const erinsPoll = await oldClient(nodeA, erin, { transports: ['polling'] });
  try {
    assert.equal(dansPoll.socket.io.engine.transport.name, 'polling');
    dansPoll.socket.emit('user_login', { userId: dan, socketId: dansPoll.socket.id });
    await waitFor(() => dansPoll.got.push_message[0], { what: 'push_message over polling' });
    const ack = await erinsPoll.socket.timeout(10_000).emitWithAck('todo', { receiver_id: dan, content: 'polled' });
    assert.ok(ack.id, JSON.stringify(ack));
    await waitFor(() => dansPoll.got.todo_message.some((m) => m.id === ack.id), { what: 'todo_message over polling' });
    const live = await send(nodeA, dan, 'live over polling');
    await waitFor(() => dansPoll.got.message.some((m) => m.id === live), { what: 'message over polling' });
    await waitFor(() => dansPoll.got.counts.at(-1)?.unread_total === 2, { what: 'counts over polling' });
  } finally {
    dansPoll.close();
    erinsPoll.close();
  }
});

test('a deploy moves an unchanged client: no server disconnect, it reconnects by itself and misses nothing', async () => {
  const nodeC = await startGateway('sio-c', redis.url, { ...SOCKETIO, HERALD__DRAIN__WINDOW_SECS: '1' });
  const front = await startFront(() => [nodeC.port, nodeB.port]);
  const hana = user('hana');
  // As the old web app built it: socket.io-client's defaults (reconnection on).
  const socket = io(front.base, {
    auth: { token: await token(nodeB, hana), device: 'web' },
    transports: ['websocket'],
    forceNew: true,
    reconnectionDelay: 100,
    reconnectionDelayMax: 500,
  });
  const nodes = [];
  const messages = [];
  const reasons = [];
  const reconnects = [];
  socket.on('welcome', (w) => nodes.push(w.node_id));
  socket.on('message', (m, ack) => (messages.push(m.id), ack()));
  socket.on('reconnect', (r) => reconnects.push(r));
  socket.on('disconnect', (reason) => reasons.push(reason));
  try {
    await waitFor(() => nodes[0] === 'sio-c', { what: 'a session on node C' });
    const before = await send(nodeB, hana, 'before the deploy');
    await waitFor(() => messages.includes(before), { what: 'the first message' });
    nodeC.proc.kill('SIGTERM');
    await waitFor(() => reconnects.length === 1, { what: 'the reconnect event' });
    const during = await send(nodeB, hana, 'while node C drains');
    await waitFor(() => nodes.at(-1) === 'sio-b', { timeout: 30_000, what: 'the client back on node B by itself' });
    await waitFor(() => messages.includes(during), { what: 'what it missed' });
    assert.deepEqual(reasons, ['transport close']);
    assert.deepEqual(messages, [before, during]);
  } finally {
    socket.close();
    await front.close();
    nodeC.proc.kill('SIGKILL');
  }
});

test('off by default: /socket.io/ is not routed', async () => {
  const off = await startGateway('sio-off', redis.url);
  try {
    const res = await fetch(`${off.base}/socket.io/?EIO=4&transport=polling`);
    assert.equal(res.status, 404);
    assert.equal((await res.json()).error.code, 'not_found');
  } finally {
    off.proc.kill('SIGKILL');
  }
});

test('a broadcast reaches Socket.IO clients on both nodes', async () => {
  const [fay, gus] = [user('fay'), user('gus')];
  const onA = await oldClient(nodeA, fay);
  const onB = await oldClient(nodeB, gus);
  try {
    const { id } = await api(nodeA.base, 'POST', '/v1/messages', { to: { all: true }, category: 'announcement', body: 'to everyone' });
    for (const client of [onA, onB]) {
      const got = await waitFor(() => client.got.message.find((m) => m.id === id), { what: 'the broadcast' });
      assert.equal(got.category, 'announcement');
      assert.equal(got.stream, 'all');
    }
  } finally {
    onA.close();
    onB.close();
  }
});
