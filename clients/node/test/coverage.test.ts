// Every server API operation of docs/openapi.json has a method, and each
// method sends what the document says its operation is: the HTTP method,
// the path template, and only query parameters the operation declares. A
// route added to the document without a method here fails this test.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import { Herald } from '../src/index.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const doc = JSON.parse(fs.readFileSync(path.join(root, 'docs/openapi.json'), 'utf8')) as {
  paths: Record<string, Record<string, { operationId: string; parameters?: { name: string; in: string }[] }>>;
};

/**
 * Operations an application's backend does not call with an API key: the
 * probes, and `/v1/me/requests`, which takes a user's credentials (the
 * browser SDK's SSE fallback).
 */
const NOT_SERVER_API = new Set(['healthz', 'readyz', 'requests']);

/** One call per operation, with every query parameter the method takes. */
const CALLS: Record<string, (h: Herald) => Promise<unknown>> = {
  post_messages: (h) => h.send({ to: { users: ['u'] }, category: 'system', body: 'b' }),
  post_batch: (h) => h.sendBatch([{ to: { users: ['u'] }, category: 'system', body: 'b' }]),
  publish: (h) => h.publish('t', { body: 'b' }),
  job: (h) => h.job('j'),
  scheduled: (h) => h.scheduled('s'),
  cancel_scheduled: (h) => h.cancelScheduled('s'),
  online: (h) => h.onlineUsers(),
  user_presence: (h) => h.presence('u'),
  inbox: (h) => h.inbox('u', { after: 1, limit: 2 }),
  history: (h) =>
    h.history('u', { category: 'c', state: 'read', before: 'x', limit: 2, snoozed: true, tags: ['a'], severity: 'high' }),
  counts: (h) => h.counts('u', { tags: ['a'], severity: 'high' }),
  mark: (h) => h.mark('u', { state: 'read', all: true }),
  act: (h) => h.act('u', { message: 'm', action: 'a' }),
  user_topics: (h) => h.topics('u'),
  subscribe: (h) => h.subscribe('u', 't'),
  unsubscribe: (h) => h.unsubscribe('u', 't'),
  topic_subscribers: (h) => h.subscribers('t', { after: 'x', limit: 2 }),
  conversations: (h) => h.conversations('u', { before: 'x', limit: 2 }),
  conversation: (h) => h.conversation('u', 'p', { before: 'x', limit: 2 }),
  blocks: (h) => h.blocks('u'),
  block: (h) => h.block('u', 'v'),
  unblock: (h) => h.unblock('u', 'v'),
  get_preferences: (h) => h.preferences('u'),
  patch_preferences: (h) => h.updatePreferences('u', { quiet_hours: null }),
  export_user: (h) => h.exportUser('u'),
  erase_user: (h) => h.eraseUser('u'),
  dead: (h) => h.deadWebhooks({ limit: 2, after: 'x' }),
  retry_dead: (h) => h.retryDeadWebhook('w'),
};

const operations = Object.entries(doc.paths).flatMap(([template, item]) =>
  Object.entries(item)
    .filter(([method]) => ['get', 'put', 'post', 'patch', 'delete'].includes(method))
    .map(([method, op]) => ({ template, method: method.toUpperCase(), ...op })),
);

it('every server API operation of the document has a method', () => {
  const documented = operations.map((o) => o.operationId).filter((id) => !NOT_SERVER_API.has(id));
  expect(documented.sort()).toEqual(Object.keys(CALLS).sort());
});

it.each(operations.filter((o) => !NOT_SERVER_API.has(o.operationId)).map((o) => [o.operationId, o] as const))(
  '%s: the method, path and query the document gives',
  async (id, op) => {
    let sent: { method: string; url: URL } | undefined;
    const fetch = (async (url: string, init: RequestInit) => {
      sent = { method: String(init.method), url: new URL(url) };
      return new Response('{}', { status: 200, headers: { 'content-type': 'application/json' } });
    }) as typeof globalThis.fetch;
    await CALLS[id]!(new Herald({ url: 'http://herald.test', apiKey: 'k', fetch }));
    expect(sent!.method).toBe(op.method);
    const pattern = new RegExp(`^${op.template.replace(/\{[^}]+\}/g, '[^/]+')}$`);
    expect(sent!.url.pathname).toMatch(pattern);
    const declared = (op.parameters ?? []).filter((p) => p.in === 'query').map((p) => p.name).sort();
    expect([...sent!.url.searchParams.keys()].sort()).toEqual(declared);
  },
);
