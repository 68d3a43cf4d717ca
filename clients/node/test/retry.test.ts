// The retry rules, through a scripted fetch (the answers a live node gives
// only under load or failure: 503 with Retry-After, 429, 5xx).
import { describe, expect, it } from 'vitest';
import { Herald, HeraldError, type SendRequest } from '../src/index.js';

type Step = { status: number; body?: unknown; headers?: Record<string, string> } | 'network' | 'refused';

/** A fetch that plays `steps` in order and records each request. */
function scripted(steps: Step[]) {
  const calls: { method: string; url: string; body: string | undefined; at: number }[] = [];
  const fetch: typeof globalThis.fetch = (async (url: string, init: RequestInit) => {
    calls.push({ method: String(init.method), url, body: init.body as string | undefined, at: Date.now() });
    const step = steps.shift();
    if (step === undefined) throw new Error('the test script ran out of answers');
    if (step === 'network') throw new TypeError('fetch failed', { cause: Object.assign(new Error('other side closed'), { code: 'UND_ERR_SOCKET' }) });
    if (step === 'refused') throw new TypeError('fetch failed', { cause: Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }) });
    return new Response(step.body === undefined ? '' : JSON.stringify(step.body), {
      status: step.status,
      headers: { 'content-type': 'application/json', ...step.headers },
    });
  }) as typeof globalThis.fetch;
  return { fetch, calls };
}

const ok = { status: 202, body: { id: 'm1', stored: [], skipped: [] } };
const unavailable = { status: 503, body: { error: { code: 'unavailable', message: 'store unreachable' } } };
const message: SendRequest = { to: { users: ['alice'] }, category: 'system', body: 'hi' };

function client(fetch: typeof globalThis.fetch, extra = {}) {
  return new Herald({ url: 'http://herald.test', apiKey: 'k', fetch, retryBaseDelay: 1, ...extra });
}

async function failure(p: Promise<unknown>): Promise<HeraldError> {
  const err = await p.catch((e: unknown) => e);
  expect(err).toBeInstanceOf(HeraldError);
  return err as HeraldError;
}

