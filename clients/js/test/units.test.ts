import { describe, expect, it } from 'vitest';
import { backoffDelay } from '../src/backoff.js';
import { jsonCodec, makeMsgpackCodec, uuidFromBytes, uuidToBytes } from '../src/codec.js';
import { tokenSubject } from '../src/client.js';
import { ResumeStore, memoryStorage } from '../src/store.js';
import * as mp from '@msgpack/msgpack';

describe('backoff', () => {
  it('grows exponentially up to the cap, jittered within [ceiling/2, ceiling]', () => {
    const o = { baseMs: 500, maxMs: 30_000 };
    expect(backoffDelay(0, o, () => 0)).toBe(250);
    expect(backoffDelay(0, o, () => 1)).toBe(500);
    expect(backoffDelay(3, o, () => 0)).toBe(2000);
    expect(backoffDelay(3, o, () => 1)).toBe(4000);
    expect(backoffDelay(20, o, () => 1)).toBe(30_000);
    expect(backoffDelay(20, o, () => 0)).toBe(15_000);
    const many = Array.from({ length: 200 }, () => backoffDelay(4, o));
    expect(Math.min(...many)).toBeGreaterThanOrEqual(4000);
    expect(Math.max(...many)).toBeLessThanOrEqual(8000);
    expect(new Set(many).size).toBeGreaterThan(50);
  });
});

describe('codecs', () => {
  it('JSON decodes text and binary frames', () => {
    expect(jsonCodec.decode('{"type":"reconnect","after_ms":3}')).toEqual({ type: 'reconnect', after_ms: 3 });
    expect(jsonCodec.decode(new TextEncoder().encode('{"type":"counts"}'))).toEqual({ type: 'counts' });
    expect(jsonCodec.encode({ type: 'ack', seq: 1, stream: 'inbox' })).toBe('{"type":"ack","seq":1,"stream":"inbox"}');
  });

  it('UUIDs round-trip through bytes', () => {
    const id = '01936f2a-0b1c-7d2e-8f30-4152637485a6';
    expect(uuidFromBytes(uuidToBytes(id))).toBe(id);
    expect(() => uuidToBytes('nope')).toThrow();
  });

  it('MessagePack: UUID fields of replies, pages and conversations become strings; data is left alone', () => {
    const c = makeMsgpackCodec(mp);
    const id = '01936f2a-0b1c-7d2e-8f30-4152637485a6';
    const b = uuidToBytes(id);
    const frame = c.decode(
      mp.encode({
        type: 'reply',
        rid: 1,
        ok: true,
        messages: [{ id: b, data: { id: b } }],
        conversations: [{ peer: 'bob', last: { id: b }, unread: 0 }],
      }),
    ) as unknown as { messages: Array<{ id: string; data: { id: unknown } }>; conversations: Array<{ last: { id: string } }> };
    expect(frame.messages[0]!.id).toBe(id);
    expect(frame.messages[0]!.data.id).toBeInstanceOf(Uint8Array);
    expect(frame.conversations[0]!.last.id).toBe(id);
    const sent = mp.decode(c.encode({ type: 'mark', rid: 2, state: 'read', ids: [id] }) as Uint8Array) as { ids: Uint8Array[]; title?: unknown };
    expect(sent.ids[0]).toEqual(b);
    const send = mp.decode(c.encode({ type: 'send', rid: 3, to: 'bob', body: 'x', title: undefined }) as Uint8Array) as Record<string, unknown>;
    expect('title' in send).toBe(false);
  });

  it('MessagePack: the ids and `by` of a changed frame, and a message\'s `replaces`, become strings', () => {
    const c = makeMsgpackCodec(mp);
    const a = '01936f2a-0b1c-7d2e-8f30-4152637485a6';
    const b = '01936f2a-0b1c-7d2e-8f30-4152637485a7';
    const frame = c.decode(mp.encode({ type: 'changed', ids: [uuidToBytes(a)], state: 'replaced', by: uuidToBytes(b) }));
    expect(frame).toEqual({ type: 'changed', ids: [a], state: 'replaced', by: b });
    const m = c.decode(mp.encode({ type: 'message', id: uuidToBytes(b), replaces: uuidToBytes(a), collapsed: 2 }));
    expect(m).toMatchObject({ id: b, replaces: a, collapsed: 2 });
  });
});

describe('tokens and storage', () => {
  it('reads the subject of a JWT (UTF-8 too)', () => {
    const t = (p: object) => `e30.${Buffer.from(JSON.stringify(p)).toString('base64url')}.x`;
    expect(tokenSubject(t({ sub: 'alice' }))).toBe('alice');
    expect(tokenSubject(t({ sub: '小明' }))).toBe('小明');
    expect(tokenSubject('garbage')).toBeNull();
    expect(tokenSubject(t({ sub: 5 }))).toBeNull();
  });

  it('keeps positions per user and never moves them back', () => {
    const s = new ResumeStore(memoryStorage());
    s.save('alice', { inbox: 5, all: 1 });
    s.save('alice', { inbox: 3, all: 2 });
    expect(s.load('alice')).toEqual({ inbox: 5, all: 2 });
    expect(s.load('bob')).toEqual({ inbox: 0, all: 0 });
    s.clear('alice');
    expect(s.load('alice')).toEqual({ inbox: 0, all: 0 });
  });

  it('survives unreadable or failing storage', () => {
    const broken = { getItem: () => '{not json', setItem: () => { throw new Error('quota'); }, removeItem: () => {} };
    const s = new ResumeStore(broken);
    expect(s.load('alice')).toEqual({ inbox: 0, all: 0 });
    expect(() => s.save('alice', { inbox: 1, all: 0 })).not.toThrow();
  });
});
