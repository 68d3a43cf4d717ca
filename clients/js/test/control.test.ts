// Part 3 of the notification center in the SDK: preferences, snooze, quiet
// hours (`silent`), collapse (`changed` … `replaced`), and the `Inbox` list
// that applies what the server says changed.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { HeraldClient, HeraldError, Inbox, inQuietHours, type Changed, type HeraldOptions, type Message, type Preferences } from '../src/index.js';
import { FakeChannel, FakeLocks, FakeWebSocket, memoryStorage } from './fakes.js';

const b64url = (s: string) => Buffer.from(s).toString('base64url');
const TOKEN = `${b64url('{"alg":"HS256","typ":"JWT"}')}.${b64url('{"sub":"alice","exp":9999999999}')}.sig`;
const ID = (n: number) => `00000000-0000-0000-0000-${String(n).padStart(12, '0')}`;

function msg(seq: number, extra: Record<string, unknown> = {}) {
  return { type: 'message', seq, stream: 'inbox', id: ID(seq), category: 'remind', body: `m${seq}`, data: {}, ts: `2026-01-01T00:00:${String(seq).padStart(2, '0')}Z`, ...extra };
}

const PREFS: Preferences = {
  categories: { remind: { in_app: true, fallback: true }, system: { in_app: true, fallback: true } },
  topics: {},
  quiet_hours: null,
};

const clients: HeraldClient[] = [];
let storage = memoryStorage();

function client(opts: HeraldOptions = {}): HeraldClient {
  const c = new HeraldClient({
    url: 'http://gw.test',
    token: TOKEN,
    device: 'd1',
    storage,
    WebSocket: FakeWebSocket as unknown as HeraldOptions['WebSocket'],
    random: () => 0.5,
    ...opts,
  });
  clients.push(c);
  return c;
}

async function open(opts: HeraldOptions = {}): Promise<{ c: HeraldClient; ws: FakeWebSocket }> {
  const c = client(opts);
  void c.connect();
  await tick();
  const ws = FakeWebSocket.last();
  ws.accept();
  return { c, ws };
}

const tick = (ms = 0) => vi.advanceTimersByTimeAsync(ms);

/** Answers the last request of `type` with `fields`. */
function answer(ws: FakeWebSocket, type: string, fields: Record<string, unknown>): Record<string, unknown> {
  const f = ws.frames(type).at(-1)!;
  ws.receive({ type: 'reply', rid: f['rid'], ok: true, ...fields });
  return f;
}

beforeEach(() => {
  vi.useFakeTimers();
  FakeWebSocket.reset();
  storage = memoryStorage();
});

afterEach(() => {
  for (const c of clients.splice(0)) c.close();
  vi.useRealTimers();
});

