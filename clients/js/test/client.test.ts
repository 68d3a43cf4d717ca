import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { HeraldClient, HeraldError, Inbox, type HeraldOptions } from '../src/index.js';
import { ResumeStore, memoryStorage, type StorageLike } from '../src/store.js';
import { FakeChannel, FakeEventSource, FakeLocks, FakeWebSocket, fakeFetch } from './fakes.js';

// A JWT whose payload is {"sub":"alice","exp":9999999999} (the SDK never checks the signature).
const b64url = (s: string) => Buffer.from(s).toString('base64url');
const TOKEN = `${b64url('{"alg":"HS256","typ":"JWT"}')}.${b64url('{"sub":"alice","exp":9999999999}')}.sig`;

function msg(seq: number, extra: Record<string, unknown> = {}) {
  return {
    type: 'message',
    seq,
    stream: 'inbox',
    id: `00000000-0000-0000-0000-${String(seq).padStart(12, '0')}`,
    category: 'remind',
    body: `m${seq}`,
    data: {},
    ts: '2026-01-01T00:00:00Z',
    ...extra,
  };
}

let storage: StorageLike;
const clients: HeraldClient[] = [];

function client(opts: HeraldOptions = {}): HeraldClient {
  const c = new HeraldClient({
    url: 'http://gw.test',
    token: TOKEN,
    device: 'd1',
    storage,
    WebSocket: FakeWebSocket as unknown as HeraldOptions['WebSocket'],
    EventSource: FakeEventSource as unknown as HeraldOptions['EventSource'],
    random: () => 0.5,
    ...opts,
  });
  clients.push(c);
  return c;
}

/** Lets promises and zero-delay timers run. */
const tick = (ms = 0) => vi.advanceTimersByTimeAsync(ms);

beforeEach(() => {
  vi.useFakeTimers();
  FakeWebSocket.reset();
  FakeEventSource.reset();
  storage = memoryStorage();
});

afterEach(() => {
  for (const c of clients.splice(0)) c.close();
  vi.useRealTimers();
});

describe('connecting', () => {
  it('opens a WebSocket with the token, device and subprotocol, and is open after the welcome', async () => {
    const c = client();
    const states: string[] = [];
    c.on('state', (s) => states.push(s));
    const welcome = c.connect();
    await tick();
    const ws = FakeWebSocket.last();
    expect(ws.url.startsWith('ws://gw.test/ws?')).toBe(true);
    expect(ws.query.get('token')).toBe(TOKEN);
    expect(ws.query.get('device')).toBe('d1');
    expect(ws.protocols).toBe('herald.v1.json');
    ws.accept();
    await expect(welcome).resolves.toMatchObject({ user_id: 'alice', heartbeat_ms: 25000 });
    expect(c.state).toBe('open');
    expect(c.transportKind).toBe('ws');
    expect(states).toEqual(['connecting', 'open']);
    // A new device with nothing stored asks for no resume: the server's backlog covers it.
    expect(ws.frames('sync')).toEqual([]);
  });

  it('calls a token function before each connection', async () => {
    let n = 0;
    const c = client({ token: () => `${TOKEN}${++n}` });
    void c.connect();
    await tick();
    expect(FakeWebSocket.last().query.get('token')).toBe(`${TOKEN}1`);
    FakeWebSocket.last().serverClose(1006);
    await tick(60_000);
    expect(FakeWebSocket.last().query.get('token')).toBe(`${TOKEN}2`);
  });

  it('makes a device name once per browser and keeps it', () => {
    const a = new HeraldClient({ url: 'http://x', storage });
    const b = new HeraldClient({ url: 'http://x', storage });
    expect(a.device).toMatch(/^web-[0-9a-z]+$/);
    expect(b.device).toBe(a.device);
  });
});