describe('retries', () => {
  it('a send retried after a 503 and a cut connection sends the same body, key included', async () => {
    const { fetch, calls } = scripted([unavailable, 'network', ok]);
    expect(await client(fetch).send(message)).toEqual(ok.body);
    expect(calls).toHaveLength(3);
    const key = JSON.parse(calls[0]!.body!).idempotency_key;
    expect(key).toMatch(/^[0-9a-f-]{36}$/);
    expect(new Set(calls.map((c) => c.body)).size).toBe(1);
  });

  it('each send gets its own key; a batch keys each message', async () => {
    const { fetch, calls } = scripted([ok, ok, { status: 202, body: { results: [] } }]);
    const herald = client(fetch);
    await herald.send(message);
    await herald.send(message);
    await herald.sendBatch([message, { ...message, idempotency_key: 'mine' }]);
    const [a, b] = calls.map((c) => JSON.parse(c.body!).idempotency_key);
    expect(a).not.toBe(b);
    const batch = JSON.parse(calls[2]!.body!).messages;
    expect(batch[0].idempotency_key).toMatch(/^[0-9a-f-]{36}$/);
    expect(batch[1].idempotency_key).toBe('mine');
  });

  it('waits the Retry-After Herald gives', async () => {
    const { fetch, calls } = scripted([{ ...unavailable, headers: { 'retry-after': '1' } }, ok]);
    await client(fetch).send(message);
    expect(calls[1]!.at - calls[0]!.at).toBeGreaterThanOrEqual(990);
  });

  it('gives up at once when Retry-After outlasts the call’s timeout', async () => {
    const { fetch, calls } = scripted([{ ...unavailable, headers: { 'retry-after': '30' } }, ok]);
    const err = await failure(client(fetch, { timeout: 2_000, retryMaxDelay: 60_000 }).send(message));
    expect([err.status, err.code, err.attempts, err.retryAfterMs]).toEqual([503, 'unavailable', 1, 30_000]);
    expect(calls).toHaveLength(1);
  });

  it('stops after maxRetries and throws the last answer', async () => {
    const { fetch, calls } = scripted([unavailable, unavailable, unavailable, ok]);
    const err = await failure(client(fetch, { maxRetries: 2 }).history('alice'));
    expect([err.status, err.code, err.attempts]).toEqual([503, 'unavailable', 3]);
    expect(calls).toHaveLength(3);
  });

  it('a 4xx other than 429 is final', async () => {
    for (const status of [400, 401, 403, 404, 409, 413]) {
      const { fetch, calls } = scripted([{ status, body: { error: { code: 'x', message: 'no' } } }, ok]);
      const err = await failure(client(fetch).send(message));
      expect([err.status, err.attempts]).toEqual([status, 1]);
      expect(calls).toHaveLength(1);
    }
  });

  it('a call that must not run twice (act) is retried only when Herald certainly did not take it', async () => {
    const acted = { status: 200, body: { message: 'm1', acted: 'accept' } };
    const button = { message: 'm1', action: 'accept' };
    const limited = { status: 429, body: { error: { code: 'rate_limited', message: 'slow down' } } };
    let s = scripted([limited, 'refused', acted]);
    expect(await client(s.fetch).act('alice', button)).toEqual(acted.body);
    expect(s.calls).toHaveLength(3);

    s = scripted([unavailable, acted]);
    expect((await failure(client(s.fetch).act('alice', button))).code).toBe('unavailable');
    s = scripted(['network', acted]);
    expect((await failure(client(s.fetch).act('alice', button))).code).toBe('network');
  });

  it('without idempotency keys a send is retried only when it was certainly not taken', async () => {
    let s = scripted(['network', ok]);
    const err = await failure(client(s.fetch, { idempotencyKeys: false }).send(message));
    expect([err.code, err.attempts]).toEqual(['network', 1]);
    expect(JSON.parse(s.calls[0]!.body!)).not.toHaveProperty('idempotency_key');

    s = scripted(['refused', ok]);
    await client(s.fetch, { idempotencyKeys: false }).send(message);
    expect(s.calls).toHaveLength(2);
  });

  it('an answer without the API’s error body is http_<status>', async () => {
    const { fetch } = scripted([{ status: 502, body: undefined }]);
    const err = await failure(client(fetch, { maxRetries: 0 }).history('alice'));
    expect([err.status, err.code]).toEqual([502, 'http_502']);
  });

  it('an export cut short is incomplete, never a partial document', async () => {
    const cut = (async () => new Response('{"user":"alice","messages":[{"seq":1', { status: 200 })) as typeof globalThis.fetch;
    const err = await failure(client(cut).exportUser('alice'));
    expect([err.status, err.code]).toEqual([200, 'incomplete']);
  });

  it('refuses bad options and path segments with a clear error', () => {
    expect(() => new Herald({ url: 'herald:8080', apiKey: 'k' })).toThrow(/http\(s\) URL/);
    expect(() => new Herald({ url: 'http://h', apiKey: '' })).toThrow(/apiKey/);
    expect(() => new Herald({ url: 'http://h', apiKey: 'k', timeout: -1 })).toThrow(/timeout/);
    expect(() => client(scripted([]).fetch).history('')).toThrow(/path segment/);
  });

  it('encodes path segments and query lists', async () => {
    const { fetch, calls } = scripted([{ status: 200, body: { unread: 0 } }]);
    await client(fetch).counts('a/b c', { tags: ['billing', 'team:42'], severity: 'high' });
    expect(calls[0]!.url).toBe('http://herald.test/v1/users/a%2Fb%20c/counts?tags=billing%2Cteam%3A42&severity=high');
  });
});