describe('preferences', () => {
  it('preferences() reads them; setPreferences() sends the patch and resolves with the whole object', async () => {
    const { c, ws } = await open();
    const events: Preferences[] = [];
    c.on('preferences', (p) => events.push(p));

    const read = c.preferences();
    expect(answer(ws, 'preferences', { preferences: PREFS })).toEqual({ type: 'preferences', rid: expect.any(Number) });
    await expect(read).resolves.toEqual(PREFS);
    expect(c.currentPreferences).toEqual(PREFS);

    const muted: Preferences = { ...PREFS, categories: { ...PREFS.categories, remind: { in_app: false, fallback: true } } };
    const set = c.setPreferences({ categories: { remind: { in_app: false } } });
    const f = answer(ws, 'set_preferences', { preferences: muted });
    expect(f).toMatchObject({ type: 'set_preferences', preferences: { categories: { remind: { in_app: false } } } });
    await expect(set).resolves.toEqual(muted);
    // The server's push of the same change after the reply: one event per change, not two.
    ws.receive({ type: 'preferences', preferences: muted });
    expect(events).toEqual([PREFS, muted]);
  });

  it('a push from another tab or device updates them and emits `preferences`', async () => {
    const { c, ws } = await open();
    const events: Preferences[] = [];
    c.on('preferences', (p) => events.push(p));
    const quiet: Preferences = { ...PREFS, quiet_hours: { tz: 'Europe/Paris', start: '22:00', end: '07:00' } };
    ws.receive({ type: 'preferences', preferences: quiet });
    expect(events).toEqual([quiet]);
    expect(c.currentPreferences?.quiet_hours).toEqual({ tz: 'Europe/Paris', start: '22:00', end: '07:00' });
  });

  it('a refused patch rejects with the server code and changes nothing', async () => {
    const { c, ws } = await open();
    const p = c.setPreferences({ quiet_hours: { tz: 'Mars/Olympus', start: '22:00', end: '07:00' } });
    const f = ws.frames('set_preferences')[0]!;
    ws.receive({ type: 'reply', rid: f['rid'], ok: false, error: { code: 'invalid_field', message: 'quiet_hours.tz: unknown zone' } });
    const err = (await p.catch((e: unknown) => e)) as HeraldError;
    expect(err).toBeInstanceOf(HeraldError);
    expect(err.code).toBe('invalid_field');
    expect(c.currentPreferences).toBeNull();
  });

  it('tabs sharing a connection: a follower gets the pushes, and the last known preferences when it joins', async () => {
    FakeChannel.all.clear();
    const opts = { shareAcrossTabs: true, locks: new FakeLocks(), BroadcastChannel: FakeChannel } as const;
    const { c: leader, ws } = await open(opts);
    ws.receive({ type: 'preferences', preferences: PREFS });
    const follower = client(opts);
    const got: Preferences[] = [];
    follower.on('preferences', (p) => got.push(p));
    void follower.connect();
    await tick();
    expect(follower.transportKind).toBe('tab');
    expect(got).toEqual([PREFS]);
    const muted: Preferences = { ...PREFS, topics: { 'article:1': { in_app: false, fallback: false } } };
    ws.receive({ type: 'preferences', preferences: muted });
    await tick();
    expect(got).toEqual([PREFS, muted]);
    expect(leader.currentPreferences).toEqual(muted);
  });
});

describe('sends to a user who muted them', () => {
  it('send() resolves with skipped and books no receipt', async () => {
    const { c, ws } = await open();
    const p = c.send('bob', 'hi');
    answer(ws, 'send', { skipped: true });
    await expect(p).resolves.toMatchObject({ skipped: true });
  });
});

describe('snooze', () => {
  it('is a mark with state snoozed and until (a Date or unix ms), by ids or any selector', async () => {
    const { c, ws } = await open();
    const until = new Date('2026-01-02T09:00:00Z');
    const a = c.snooze(ID(1), until);
    answer(ws, 'mark', { changed: 1 });
    const b = c.snooze({ category: 'remind' }, until.getTime() + 0.4);
    answer(ws, 'mark', { changed: 3 });
    const [m1, m2] = ws.frames('mark');
    expect(m1).toEqual({ type: 'mark', rid: expect.any(Number), state: 'snoozed', ids: [ID(1)], until: until.getTime() });
    expect(m2).toMatchObject({ state: 'snoozed', category: 'remind', until: until.getTime() });
    expect(await a).toBe(1);
    expect(await b).toBe(3);
  });

  it('refuses a time that is not one before asking the server', async () => {
    const { c, ws } = await open();
    const err = (await c.snooze(ID(1), new Date('nonsense')).catch((e: unknown) => e)) as HeraldError;
    expect(err.code).toBe('invalid_field');
    expect(ws.frames('mark')).toEqual([]);
  });

  it('history asks for the snoozed messages with `snoozed: true`; other marks carry no until', async () => {
    const { c, ws } = await open();
    const h = c.history({ snoozed: true, limit: 10 });
    const entry = { ...msg(1), type: undefined, state: 'snoozed', until: 1_800_000_000_000 };
    answer(ws, 'history', { messages: [entry], next: null });
    expect(ws.frames('history')[0]).toMatchObject({ snoozed: true, limit: 10 });
    expect((await h).messages[0]).toMatchObject({ state: 'snoozed', until: 1_800_000_000_000 });
    c.markRead([ID(1)]).catch(() => {});
    expect(ws.frames('mark')[0]).not.toHaveProperty('until');
  });
});