describe('messages, dedupe and acknowledgements', () => {
  it('emits each message once, per category, and acknowledges the highest seq', async () => {
    const c = client();
    const all: number[] = [];
    const reminds: number[] = [];
    const mail: number[] = [];
    c.on('message', (m) => all.push(m.seq));
    c.onCategory('remind', (m) => reminds.push(m.seq));
    c.on('message:mailbox', (m) => mail.push(m.seq));
    void c.connect();
    await tick();
    const ws = FakeWebSocket.last();
    ws.accept();
    ws.receive(msg(1));
    ws.receive(msg(2, { category: 'mailbox', from: 'bob' }));
    ws.receive(msg(2)); // a duplicate (a resume overlapping the backlog)
    ws.receive(msg(1));
    ws.receive(msg(3));
    expect(all).toEqual([1, 2, 3]);
    expect(reminds).toEqual([1, 3]);
    expect(mail).toEqual([2]);
    await tick(100);
    expect(ws.frames('ack')).toEqual([{ type: 'ack', seq: 3, stream: 'inbox' }]);
    ws.receive(msg(4));
    ws.receive(msg(1, { stream: 'all', category: 'announcement' }));
    await tick(100);
    expect(ws.frames('ack').slice(1)).toEqual([
      { type: 'ack', seq: 4, stream: 'inbox' },
      { type: 'ack', seq: 1, stream: 'all' },
    ]);
    expect(c.lastSeq('inbox')).toBe(4);
    expect(c.lastSeq('all')).toBe(1);
  });

  it('keeps the position per user and resumes from it after a reload', async () => {
    const c = client();
    void c.connect();
    await tick();
    FakeWebSocket.last().accept();
    FakeWebSocket.last().receive(msg(1));
    FakeWebSocket.last().receive(msg(2));
    FakeWebSocket.last().receive(msg(5, { stream: 'all', category: 'announcement' }));
    c.close();

    expect(new ResumeStore(storage).load('alice')).toEqual({ inbox: 2, all: 5, inboxId: msg(2).id, allId: msg(5).id });
    expect(new ResumeStore(storage).load('bob')).toEqual({ inbox: 0, all: 0 });

    // "Reload": a new client on the same storage.
    const again = client();
    const seen: number[] = [];
    again.on('message', (m) => seen.push(m.seq));
    void again.connect();
    await tick();
    const ws = FakeWebSocket.last();
    ws.accept({ last_seq: 3 });
    const sync = ws.frames('sync');
    expect(sync).toEqual([
      { type: 'sync', since: 2, since_id: msg(2).id, since_all: 5, since_all_id: msg(5).id, rid: expect.anything() },
    ]);
    ws.receive(msg(2)); // the backlog overlaps what we had
    ws.receive(msg(3));
    ws.receive({ type: 'reply', rid: sync[0]!['rid'], ok: true, last_seq: 3, last_all_seq: 5 });
    expect(seen).toEqual([3]);
  });

  it('after a reset takes the position back, shows new messages under reused seqs, and not resent ones', async () => {
    const c = client();
    const seen: string[] = [];
    const resets: unknown[] = [];
    c.on('message', (m) => seen.push(m.body));
    c.on('reset', (r) => resets.push(r));
    void c.connect();
    await tick();
    const ws = FakeWebSocket.last();
    ws.accept();
    for (const seq of [1, 2, 3]) ws.receive(msg(seq));
    // The store lost 3 (a failover); 1 was acknowledged, 2 survived; the
    // next message took seq 3 again.
    ws.receive({ type: 'reset', stream: 'inbox', seq: 1 });
    expect(resets).toEqual([{ stream: 'inbox', seq: 1 }]);
    expect(c.lastSeq()).toBe(1);
    expect(new ResumeStore(storage).load('alice')).toEqual({ inbox: 1, all: 0 });
    ws.receive(msg(2)); // written again: recognised by id
    ws.receive(msg(3, { id: 'aaaaaaaa-0000-0000-0000-000000000003', body: 'new 3' }));
    ws.receive(msg(4));
    expect(seen).toEqual(['m1', 'm2', 'm3', 'new 3', 'm4']);
    expect(c.lastSeq()).toBe(4);
    await tick(100);
    expect(ws.frames('ack').at(-1)).toEqual({ type: 'ack', seq: 4, stream: 'inbox' });
    expect(new ResumeStore(storage).load('alice')).toEqual({ inbox: 4, all: 0, inboxId: msg(4).id });
  });

  it('leaves since_all out while no announcement was seen', async () => {
    new ResumeStore(storage).save('alice', { inbox: 7, all: 0 });
    const c = client();
    void c.connect();
    await tick();
    FakeWebSocket.last().accept();
    expect(FakeWebSocket.last().frames('sync')[0]).toEqual({ type: 'sync', since: 7, rid: expect.anything() });
  });

  it('keeps counts and receipts, receipts only moving forward', async () => {
    const c = client();
    const counts: number[] = [];
    const receipts: string[] = [];
    c.on('counts', (x) => counts.push(x.unread_total));
    c.on('receipt', (r) => receipts.push(r.state));
    void c.connect();
    await tick();
    const ws = FakeWebSocket.last();
    ws.accept();
    ws.receive({ type: 'counts', unread: { remind: 2, mailbox: 1 }, unread_total: 3, unseen_total: 3 });
    expect(c.unread()).toBe(3);
    expect(c.unread('remind')).toBe(2);
    expect(c.counts?.unread['mailbox']).toBe(1);
    const id = '01936f00-0000-7000-8000-000000000001';
    ws.receive({ type: 'receipt', peer: 'bob', id, state: 'read', ts: 't' });
    ws.receive({ type: 'receipt', peer: 'bob', id, state: 'delivered', ts: 't' });
    expect(receipts).toEqual(['read']);
    expect(c.receiptOf(id)).toBe('read');
    expect(counts).toEqual([3]);
  });
});

