// The client against live herald nodes (test/gateways.ts): every route once,
// the errors the API gives, a lost answer retried into one stored message,
// and timeouts.
import { randomUUID } from 'node:crypto';
import { describe, expect, inject, it } from 'vitest';
import { Herald, HeraldError, type SendResult } from '../src/index.js';
import { droppingProxy, silentServer } from './faults.js';

const memory = inject('memory');
const redis = inject('redis');
const keys = inject('keys');

const admin = (url = memory.url, extra = {}) => new Herald({ url, apiKey: keys.admin, ...extra });
const user = () => `sdk-${randomUUID()}`;

/** The error a promise rejects with (fails the test if it resolves). */
async function failure(p: Promise<unknown>): Promise<HeraldError> {
  const err = await p.then(
    (v) => {
      throw new Error(`expected a HeraldError, got ${JSON.stringify(v)}`);
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(HeraldError);
  return err as HeraldError;
}

describe('send and read back', () => {
  it('stores a message that the user’s history, inbox and counts show', async () => {
    const herald = admin();
    const alice = user();
    const sent = await herald.send({
      to: { users: [alice] },
      category: 'system',
      title: 'Welcome',
      body: 'hello from the SDK',
      data: { order: 7 },
      tags: ['billing'],
    });
    expect(sent.stored).toEqual([{ stream: 'inbox', user: alice, seq: 1 }]);
    expect(sent.skipped).toEqual([]);

    const history = await herald.history(alice);
    expect(history.messages).toHaveLength(1);
    expect(history.messages[0]).toMatchObject({
      id: sent.id,
      seq: 1,
      body: 'hello from the SDK',
      title: 'Welcome',
      data: { order: 7 },
      tags: ['billing'],
      state: 'unseen',
    });
    expect((await herald.inbox(alice, { after: 0 })).messages.map((m) => m.id)).toEqual([sent.id]);
    expect((await herald.counts(alice)).unread_total).toBe(1);
    expect(await herald.counts(alice, { tags: ['billing'] })).toEqual({ unread: 1 });
    expect(await herald.counts(alice, { tags: ['other'] })).toEqual({ unread: 0 });

    expect(await herald.mark(alice, { state: 'read', ids: [sent.id] })).toEqual({ changed: 1 });
    expect((await herald.history(alice, { state: 'read' })).messages.map((m) => m.id)).toEqual([sent.id]);
    expect((await herald.counts(alice)).unread_total).toBe(0);
  });

  it('sends a batch, in order, each with its own key', async () => {
    const herald = admin();
    const [a, b] = [user(), user()];
    const { results } = await herald.sendBatch([
      { to: { users: [a] }, category: 'remind', body: 'one' },
      { to: { users: [a, b] }, category: 'system', body: 'two' },
    ]);
    expect(results).toHaveLength(2);
    expect((results[1] as SendResult).stored.map((s) => s.user).sort()).toEqual([a, b].sort());
    expect((await herald.history(a)).messages.map((m) => m.body)).toEqual(['two', 'one']);
  });

  it('schedules, reads and cancels a send', async () => {
    const herald = admin();
    const deliverAt = Date.now() + 3_600_000;
    const answer = await herald.send({ to: { users: [user()] }, category: 'remind', body: 'later', deliver_at: deliverAt });
    expect(answer).toMatchObject({ deliver_at: deliverAt });
    const id = answer.scheduled;
    expect(await herald.scheduled(id)).toEqual({ id, state: 'pending', deliver_at: deliverAt });
    expect((await herald.cancelScheduled(id)).state).toBe('cancelled');
  });

  it('publishes to a topic’s subscribers and follows the job', async () => {
    const herald = admin();
    const [reader, topic] = [user(), `article:${randomUUID()}`];
    expect(await herald.subscribe(reader, topic)).toEqual({ changed: true });
    expect(await herald.subscribe(reader, topic)).toEqual({ changed: false });
    expect(await herald.topics(reader)).toEqual({ topics: [topic] });
    expect(await herald.subscribers(topic)).toEqual({ topic, subscribers: [reader], next: null, total: 1 });
    const { job, subscribers } = await herald.publish(topic, { body: 'chapter 12 is out' });
    expect(subscribers).toBe(1);
    let state = '';
    const end = Date.now() + 10_000;
    while (state !== 'done') {
      if (Date.now() > end) throw new Error(`job ${job} not done after 10 s (state ${state})`);
      state = (await herald.job(job)).state;
      if (state !== 'done') await new Promise((r) => setTimeout(r, 20));
    }
    expect((await herald.history(reader)).messages.map((m) => m.body)).toEqual(['chapter 12 is out']);
    expect(await herald.unsubscribe(reader, topic)).toEqual({ changed: true });
  });

  it('acts on a button once, and says so the second time', async () => {
    const herald = admin();
    const bob = user();
    const sent = await herald.send({
      to: { users: [bob] },
      category: 'system',
      body: 'join the team?',
      actions: [{ id: 'accept', label: 'Accept' }],
    });
    expect(await herald.act(bob, { message: sent.id, action: 'accept' })).toEqual({ message: sent.id, acted: 'accept' });
    const again = await failure(herald.act(bob, { message: sent.id, action: 'accept' }));
    expect([again.status, again.code, again.attempts]).toEqual([409, 'already_acted', 1]);
  });

  it('reads and changes preferences, blocks, conversations and presence', async () => {
    const herald = admin();
    const [carol, dave] = [user(), user()];
    const prefs = await herald.updatePreferences(carol, {
      categories: { remind: { in_app: false } },
      quiet_hours: { tz: 'Europe/Paris', start: '22:00', end: '07:00' },
    });
    expect(prefs.categories.remind).toEqual({ in_app: false, fallback: true });
    expect(await herald.preferences(carol)).toEqual(prefs);
    const skipped = await herald.send({ to: { users: [carol] }, category: 'remind', body: 'muted' });
    expect(skipped.skipped).toEqual([carol]);

    expect(await herald.block(carol, dave)).toEqual({ changed: true });
    expect(await herald.blocks(carol)).toEqual({ blocked: [dave] });
    const blocked = await failure(herald.send({ to: { users: [carol] }, category: 'mailbox', from: dave, body: 'hi' }));
    expect([blocked.status, blocked.code]).toEqual([403, 'blocked']);
    expect(await herald.unblock(carol, dave)).toEqual({ changed: true });

    await herald.send({ to: { users: [carol] }, category: 'mailbox', from: dave, body: 'hello carol' });
    const { conversations } = await herald.conversations(carol);
    expect(conversations.map((c) => [c.peer, c.unread])).toEqual([[dave, 1]]);
    expect((await herald.conversation(carol, dave)).messages.map((m) => m.body)).toEqual(['hello carol']);

    expect(await herald.presence(carol)).toEqual({ user_id: carol, online: false, connections: [] });
    expect(typeof (await herald.onlineUsers()).online_users).toBe('number');
  });

  it('exports and erases a user', async () => {
    const herald = admin();
    const erin = user();
    await herald.send({ to: { users: [erin] }, category: 'system', body: 'yours' });
    const doc = await herald.exportUser(erin);
    expect(doc.user).toBe(erin);
    expect(doc.messages.map((m) => [m.body, m.state])).toEqual([['yours', 'unseen']]);
    expect((await herald.eraseUser(erin)).erased.messages).toBe(1);
    expect((await herald.exportUser(erin)).messages).toEqual([]);
    expect((await herald.eraseUser(erin)).erased.messages).toBe(0);
  });

  it('names the dead webhooks route, which is 404 while webhooks are off', async () => {
    const err = await failure(admin().deadWebhooks({ limit: 10 }));
    expect([err.status, err.code]).toEqual([404, 'not_found']);
  });
});

describe('errors carry the API’s code', () => {
  it('a 400 has the code, the message and the status, and is not retried', async () => {
    const err = await failure(admin().send({ to: { users: [user()] }, category: 'no-such-category', body: 'x' }));
    expect(err.status).toBe(400);
    expect(err.code).toBe('invalid_field');
    expect(err.message).toMatch(/unknown category "no-such-category"/);
    expect(err.attempts).toBe(1);
  });

  it('an unknown field is refused (400 bad_request), never dropped', async () => {
    const message = { to: { users: [user()] }, category: 'system', body: 'x', colour: 'red' };
    const err = await failure(admin().send(message as never));
    expect([err.status, err.code]).toEqual([400, 'bad_request']);
    expect(err.message).toMatch(/colour/);
  });

  it('the same key with another body is a 409 conflict', async () => {
    const herald = admin();
    const to = { users: [user()] };
    await herald.send({ to, category: 'system', body: 'first', idempotency_key: 'order-1' });
    const err = await failure(herald.send({ to, category: 'system', body: 'second', idempotency_key: 'order-1' }));
    expect([err.status, err.code]).toEqual([409, 'conflict']);
  });
});

describe('auth errors', () => {
  it('a wrong key is a 401, not retried', async () => {
    const herald = new Herald({ url: memory.url, apiKey: 'not-a-key' });
    const err = await failure(herald.history(user()));
    expect([err.status, err.code, err.attempts]).toEqual([401, 'unauthorized', 1]);
  });

  it('a key without the route’s scope is a 403', async () => {
    const sender = new Herald({ url: memory.url, apiKey: keys.send });
    await sender.send({ to: { users: [user()] }, category: 'system', body: 'allowed' });
    const err = await failure(sender.history(user()));
    expect([err.status, err.code]).toEqual([403, 'unauthorized']);
    expect(err.message).toMatch(/scope/);

    const reader = new Herald({ url: memory.url, apiKey: keys.users });
    await reader.counts(user());
    const admin = await failure(reader.exportUser(user()));
    expect([admin.status, admin.code]).toEqual([403, 'unauthorized']);
  });
});

describe('a lost answer is retried with the same key and stored once', () => {
  const backends = [
    ['memory', memory],
    ['redis', redis],
  ] as const;
  for (const [name, node] of backends) {
    it.skipIf(node === null)(`on the ${name} backend`, async () => {
      if (node === null) return;
      const proxy = await droppingProxy(node.port, 1);
      try {
        const herald = new Herald({ url: proxy.url, apiKey: keys.admin, retryBaseDelay: 10 });
        const frank = user();
        const sent = await herald.send({ to: { users: [frank] }, category: 'system', body: 'exactly once' });

        // Two requests went through: the first was served and its answer cut.
        expect(proxy.requests).toHaveLength(2);
        const sentKeys = proxy.requests.map((r) => /"idempotency_key":"([^"]+)"/.exec(r)?.[1]);
        expect(sentKeys[0]).toBeTruthy();
        expect(sentKeys[1]).toBe(sentKeys[0]);

        // The retry got the first outcome: one message, the same id and seq.
        const { messages } = await admin(node.url).history(frank);
        expect(messages.map((m) => [m.id, m.seq])).toEqual([[sent.id, 1]]);
        expect(sent.stored).toEqual([{ stream: 'inbox', user: frank, seq: 1 }]);
      } finally {
        await proxy.close();
      }
    });
  }

  it('a send the caller keyed keeps its key across retries', async () => {
    const proxy = await droppingProxy(memory.port, 2);
    try {
      const herald = new Herald({ url: proxy.url, apiKey: keys.admin, retryBaseDelay: 10 });
      const gina = user();
      await herald.send({ to: { users: [gina] }, category: 'system', body: 'keyed', idempotency_key: `order-${gina}` });
      expect(proxy.requests).toHaveLength(3);
      for (const r of proxy.requests) expect(r).toContain(`"idempotency_key":"order-${gina}"`);
      expect((await admin().history(gina)).messages).toHaveLength(1);
    } finally {
      await proxy.close();
    }
  });

  it('without keys (idempotencyKeys: false) a lost answer is not retried', async () => {
    const proxy = await droppingProxy(memory.port, 1);
    try {
      const herald = new Herald({ url: proxy.url, apiKey: keys.admin, idempotencyKeys: false });
      const hank = user();
      const err = await failure(herald.send({ to: { users: [hank] }, category: 'system', body: 'unknown outcome' }));
      expect([err.status, err.code, err.attempts]).toEqual([0, 'network', 1]);
      expect(proxy.requests).toHaveLength(1);
      expect(proxy.requests[0]).not.toContain('idempotency_key');
      // It was stored: a network error on a send is an unknown outcome.
      expect((await admin().history(hank)).messages).toHaveLength(1);
    } finally {
      await proxy.close();
    }
  });
});

describe('timeouts', () => {
  it('a call with no answer throws timeout when its time is up', async () => {
    const silent = await silentServer();
    try {
      const herald = new Herald({ url: silent.url, apiKey: keys.admin, timeout: 300 });
      const started = Date.now();
      const err = await failure(herald.history(user()));
      const took = Date.now() - started;
      expect([err.status, err.code]).toEqual([0, 'timeout']);
      expect(took).toBeGreaterThanOrEqual(290);
      expect(took).toBeLessThan(5_000);
      expect(silent.accepted()).toBe(1);
    } finally {
      await silent.close();
    }
  });

  it('a per-call timeout overrides the client’s', async () => {
    const silent = await silentServer();
    try {
      const herald = new Herald({ url: silent.url, apiKey: keys.admin, timeout: 60_000 });
      const err = await failure(herald.send({ to: { users: [user()] }, category: 'system', body: 'x' }, { timeout: 200 }));
      expect(err.code).toBe('timeout');
    } finally {
      await silent.close();
    }
  });

  it('the caller’s signal aborts a call', async () => {
    const silent = await silentServer();
    try {
      const herald = new Herald({ url: silent.url, apiKey: keys.admin });
      const controller = new AbortController();
      const call = failure(herald.history(user(), {}, { signal: controller.signal }));
      await waitUntil(() => silent.accepted() === 1);
      controller.abort();
      const err = await call;
      expect([err.status, err.code]).toEqual([0, 'aborted']);
    } finally {
      await silent.close();
    }
  });
});

async function waitUntil(probe: () => boolean, timeout = 5_000): Promise<void> {
  const end = Date.now() + timeout;
  while (!probe()) {
    if (Date.now() > end) throw new Error(`condition not met within ${timeout} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