describe('action buttons', () => {
  it('act sends the message and action, resolves on ok, rejects with already_acted', async () => {
    const { c, ws } = await open();
    const a = c.act(ID(1), 'accept');
    expect(ws.frames('act')[0]).toEqual({ type: 'act', rid: expect.any(Number), message: ID(1), action: 'accept' });
    answer(ws, 'act', {});
    await a;
    const b = c.act(ID(1), 'decline');
    const rid = ws.frames('act')[1]!['rid'];
    ws.receive({ type: 'reply', rid, ok: false, error: { code: 'already_acted', message: 'message: already acted on (accept)' } });
    const err = (await b.catch((e: unknown) => e)) as HeraldError;
    expect(err.code).toBe('already_acted');
  });

  it('an `acted` change makes the held message read with its action', () => {
    const inbox = new Inbox();
    const buttons = [{ id: 'accept', label: 'Accept' }, { id: 'decline', label: 'Decline' }];
    inbox.addPage([{ ...entry(1), state: 'unseen', actions: buttons }]);
    expect(inbox.apply({ ids: [ID(1), ID(5)], state: 'acted', action: 'accept' })).toEqual([ID(5)]);
    expect(inbox.list().map((m) => [m.seq, m.state, m.acted])).toEqual([[1, 'read', 'accept']]);
  });
});

describe('tags and severity', () => {
  it('filters marks, history and the counts request; reads unread_by_severity', async () => {
    const { c, ws } = await open();
    const m = c.mark('read', { all: true }, { tags: ['billing'] });
    answer(ws, 'mark', { changed: 2 });
    expect(ws.frames('mark')[0]).toMatchObject({ state: 'read', all: true, tags: ['billing'] });
    expect(ws.frames('mark')[0]).not.toHaveProperty('severity');
    expect(await m).toBe(2);
    const h = c.history({ tags: ['ops', 'team:42'], severity: 'high' });
    answer(ws, 'history', { messages: [], next: null });
    expect(ws.frames('history')[0]).toMatchObject({ tags: ['ops', 'team:42'], severity: 'high' });
    await h;
    const n = c.countUnread({ tags: ['billing'] });
    answer(ws, 'counts', { unread: 3 });
    expect(ws.frames('counts')[0]).toMatchObject({ type: 'counts', tags: ['billing'] });
    expect(await n).toBe(3);
    expect(c.unreadBySeverity('high')).toBe(0);
    ws.receive({
      type: 'counts',
      unread: { remind: 3 },
      unread_total: 3,
      unseen_total: 3,
      unread_by_severity: { low: 0, normal: 1, high: 2, critical: 0 },
    });
    expect(c.unreadBySeverity('high')).toBe(2);
  });
});

describe('changed frames and quiet hours', () => {
  it('emits `changed` for unsnoozed and replaced ids', async () => {
    const { c, ws } = await open();
    const got: Changed[] = [];
    c.on('changed', (x) => got.push(x));
    ws.receive({ type: 'changed', ids: [ID(1), ID(2)], state: 'unsnoozed' });
    ws.receive({ type: 'changed', ids: [ID(3)], state: 'replaced', by: ID(4) });
    expect(got).toEqual([
      { ids: [ID(1), ID(2)], state: 'unsnoozed' },
      { ids: [ID(3)], state: 'replaced', by: ID(4) },
    ]);
  });

  it('a silent message is a `message` but no `notify`; a critical one always notifies', async () => {
    const { c, ws } = await open();
    const messages: number[] = [];
    const notified: number[] = [];
    c.on('message', (m) => messages.push(m.seq));
    c.on('notify', (m) => notified.push(m.seq));
    ws.receive(msg(1));
    ws.receive(msg(2, { silent: true }));
    ws.receive(msg(3, { critical: true }));
    ws.receive(msg(4, { critical: true, silent: true }));
    expect(messages).toEqual([1, 2, 3, 4]);
    expect(notified).toEqual([1, 3, 4]);
  });
});