describe('requests', () => {
  it('send() resolves with the reply and carries an idempotency key', async () => {
    const c = client();
    void c.connect();
    await tick();
    const ws = FakeWebSocket.last();
    ws.accept();
    const p = c.send('bob', 'hi', { title: 't' });
    const f = ws.frames('send')[0]!;
    expect(f).toMatchObject({ to: 'bob', body: 'hi', title: 't' });
    expect(typeof f['key']).toBe('string');
    const id = '01936f00-0000-7000-8000-000000000009';
    ws.receive({ type: 'reply', rid: f['rid'], ok: true, id, seq: 4 });
    await expect(p).resolves.toEqual({ id, seq: 4 });
    expect(c.receiptOf(id)).toBe('sent');
  });

  it('rejects with the server error code', async () => {
    const c = client();
    void c.connect();
    await tick();
    const ws = FakeWebSocket.last();
    ws.accept();
    const p = c.send('mallory', 'hi');
    const rid = ws.frames('send')[0]!['rid'];
    ws.receive({ type: 'reply', rid, ok: false, error: { code: 'blocked', message: 'no' } });
    const err = await p.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HeraldError);
    expect((err as HeraldError).code).toBe('blocked');
  });

  it('times out', async () => {
    const c = client({ requestTimeoutMs: 1000 });
    void c.connect();
    await tick();
    FakeWebSocket.last().accept();
    const p = c.markRead(['01936f00-0000-7000-8000-000000000001']).catch((e: HeraldError) => e.code);
    await tick(1001);
    await expect(p).resolves.toBe('timeout');
  });

  it('mark/archive build the selectors; typed replies', async () => {
    const c = client();
    void c.connect();
    await tick();
    const ws = FakeWebSocket.last();
    ws.accept();
    const a = c.markRead({ category: 'remind' });
    const b = c.archive(['01936f00-0000-7000-8000-000000000001']);
    const d = c.markConversationRead('bob');
    const h = c.history({ category: 'mailbox', limit: 10 });
    const [m1, m2, m3, hist] = ws.frames().filter((f) => f['type'] !== 'ack');
    expect(m1).toMatchObject({ type: 'mark', state: 'read', category: 'remind' });
    expect(m2).toMatchObject({ type: 'mark', state: 'archived', ids: ['01936f00-0000-7000-8000-000000000001'] });
    expect(m3).toMatchObject({ type: 'mark', state: 'read', peer: 'bob' });
    expect(hist).toMatchObject({ type: 'history', category: 'mailbox', limit: 10 });
    for (const [f, changed] of [[m1, 2], [m2, 1], [m3, 0]] as const) ws.receive({ type: 'reply', rid: f!['rid'], ok: true, changed });
    ws.receive({ type: 'reply', rid: hist!['rid'], ok: true, messages: [], next: null });
    expect(await a).toBe(2);
    expect(await b).toBe(1);
    expect(await d).toBe(0);
    expect(await h).toEqual({ messages: [], next: null });
  });

  it('queues requests while disconnected and sends unanswered ones again after a reconnect', async () => {
    const c = client();
    void c.connect();
    const p = c.send('bob', 'queued');
    await tick();
    const ws1 = FakeWebSocket.last();
    expect(ws1.frames('send')).toEqual([]);
    ws1.accept();
    const first = ws1.frames('send')[0]!;
    ws1.serverClose(1006);
    await tick(1_000);
    const ws2 = FakeWebSocket.last();
    expect(ws2).not.toBe(ws1);
    ws2.accept();
    const again = ws2.frames('send')[0]!;
    // Same key: the server stores it once even if the first one got through.
    expect(again['key']).toBe(first['key']);
    ws2.receive({ type: 'reply', rid: again['rid'], ok: true, id: '01936f00-0000-7000-8000-00000000000a', seq: 1 });
    await expect(p).resolves.toMatchObject({ seq: 1 });
  });
});

describe('reconnecting', () => {
  it('backs off with jitter, growing, and resets once stable', async () => {
    const c = client({ backoff: { baseMs: 1000, maxMs: 8000 }, transports: ['ws'] });
    void c.connect();
    await tick();
    const opened = () => FakeWebSocket.instances.length;
    // random() = 0.5: delays 0.75 s, 1.5 s, 3 s, 6 s (ceiling/2 + 0.5 * ceiling/2).
    const expected = [750, 1500, 3000, 6000, 6000];
    for (const d of expected) {
      const n = opened();
      FakeWebSocket.last().serverClose(1006);
      await tick(d - 1);
      expect(opened()).toBe(n);
      await tick(1);
      expect(opened()).toBe(n + 1);
    }
  });

  it('follows a reconnect frame (draining node) and moves to the next URL', async () => {
    const c = client({ url: ['http://a.test', 'http://b.test'] });
    const events: number[] = [];
    c.on('reconnect', (r) => events.push(r.after_ms));
    void c.connect();
    await tick();
    const ws = FakeWebSocket.last();
    expect(ws.url.startsWith('ws://a.test/')).toBe(true);
    ws.accept();
    ws.receive({ type: 'reconnect', after_ms: 420 });
    ws.serverClose(1001);
    expect(events).toEqual([420]);
    await tick(419);
    expect(FakeWebSocket.instances.length).toBe(1);
    await tick(1);
    expect(FakeWebSocket.last().url.startsWith('ws://b.test/')).toBe(true);
    expect(c.state).toBe('reconnecting');
    FakeWebSocket.last().accept();
    expect(c.state).toBe('open');
  });

  it('comes back later after a rate-limit close (4029)', async () => {
    const c = client();
    void c.connect();
    await tick();
    FakeWebSocket.last().accept();
    await tick(20_000); // long enough to count as a stable connection
    FakeWebSocket.last().serverClose(4029);
    await tick(4_999);
    expect(FakeWebSocket.instances.length).toBe(1);
    await tick(5_000);
    expect(FakeWebSocket.instances.length).toBe(2);
  });

  it('forgets an erased user (close 4003): positions dropped, erased emitted, a following inbox emptied', async () => {
    const c = client();
    const inbox = new Inbox();
    inbox.follow(c);
    let erased = 0;
    c.on('erased', () => erased++);
    void c.connect();
    await tick();
    const ws = FakeWebSocket.last();
    ws.accept();
    ws.receive(msg(1));
    ws.receive(msg(2));
    expect(inbox.size).toBe(2);
    expect(c.lastSeq('inbox')).toBe(2);
    ws.serverClose(4003);
    expect(erased).toBe(1);
    expect(inbox.size).toBe(0);
    expect(c.lastSeq('inbox')).toBe(0);
    expect(new ResumeStore(storage).load('alice')).toEqual({ inbox: 0, all: 0 });
    await tick(1_000);
    const ws2 = FakeWebSocket.last();
    expect(ws2).not.toBe(ws);
    ws2.accept();
    // Nothing kept to resume from: the new (empty) inbox's backlog is all there is.
    expect(ws2.frames('sync')).toEqual([]);
  });

  it('closes a silent connection whose ping is not answered', async () => {
    const c = client();
    void c.connect();
    await tick();
    const ws = FakeWebSocket.last();
    ws.accept({ heartbeat_ms: 10_000 });
    await tick(10_000);
    expect(ws.frames('ping').length).toBe(1);
    await tick(5_000);
    expect(ws.closedWith).toBe(4000);
    await tick(2_000);
    expect(FakeWebSocket.instances.length).toBe(2);
  });

  it('close() stops everything and fails pending requests', async () => {
    const c = client();
    void c.connect();
    await tick();
    FakeWebSocket.last().accept();
    const p = c.ping().catch((e: HeraldError) => e.code);
    c.close();
    await expect(p).resolves.toBe('closed');
    expect(c.state).toBe('closed');
    await tick(120_000);
    expect(FakeWebSocket.instances.length).toBe(1);
  });
});