describe('quiet hours in the SDK', () => {
  it('inQuietHours: [start, end) in the zone, across midnight, never when equal; a bad zone is not quiet', () => {
    const at = (iso: string) => new Date(iso);
    const day = { tz: 'UTC', start: '09:00', end: '17:00' };
    expect(inQuietHours(day, at('2026-01-01T09:00:00Z'))).toBe(true);
    expect(inQuietHours(day, at('2026-01-01T16:59:00Z'))).toBe(true);
    expect(inQuietHours(day, at('2026-01-01T17:00:00Z'))).toBe(false);
    const night = { tz: 'Europe/Paris', start: '22:00', end: '07:00' }; // UTC+1 in January
    expect(inQuietHours(night, at('2026-01-01T21:30:00Z'))).toBe(true);
    expect(inQuietHours(night, at('2026-01-02T05:59:00Z'))).toBe(true);
    expect(inQuietHours(night, at('2026-01-02T06:00:00Z'))).toBe(false);
    expect(inQuietHours(night, at('2026-01-01T20:59:00Z'))).toBe(false);
    expect(inQuietHours({ tz: 'UTC', start: '08:00', end: '08:00' }, at('2026-01-01T08:00:00Z'))).toBe(false);
    expect(inQuietHours({ tz: 'Mars/Olympus', start: '00:00', end: '23:59' }, at('2026-01-01T12:00:00Z'))).toBe(false);
    expect(inQuietHours(null)).toBe(false);
  });

  it('a backlog inside the known quiet hours raises no notify, after a reload too; critical still does', async () => {
    vi.setSystemTime(new Date('2026-01-01T23:00:00Z'));
    const { c, ws } = await open();
    const notified: number[] = [];
    c.on('notify', (m) => notified.push(m.seq));
    ws.receive(msg(1)); // preferences not known yet: notifies
    ws.receive({ type: 'preferences', preferences: { ...PREFS, quiet_hours: { tz: 'UTC', start: '22:00', end: '07:00' } } });
    ws.receive(msg(2)); // a backlog message: the server marks only live frames
    ws.receive(msg(3, { critical: true }));
    expect(notified).toEqual([1, 3]);
    c.close();

    // A reload: the backlog arrives before any reply; the kept quiet hours hold it back.
    const { c: again, ws: ws2 } = await open();
    const after: number[] = [];
    again.on('notify', (m) => after.push(m.seq));
    ws2.receive(msg(4));
    vi.setSystemTime(new Date('2026-01-02T08:00:00Z'));
    ws2.receive(msg(5));
    expect(after).toEqual([5]);
  });
});

const entry = (seq: number, extra: Record<string, unknown> = {}) => {
  const { type: _t, ...m } = msg(seq, extra);
  return m as unknown as Message;
};