describe('SSE fallback', () => {
  it('switches to SSE when WebSocket cannot connect, talks over POST, and goes back to WebSocket later', async () => {
    FakeWebSocket.blocked = true;
    new ResumeStore(storage).save('alice', { inbox: 4, all: 2 });
    const { fn, calls } = fakeFetch((b) =>
      b['type'] === 'ack' ? { status: 204 } : { status: 200, body: { type: 'reply', rid: b['rid'], ok: true, id: '01936f00-0000-7000-8000-00000000000b', seq: 9 } },
    );
    const c = client({ fetch: fn, upgradeAfterMs: 30_000 });
    const kinds: string[] = [];
    c.on('transport', (k) => kinds.push(k));
    const seen: number[] = [];
    c.on('message', (m) => seen.push(m.seq));
    void c.connect();
    await tick(10_000);
    expect(FakeWebSocket.instances.length).toBe(2);
    const es = FakeEventSource.last();
    expect(es.url.startsWith('http://gw.test/sse?')).toBe(true);
    expect(es.query.get('since')).toBe('4');
    expect(es.query.get('since_all')).toBe('2');
    expect(es.query.get('token')).toBe(TOKEN);
    expect(es.query.get('device')).toBe('d1');
    es.accept();
    expect(kinds).toEqual(['sse']);
    expect(c.state).toBe('open');

    es.receive(msg(5), '5.2');
    es.receive(msg(5), '5.2');
    expect(seen).toEqual([5]);

    const reply = await c.send('bob', 'over http');
    expect(reply.seq).toBe(9);
    const post = calls.find((x) => x.body['type'] === 'send')!;
    expect(post.url).toBe('http://gw.test/v1/me/requests?device=d1');
    expect((post.init.headers as Record<string, string>)['authorization']).toBe(`Bearer ${TOKEN}`);
    await tick(300);
    expect(calls.some((x) => x.body['type'] === 'ack' && x.body['seq'] === 5)).toBe(true);

    // An interrupted stream is EventSource's to reconnect (Last-Event-ID).
    es.fail(0);
    expect(c.state).toBe('reconnecting');
    es.accept();
    expect(c.state).toBe('open');
    expect(FakeEventSource.instances.length).toBe(1);

    // WebSocket works again: the SDK tries it after upgradeAfterMs and adopts it at its welcome.
    FakeWebSocket.blocked = false;
    await tick(30_000);
    const ws = FakeWebSocket.last();
    expect(FakeWebSocket.instances.length).toBe(3);
    ws.accept();
    expect(kinds).toEqual(['sse', 'ws']);
    expect(es.closed).toBe(true);
    expect(ws.frames('sync')[0]).toMatchObject({ since: 5, since_all: 2 });
  });

  it('turns an HTTP error into a rejected request', async () => {
    FakeWebSocket.blocked = true;
    const { fn } = fakeFetch(() => ({ status: 400, body: { error: { code: 'invalid_field', message: 'to: empty' } } }));
    const c = client({ fetch: fn, transports: ['sse'] });
    void c.connect();
    await tick();
    FakeEventSource.last().accept();
    const err = (await c.send('', 'x').catch((e: unknown) => e)) as HeraldError;
    expect(err.code).toBe('invalid_field');
    expect(err.message).toBe('to: empty');
  });

  it('gives up on an event stream the server refused and tries WebSocket again', async () => {
    const c = client({ transports: ['sse', 'ws'], fallbackAfter: 1 });
    void c.connect();
    await tick();
    FakeEventSource.last().fail(2);
    await tick(1000);
    expect(FakeWebSocket.instances.length).toBe(1);
  });
});

describe('MessagePack', () => {
  it('loads the codec only when asked, offers its subprotocol, and turns binary UUIDs into strings', async () => {
    const mp = await import('@msgpack/msgpack');
    const loader = vi.fn(async () => mp);
    const c = client({ codec: 'msgpack', msgpack: loader });
    const got: string[] = [];
    c.on('message', (m) => got.push(m.id));
    void c.connect();
    await tick();
    expect(loader).toHaveBeenCalledTimes(1);
    const ws = FakeWebSocket.last();
    expect(ws.protocols).toBe('herald.v1.msgpack');
    const idBytes = new Uint8Array([0x01, 0x93, 0x6f, 0, 0, 0, 0x70, 0, 0x80, 0, 0, 0, 0, 0, 0, 0x2a]);
    ws.readyState = 1;
    ws.onopen?.({});
    ws.receive(mp.encode({ type: 'welcome', conn_id: idBytes, user_id: 'alice', node_id: 'n', heartbeat_ms: 1000, last_seq: 0, last_all_seq: 0 }));
    expect(c.welcome?.conn_id).toBe('01936f00-0000-7000-8000-00000000002a');
    ws.receive(mp.encode({ ...msg(1), id: idBytes, data: { raw: new Uint8Array(16) } }));
    expect(got).toEqual(['01936f00-0000-7000-8000-00000000002a']);
    c.archive(['01936f00-0000-7000-8000-00000000002a']).catch(() => {});
    const sent = mp.decode(ws.sent[0] as Uint8Array) as { ids: Uint8Array[] };
    expect(sent.ids[0]).toEqual(idBytes);
  });

  it('falls back to JSON when the module cannot be loaded', async () => {
    const c = client({ codec: 'msgpack', msgpack: () => Promise.reject(new Error('not installed')) });
    const errors: string[] = [];
    c.on('error', (e) => errors.push(e.message));
    void c.connect();
    await tick();
    expect(FakeWebSocket.last().protocols).toBe('herald.v1.json');
    expect(errors[0]).toMatch(/MessagePack unavailable/);
  });
});

describe('one connection for all tabs', () => {
  it('the leader tab connects; followers get its frames and ask through it; a follower takes over', async () => {
    FakeChannel.all.clear();
    const locks = new FakeLocks();
    const opts = { shareAcrossTabs: true, locks, BroadcastChannel: FakeChannel } as const;
    const leader = client(opts);
    void leader.connect();
    await tick();
    expect(FakeWebSocket.instances.length).toBe(1);
    const ws = FakeWebSocket.last();
    ws.accept();

    const follower = client(opts);
    const seen: number[] = [];
    follower.on('message', (m) => seen.push(m.seq));
    const welcome = follower.connect();
    await tick();
    await expect(welcome).resolves.toMatchObject({ user_id: 'alice' });
    expect(follower.transportKind).toBe('tab');
    expect(FakeWebSocket.instances.length).toBe(1);

    ws.receive(msg(1));
    ws.receive({ type: 'counts', unread: { remind: 1 }, unread_total: 1, unseen_total: 1 });
    await tick();
    expect(seen).toEqual([1]);
    expect(follower.unread()).toBe(1);

    const p = follower.send('bob', 'from the other tab');
    await tick();
    const f = ws.frames('send')[0]!;
    expect(f['body']).toBe('from the other tab');
    ws.receive({ type: 'reply', rid: f['rid'], ok: true, id: '01936f00-0000-7000-8000-00000000000c', seq: 2 });
    await tick();
    await expect(p).resolves.toMatchObject({ seq: 2 });

    // The leader tab goes away: the follower takes the lock and connects itself, resuming.
    leader.close();
    await tick();
    expect(FakeWebSocket.instances.length).toBe(2);
    const ws2 = FakeWebSocket.last();
    ws2.accept();
    expect(follower.transportKind).toBe('ws');
    expect(ws2.frames('sync')[0]).toMatchObject({ since: 1 });
  });
});