describe('Inbox', () => {
  it('holds each message once, newest first, with its state; live ones start unseen', () => {
    const inbox = new Inbox();
    let changes = 0;
    inbox.on('change', () => changes++);
    inbox.add(entry(1));
    inbox.addPage([{ ...entry(2), state: 'read' }, { ...entry(1), state: 'seen' }]);
    inbox.add(entry(2)); // the live copy after the page: its state stays
    expect(inbox.list().map((m) => [m.seq, m.state])).toEqual([
      [2, 'read'],
      [1, 'seen'],
    ]);
    expect(inbox.size).toBe(2);
    expect(changes).toBe(3);
  });

  it('a snoozed message leaves the list and comes back unread on `unsnoozed`', () => {
    const inbox = new Inbox();
    inbox.addPage([{ ...entry(1), state: 'read' }, { ...entry(2), state: 'seen' }]);
    inbox.setState([ID(2)], 'snoozed', 1_800_000_000_000);
    expect(inbox.list().map((m) => m.seq)).toEqual([1]);
    expect(inbox.list({ snoozed: true }).map((m) => [m.seq, m.until])).toEqual([[2, 1_800_000_000_000]]);
    const missing: string[][] = [];
    inbox.on('missing', (ids) => missing.push(ids));
    expect(inbox.apply({ ids: [ID(2), ID(9)], state: 'unsnoozed' })).toEqual([ID(9)]);
    expect(inbox.list().map((m) => [m.seq, m.state, m.until])).toEqual([
      [2, 'unseen', undefined],
      [1, 'read', undefined],
    ]);
    // Unknown here (snoozed elsewhere, before this page loaded): the application loads a page.
    expect(missing).toEqual([[ID(9)]]);
  });

  it('a page of snoozed messages (each with the state it returns to, and until) is held snoozed', () => {
    const inbox = new Inbox();
    inbox.addPage([{ ...entry(1), state: 'unseen', until: 1_800_000_000_000 }, { ...entry(2), state: 'seen' }]);
    expect(inbox.list().map((m) => m.seq)).toEqual([2]);
    expect(inbox.list({ snoozed: true }).map((m) => [m.seq, m.state])).toEqual([[1, 'snoozed']]);
    inbox.apply({ ids: [ID(1)], state: 'unsnoozed' });
    expect(inbox.list().map((m) => [m.seq, m.state])).toEqual([
      [2, 'seen'],
      [1, 'unseen'],
    ]);
  });

  it('a replaced message is removed and its replacement shown, whichever frame comes first; a later page does not bring it back', () => {
    const inbox = new Inbox();
    inbox.add(entry(1, { group_key: 'likes:42' }));
    inbox.add(entry(2, { group_key: 'likes:42', collapsed: 2 }));
    inbox.apply({ ids: [ID(1)], state: 'replaced', by: ID(2) });
    // The other order: the replaced frame first, then the new message.
    inbox.apply({ ids: [ID(2)], state: 'replaced', by: ID(3) });
    inbox.add(entry(3, { group_key: 'likes:42', collapsed: 3 }));
    expect(inbox.list().map((m) => [m.seq, m.collapsed])).toEqual([[3, 3]]);
    expect(inbox.add({ ...entry(1), state: 'unseen' } as Message)).toBe(false);
    inbox.addPage([{ ...entry(2), state: 'unseen' }]);
    expect(inbox.list().map((m) => m.seq)).toEqual([3]);
  });

  it('a message naming the one it replaces (`replaces`) takes it out without the changed frame', () => {
    const inbox = new Inbox();
    inbox.add(entry(1, { group_key: 'g' }));
    inbox.add(entry(2, { group_key: 'g', collapsed: 2, replaces: ID(1) }));
    expect(inbox.list().map((m) => m.seq)).toEqual([2]);
    inbox.addPage([{ ...entry(1), state: 'unseen' }]);
    expect(inbox.list().map((m) => m.seq)).toEqual([2]);
  });

  it('archived and deleted messages are not listed; a category filter', () => {
    const inbox = new Inbox();
    inbox.add(entry(1));
    inbox.add(entry(2, { category: 'system' }));
    inbox.add(entry(3));
    inbox.setState([ID(1)], 'archived');
    inbox.setState([ID(3)], 'deleted');
    expect(inbox.list().map((m) => m.seq)).toEqual([2]);
    expect(inbox.list({ category: 'remind' })).toEqual([]);
    expect(inbox.get(ID(3))).toBeUndefined();
  });

  it('follows a client: live messages go in, changed frames apply', async () => {
    const { c, ws } = await open();
    const inbox = new Inbox();
    const stop = inbox.follow(c);
    ws.receive(msg(1, { group_key: 'g' }));
    ws.receive(msg(2, { group_key: 'g', collapsed: 2 }));
    ws.receive({ type: 'changed', ids: [ID(1)], state: 'replaced', by: ID(2) });
    expect(inbox.list().map((m) => m.seq)).toEqual([2]);
    stop();
    ws.receive(msg(3));
    expect(inbox.size).toBe(1);
  });
});
