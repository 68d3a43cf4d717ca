// The browser SDK and the demo inbox in headless Chromium against real
// herald nodes (Redis backend, dev mode), behind a TCP front that plays the
// load balancer. Run by scripts/test-browser.sh (which builds the SDK and
// the gateway first).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { API_KEY, ARTIFACTS, api, launchBrowser, startFront, startGateway, startRedis, user, waitFor } from './lib/harness.mjs';

const require = createRequire(import.meta.url);
const AXE = require.resolve('axe-core/axe.min.js');

let redis;
let nodeA;
let nodeB = null;
let front;
let browser;
const contexts = [];

before(async () => {
  redis = await startRedis();
  nodeA = await startGateway('herald-a', redis.url);
  front = await startFront(() => [nodeA.port, ...(nodeB ? [nodeB.port] : [])]);
  browser = await launchBrowser();
});

after(async () => {
  for (const c of contexts) await c.close().catch(() => {});
  await browser?.close().catch(() => {});
  await front?.close();
  await nodeA?.kill();
  await nodeB?.kill();
  redis?.stop();
});

async function newPage(init) {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  contexts.push(ctx);
  if (init) await ctx.addInitScript(init);
  const page = await ctx.newPage();
  page.on('pageerror', (e) => console.error(`[page error] ${e.message}`));
  return page;
}

/** Signs in through the form, and waits for the connection. */
async function signIn(page, name, query = '') {
  await page.goto(`${front.base}/${query}`);
  await page.fill('#user', name);
  await page.click('#signin-form button[type="submit"]');
  await page.waitForSelector('body[data-state="open"]', { timeout: 20_000 });
}

const badge = async (page, cat) => Number((await page.textContent(`[data-badge="${cat}"]`)).replace(/\D+/g, '') || 0);
const receiptOf = (page, text) => page.locator('#thread li.mine', { hasText: text }).locator('.receipt');
/** What the SDK handed the page, as `stream:seq:id`, kept across reloads (sessionStorage). */
const log = (page, name) => page.evaluate((n) => JSON.parse(sessionStorage.getItem(`herald-demo-log:${n}`) ?? '[]'), name);

function assertNoRepeat(entries) {
  const seen = new Set();
  for (const e of entries) {
    const key = e.split(':').slice(0, 2).join(':');
    assert.ok(!seen.has(key), `message ${e} was handed to the page twice`);
    seen.add(key);
  }
}

async function system(to, body) {
  const r = await api(front.base, 'POST', '/v1/messages', { to: { users: [to] }, category: 'system', title: 'Notice', body });
  return r.id;
}

/** Every id once in the page's list, and once in what the SDK emitted (a history page may show one before the stream does). */
async function assertEachOnce(page, name, ids) {
  const shownIds = () => page.locator('#messages li.message').evaluateAll((els) => els.map((e) => e.dataset.id));
  await waitFor(
    async () => {
      const shown = await shownIds();
      const entries = await log(page, name);
      return ids.every((id) => shown.includes(id) && entries.some((e) => e.endsWith(`:${id}`)));
    },
    { what: `all of ${ids.length} messages shown and emitted by the SDK` },
  );
  await sleep(200); // a repeat would come right behind
  const shown = await shownIds();
  for (const id of ids) assert.equal(shown.filter((x) => x === id).length, 1, `message ${id} shown once`);
  const entries = await log(page, name);
  assertNoRepeat(entries);
  for (const id of ids) assert.equal(entries.filter((e) => e.endsWith(`:${id}`)).length, 1, `message ${id} emitted once by the SDK`);
}

async function axe(page, label) {
  await page.addScriptTag({ path: AXE });
  const result = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
  const bad = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  const report = result.violations.map((v) => `${v.impact} ${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(' ')).join(', ')})`);
  fs.writeFileSync(path.join(ARTIFACTS, `axe-${label}.txt`), report.join('\n') + '\n');
  assert.deepEqual(bad.map((v) => v.id), [], `axe (${label}): ${report.join('; ')}`);
}

describe('demo inbox in Chromium', () => {
  const alice = user('alice');
  const bob = user('bob');
  let pa;
  let pb;

  it('two users exchange a private message with receipts (sent, delivered, read)', async () => {
    pa = await newPage();
    pb = await newPage();
    await signIn(pa, alice);
    await signIn(pb, bob);
    assert.equal(await pa.getAttribute('body', 'data-transport'), 'ws');

    await pa.click('#tab-mailbox');
    await pa.fill('#peer', bob);
    await pa.click('#new-conversation button[type="submit"]');
    await pa.fill('#body', 'Hello Bob, lunch at noon?');
    await pa.click('#send-form button[type="submit"]');
    await pa.locator('#thread li.mine', { hasText: 'Hello Bob' }).waitFor();

    // Bob's tab received it and acknowledged it: delivered, not read yet.
    await waitFor(async () => (await receiptOf(pa, 'Hello Bob').textContent()) === 'Delivered', { what: 'receipt "Delivered"' });
    await waitFor(async () => (await badge(pb, 'mailbox')) === 1, { what: "bob's mailbox badge = 1" });

    await pb.click('#tab-mailbox');
    await pb.click(`#conversations button[data-peer="${alice}"]`);
    await pb.locator('#thread li', { hasText: 'Hello Bob' }).waitFor();
    await waitFor(async () => (await receiptOf(pa, 'Hello Bob').textContent()) === 'Read', { what: 'receipt "Read"' });
    await waitFor(async () => (await badge(pb, 'mailbox')) === 0, { what: "bob's mailbox badge back to 0" });

    // And back, live into Alice's open conversation.
    await pb.fill('#body', 'Noon works.');
    await pb.click('#send-form button[type="submit"]');
    await pa.locator('#thread li:not(.mine)', { hasText: 'Noon works.' }).waitFor();
    await waitFor(async () => (await receiptOf(pb, 'Noon works.').textContent()) === 'Read', { what: "bob's reply read by alice (open conversation)" });
  });

  it('an announcement from the admin panel shows in both tabs with badges; marking it read clears one', async () => {
    for (const p of [pa, pb]) await p.click('#tab-all');
    const before = [await badge(pa, 'announcement'), await badge(pb, 'announcement')];
    await pa.fill('#admin-title-input', 'Maintenance tonight');
    await pa.fill('#admin-body', 'The service restarts at 22:00 UTC for about five minutes.');
    await pa.click('#admin-form button[type="submit"]');
    await waitFor(async () => /posted/i.test(await pa.textContent('#admin-result')), { what: 'admin panel result' });
    for (const p of [pa, pb]) {
      await p.locator('#messages li.message', { hasText: 'Maintenance tonight' }).waitFor();
    }
    await waitFor(async () => (await badge(pa, 'announcement')) === before[0] + 1, { what: "alice's announcement badge +1" });
    await waitFor(async () => (await badge(pb, 'announcement')) === before[1] + 1, { what: "bob's announcement badge +1" });
    assert.equal(await badge(pb, 'all'), (await pb.evaluate(() => window.heraldDemo.client.counts.unread_total)));

    await pb.locator('#messages li.message', { hasText: 'Maintenance tonight' }).getByRole('button', { name: 'Mark read' }).click();
    await waitFor(async () => (await badge(pb, 'announcement')) === before[1], { what: "bob's badge back after mark read" });
    await sleep(300);
    assert.equal(await badge(pa, 'announcement'), before[0] + 1, "alice's badge is hers alone");

    // A system message to one user: only bob gets it.
    await pa.check('#kind-user');
    await pa.fill('#admin-to', bob);
    await pa.fill('#admin-title-input', 'Your password expires soon');
    await pa.fill('#admin-body', 'Change it within 7 days.');
    await pa.click('#admin-form button[type="submit"]');
    await pb.locator('#messages li.message', { hasText: 'Your password expires soon' }).waitFor();
    await waitFor(async () => (await badge(pb, 'system')) === 1, { what: "bob's system badge" });
    assert.equal(await pa.locator('#messages li.message', { hasText: 'Your password expires soon' }).count(), 0);
  });

  it('the demo page passes axe (no serious or critical violation) and a screenshot is saved', async () => {
    await axe(pa, 'inbox');
    await pa.screenshot({ path: path.join(ARTIFACTS, 'demo-inbox.png'), fullPage: true });
    await pa.click('#tab-mailbox');
    await pa.click(`#conversations button[data-peer="${bob}"]`);
    await pa.locator('#thread li').first().waitFor();
    await axe(pa, 'conversation');
    await pa.screenshot({ path: path.join(ARTIFACTS, 'demo-conversation.png'), fullPage: true });
    const fresh = await newPage();
    await fresh.goto(`${front.base}/`);
    await axe(fresh, 'sign-in');
    await fresh.screenshot({ path: path.join(ARTIFACTS, 'demo-sign-in.png') });
  });

  it('a reload resumes without duplicates (and nothing sent meanwhile is lost)', async () => {
    const carol = user('carol');
    const page = await newPage();
    await signIn(page, carol);
    const ids = [];
    for (let i = 1; i <= 3; i++) ids.push(await system(carol, `before reload ${i}`));
    await assertEachOnce(page, carol, ids);
    const stored = await page.evaluate((u) => JSON.parse(localStorage.getItem(`herald:resume:${u}`)), carol);
    assert.equal(stored.inbox, 3);

    const reload = page.reload();
    ids.push(await system(carol, 'during reload 1'));
    ids.push(await system(carol, 'during reload 2'));
    await reload;
    await page.waitForSelector('body[data-state="open"]');
    await assertEachOnce(page, carol, ids);

    // Away from the page while two more arrive, then back.
    await page.goto('about:blank');
    ids.push(await system(carol, 'while away 1'));
    ids.push(await system(carol, 'while away 2'));
    await page.goto(`${front.base}/`);
    await page.waitForSelector('body[data-state="open"]');
    await assertEachOnce(page, carol, ids);
    const entries = (await log(page, carol)).filter((e) => e.startsWith('inbox:'));
    assert.deepEqual(entries.map((e) => Number(e.split(':')[1])), [1, 2, 3, 4, 5, 6, 7]);
  });

  it('MessagePack on the WebSocket: messages, marks by id, sends', async () => {
    const henry = user('henry');
    const page = await newPage();
    await signIn(page, henry, '?codec=msgpack');
    const info = await page.evaluate(() => ({ kind: window.heraldDemo.client.transportKind, conn: window.heraldDemo.client.welcome.conn_id }));
    assert.equal(info.kind, 'ws');
    assert.match(info.conn, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    const id = await system(henry, 'binary frames');
    const item = page.locator(`#messages li.message[data-id="${id}"]`);
    await item.waitFor();
    await waitFor(async () => (await badge(page, 'system')) === 1, { what: 'system badge 1' });
    await item.getByRole('button', { name: 'Mark read' }).click();
    await waitFor(async () => (await badge(page, 'system')) === 0, { what: 'system badge 0 after a mark by id over MessagePack' });
    const sent = await page.evaluate(() => window.heraldDemo.client.send('someone-else', 'over msgpack'));
    assert.match(sent.id, /^[0-9a-f-]{36}$/);
    assert.equal(sent.seq, 1);
  });

  it('tabs of one browser share one connection (Web Locks + BroadcastChannel)', async () => {
    const jack = user('jack');
    const first = await newPage();
    await signIn(first, jack, '?share=1');
    const second = await first.context().newPage(); // sessionStorage is per tab: sign in there too
    await signIn(second, jack, '?share=1');
    assert.equal(await second.getAttribute('body', 'data-transport'), 'tab');
    const presence = () => api(front.base, 'GET', `/v1/users/${jack}/presence`);
    await waitFor(async () => (await presence()).connections.length === 1, { what: 'one connection for two tabs' });
    const id1 = await system(jack, 'to both tabs');
    for (const p of [first, second]) await p.locator(`#messages li.message[data-id="${id1}"]`).waitFor();
    await waitFor(async () => (await badge(second, 'system')) === 1, { what: "the follower tab's badge" });

    // The leader tab goes; the other takes over the connection and misses nothing.
    await first.close();
    const id2 = await system(jack, 'after the leader left');
    await waitFor(async () => (await second.getAttribute('body', 'data-transport')) === 'ws', { what: 'the follower leading' });
    await second.locator(`#messages li.message[data-id="${id2}"]`).waitFor();
    await waitFor(async () => (await presence()).connections.length === 1, { what: 'still one connection' });
    assertNoRepeat(await log(second, jack));
  });

  it('with WebSocket blocked the SDK uses SSE (+ POST /v1/me/requests), resumes with Last-Event-ID, and goes back to WebSocket', async () => {
    const frank = user('frank');
    const gina = user('gina');
    // A page that cannot open a WebSocket (as behind a proxy that blocks them), until the test allows it.
    const page = await newPage(() => {
      const Real = window.WebSocket;
      window.__wsBlocked = true;
      window.__wsAttempts = 0;
      function Blocked(url, protocols) {
        window.__wsAttempts++;
        if (!window.__wsBlocked) return new Real(url, protocols);
        const ws = new EventTarget();
        ws.readyState = 0;
        ws.url = url;
        ws.send = () => {
          throw new DOMException('not open', 'InvalidStateError');
        };
        ws.close = () => {};
        setTimeout(() => {
          ws.readyState = 3;
          ws.onerror?.(new Event('error'));
          ws.onclose?.(new CloseEvent('close', { code: 1006 }));
        }, 5);
        return ws;
      }
      Object.assign(Blocked, { CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3 });
      window.WebSocket = Blocked;
    });
    await signIn(page, frank, '?upgrade=2000');
    assert.equal(await page.getAttribute('body', 'data-transport'), 'sse');
    assert.ok((await page.evaluate(() => window.__wsAttempts)) >= 2, 'tried WebSocket first');
    const other = await newPage();
    await signIn(other, gina);

    // Live messages and counts over SSE.
    const ids = [await system(frank, 'over server-sent events')];
    await assertEachOnce(page, frank, ids);
    await waitFor(async () => (await badge(page, 'system')) === 1, { what: 'badge over SSE' });
    // Requests over POST /v1/me/requests: mark read, send with receipts.
    await page.locator(`#messages li.message[data-id="${ids[0]}"]`).getByRole('button', { name: 'Mark read' }).click();
    await waitFor(async () => (await badge(page, 'system')) === 0, { what: 'mark read over POST' });
    await page.click('#tab-mailbox');
    await page.fill('#peer', gina);
    await page.click('#new-conversation button[type="submit"]');
    await page.fill('#body', 'sent over http');
    await page.click('#send-form button[type="submit"]');
    await waitFor(async () => (await receiptOf(page, 'sent over http').textContent()) === 'Delivered', { what: 'delivered receipt over SSE' });
    await other.click('#tab-mailbox');
    await other.click(`#conversations button[data-peer="${frank}"]`);
    await waitFor(async () => (await receiptOf(page, 'sent over http').textContent()) === 'Read', { what: 'read receipt over SSE' });
    await page.click('#tab-all');

    // A network blip: the stream breaks, two messages arrive meanwhile; EventSource comes back with Last-Event-ID.
    front.heads.length = 0;
    front.refuse = true;
    front.cut();
    ids.push(await api(nodeA.base, 'POST', '/v1/messages', { to: { users: [frank] }, category: 'remind', body: 'during the blip 1' }).then((r) => r.id));
    ids.push(await api(nodeA.base, 'POST', '/v1/messages', { to: { users: [frank] }, category: 'remind', body: 'during the blip 2' }).then((r) => r.id));
    await sleep(300);
    front.refuse = false;
    await assertEachOnce(page, frank, ids);
    const resumed = front.heads.filter((h) => h.startsWith('GET /sse'));
    assert.ok(resumed.length >= 1, 'the stream reconnected');
    assert.ok(resumed.some((h) => /^last-event-id: \d+\.\d+$/im.test(h)), `a reconnect carried Last-Event-ID:\n${resumed.join('\n---\n')}`);
    assert.equal(await page.getAttribute('body', 'data-transport'), 'sse');

    // WebSocket allowed again: the SDK switches back by itself.
    await page.evaluate(() => (window.__wsBlocked = false));
    await waitFor(async () => (await page.getAttribute('body', 'data-transport')) === 'ws', { timeout: 20_000, what: 'back on WebSocket' });
    ids.push(await system(frank, 'back on websocket'));
    await assertEachOnce(page, frank, ids);
  });

  it('killing the gateway node and starting another resumes with nothing lost', async () => {
    const dave = user('dave');
    const erin = user('erin');
    const page = await newPage();
    await signIn(page, dave);
    const ids = [await system(dave, 'on node a 1'), await system(dave, 'on node a 2')];
    await assertEachOnce(page, dave, ids);
    assert.equal(await page.evaluate(() => window.heraldDemo.client.welcome.node_id), 'herald-a');

    await nodeA.kill();
    await waitFor(async () => (await page.getAttribute('body', 'data-state')) !== 'open', { what: 'the page noticing the node died' });
    // A private message written while no node is up waits in the SDK.
    await page.click('#tab-mailbox');
    await page.fill('#peer', erin);
    await page.click('#new-conversation button[type="submit"]');
    await page.fill('#body', 'queued while the node was down');
    await page.click('#send-form button[type="submit"]');

    nodeB = await startGateway('herald-b', redis.url);
    for (let i = 1; i <= 3; i++) {
      ids.push((await api(nodeB.base, 'POST', '/v1/messages', { to: { users: [dave] }, category: 'system', body: `on node b ${i}` })).id);
    }
    await page.waitForSelector('body[data-state="open"]', { timeout: 20_000 });
    assert.equal(await page.evaluate(() => window.heraldDemo.client.welcome.node_id), 'herald-b');
    await page.click('#tab-all');
    await assertEachOnce(page, dave, ids);
    const entries = (await log(page, dave)).filter((e) => e.startsWith('inbox:'));
    assert.deepEqual(entries.map((e) => Number(e.split(':')[1])), [1, 2, 3, 4, 5]);
    // The queued send was stored exactly once.
    await waitFor(async () => (await api(nodeB.base, 'GET', `/v1/users/${erin}/conversations/${dave}`)).messages.length === 1, { what: 'the queued private message stored' });
    await sleep(500);
    assert.equal((await api(nodeB.base, 'GET', `/v1/users/${erin}/conversations/${dave}`)).messages.length, 1);
  });
});


// ---------------------------------------------------------------------------
// The notification center, part 3 (issue 21): preferences, quiet hours,
// snooze, collapse, as a user of the demo page meets them.

/** `HH:MM` in UTC, `min` minutes from now. */
function utcClock(min) {
  const d = new Date(Date.now() + min * 60_000);
  return `${String(d.getUTCHours()).padStart(2, '0')}:${String(d.getUTCMinutes()).padStart(2, '0')}`;
}

const shownIds = (page) => page.locator('#messages li.message').evaluateAll((els) => els.map((e) => e.dataset.id));
const toasted = (page) => page.evaluate(() => [...window.heraldDemo.toasted]);

async function send(to, body, extra = {}) {
  return api(front.base, 'POST', '/v1/messages', { to: { users: [to] }, category: 'remind', body, ...extra });
}

describe('preferences, quiet hours, snooze and collapse in the demo', () => {
  it('preferences panel: a change in one tab is pushed to the other; a bad zone is refused by name, nothing changed', async () => {
    const pia = user('pia');
    const p1 = await newPage();
    const p2 = await newPage(); // another device of the same user
    await signIn(p1, pia);
    await signIn(p2, pia);
    for (const p of [p1, p2]) await p.locator('#pref-cat-system').waitFor();
    assert.equal(await p1.isChecked('#pref-cat-system'), true, 'categories are shown in the app by default');

    await p1.uncheck('#pref-cat-remind');
    await waitFor(async () => /muted/.test(await p1.textContent('#prefs-result')), { what: 'the panel saying it saved' });
    await waitFor(async () => !(await p2.isChecked('#pref-cat-remind')), { what: "the other tab's panel following the push" });
    const stored = await api(front.base, 'GET', `/v1/users/${pia}/preferences`);
    assert.deepEqual(stored.categories.remind, { in_app: false, fallback: true });

    // A topic muted in the second tab; quiet hours set there too.
    await p2.fill('#prefs-topic', 'article:42');
    await p2.click('#prefs-topic-mute');
    await p1.locator('#pref-topic-article\\:42').waitFor();
    assert.equal(await p1.isChecked('#pref-topic-article\\:42'), false);
    await p2.check('#quiet-on');
    await p2.fill('#quiet-start', '22:30');
    await p2.fill('#quiet-end', '06:45');
    await p2.fill('#quiet-tz', 'Europe/Paris');
    await p2.click('#quiet-save');
    await waitFor(async () => (await p1.getAttribute('body', 'data-quiet')) === '22:30-06:45 Europe/Paris', { what: "the first tab's panel showing the quiet hours" });
    assert.equal(await p1.isChecked('#quiet-on'), true);
    assert.equal(await p1.inputValue('#quiet-start'), '22:30');
    assert.deepEqual((await api(front.base, 'GET', `/v1/users/${pia}/preferences`)).quiet_hours, { tz: 'Europe/Paris', start: '22:30', end: '06:45' });

    await axe(p1, 'preferences');
    await p1.evaluate(() => document.getElementById('toasts').replaceChildren()); // toasts of the backlog's announcements
    await p1.locator('.prefs').screenshot({ path: path.join(ARTIFACTS, 'demo-preferences-panel.png') });
    await p1.screenshot({ path: path.join(ARTIFACTS, 'demo-preferences.png'), fullPage: true });

    // A bad zone is refused by name, and nothing changes.
    await p2.fill('#quiet-tz', 'Mars/Olympus_Mons');
    await p2.click('#quiet-save');
    await waitFor(async () => /Not saved/.test(await p2.textContent('#prefs-result')), { what: 'the refusal shown' });
    assert.match(await p2.textContent('#prefs-result'), /quiet_hours\.tz/);
    assert.equal((await api(front.base, 'GET', `/v1/users/${pia}/preferences`)).quiet_hours.tz, 'Europe/Paris');
    assert.equal(await p2.inputValue('#quiet-tz'), 'Europe/Paris', 'the panel shows what is stored again');
  });

  it('a muted category is not stored (the sender is told), critical gets through, quiet hours silence toasts', async () => {
    const pat = user('pat');
    const p1 = await newPage();
    const p2 = await newPage(); // another device of the same user
    await signIn(p1, pat);
    await signIn(p2, pat);
    for (const p of [p1, p2]) await p.locator('#pref-cat-system').waitFor();

    // Mute system messages in the panel of the first tab.
    await p1.uncheck('#pref-cat-system');
    await waitFor(async () => !(await p2.isChecked('#pref-cat-system')), { what: "the other tab's panel following the push" });

    // The admin panel's send to pat is not stored, and says so.
    await p2.check('#kind-user');
    await p2.fill('#admin-to', pat);
    await p2.selectOption('#admin-category', 'system');
    await p2.fill('#admin-body', 'muted: you never see this');
    await p2.click('#admin-form button[type="submit"]');
    await waitFor(async () => /muted by their preferences/.test(await p2.textContent('#admin-result')), { what: 'the admin panel reporting skipped' });
    const muted = await api(front.base, 'POST', '/v1/messages', { to: { users: [pat] }, category: 'system', body: 'muted too' });
    assert.deepEqual(muted.skipped, [pat]);
    // A reminder sent after them arrives (with a toast); the muted ones, sent before it, never did.
    const remind = (await send(pat, 'a reminder gets through')).id;
    await p1.locator(`#messages li.message[data-id="${remind}"]`).waitFor();
    assert.equal(await p1.locator('#messages li.message', { hasText: 'muted' }).count(), 0);
    assert.equal(await badge(p1, 'system'), 0);
    await waitFor(async () => (await toasted(p1)).includes(remind), { what: 'a toast for the reminder' });
    const history = await api(front.base, 'GET', `/v1/users/${pat}/messages?category=system`);
    assert.deepEqual(history.messages, [], 'nothing stored for a muted category');

    // Critical: nobody can mute it.
    const critical = (await api(front.base, 'POST', '/v1/messages', { to: { users: [pat] }, category: 'system', body: 'critical: always delivered', critical: true })).id;
    await p1.locator(`#messages li.message[data-id="${critical}"][data-critical]`).waitFor();
    await waitFor(async () => (await badge(p1, 'system')) === 1, { what: 'the critical message counted' });

    // Quiet hours around now (UTC), set in the second tab: messages arrive silent, without a toast.
    await p2.check('#quiet-on');
    await p2.fill('#quiet-start', utcClock(-60));
    await p2.fill('#quiet-end', utcClock(60));
    await p2.fill('#quiet-tz', 'UTC');
    await p2.click('#quiet-save');
    await waitFor(async () => /UTC/.test((await p1.getAttribute('body', 'data-quiet')) ?? ''), { what: "the first tab's panel showing the quiet hours" });
    const quiet = (await send(pat, 'in quiet hours: no toast')).id;
    const loud = (await api(front.base, 'POST', '/v1/messages', { to: { users: [pat] }, category: 'remind', body: 'critical in quiet hours', critical: true })).id;
    await p1.locator(`#messages li.message[data-id="${quiet}"][data-silent]`).waitFor();
    await p1.locator(`#messages li.message[data-id="${loud}"][data-critical]:not([data-silent])`).waitFor();
    await waitFor(async () => (await toasted(p1)).includes(loud), { what: 'a toast for the critical message' });
    assert.ok(!(await toasted(p1)).includes(quiet), 'a silent message raises no toast');
    await waitFor(async () => (await badge(p1, 'remind')) === 3, { what: 'silent messages count as usual' });
    await axe(p1, 'quiet-hours');
    await p1.screenshot({ path: path.join(ARTIFACTS, 'demo-quiet-hours.png'), fullPage: true });

    // Away while one more arrives: back, it comes in the backlog (not marked silent by the server),
    // and the SDK, knowing the quiet hours from before the reload, raises no toast either.
    await p1.goto('about:blank');
    const away = (await send(pat, 'sent while away, in quiet hours')).id;
    await p1.goto(`${front.base}/`);
    await p1.waitForSelector('body[data-state="open"]');
    await p1.locator(`#messages li.message[data-id="${away}"]`).waitFor();
    await sleep(300);
    assert.ok(!(await toasted(p1)).includes(away), 'no toast for a backlog message in quiet hours');
  });

  it('snooze: the message leaves the list and the counts, is listed under Snoozed, and comes back unread at its time', async () => {
    const sam = user('sam');
    const page = await newPage();
    await signIn(page, sam);
    const a = (await send(sam, 'snooze me for an hour')).id;
    const b = (await send(sam, 'snooze me for a few seconds')).id;
    for (const id of [a, b]) await page.locator(`#messages li.message[data-id="${id}"]`).waitFor();
    await waitFor(async () => (await badge(page, 'remind')) === 2, { what: 'two unread' });

    await page.locator(`#messages li.message[data-id="${a}"]`).getByRole('button', { name: 'Snooze 1 h' }).click();
    await waitFor(async () => !(await shownIds(page)).includes(a), { what: 'the snoozed message leaving the list' });
    await waitFor(async () => (await badge(page, 'remind')) === 1, { what: 'the count without it' });

    // The custom form: a few seconds.
    const item = page.locator(`#messages li.message[data-id="${b}"]`);
    await item.getByRole('button', { name: 'Snooze…' }).click();
    await item.locator('.snooze-amount').fill('3');
    await item.locator('.snooze-unit').selectOption({ label: 'seconds' });
    await page.screenshot({ path: path.join(ARTIFACTS, 'demo-snooze-form.png'), fullPage: true });
    const snoozedAt = Date.now();
    await item.getByRole('button', { name: 'Snooze', exact: true }).click();
    await waitFor(async () => !(await shownIds(page)).includes(b), { what: 'the second snoozed message leaving the list' });
    await waitFor(async () => (await badge(page, 'remind')) === 0, { what: 'no unread left' });

    // Listed under Snoozed, with its time.
    await page.check('#show-snoozed');
    await page.locator(`#messages li.message[data-id="${a}"] .tag.snoozed`).waitFor();
    assert.equal(await page.isHidden('#mark-all'), true, 'nothing to mark read among the snoozed');
    await axe(page, 'snoozed');
    await page.screenshot({ path: path.join(ARTIFACTS, 'demo-snoozed.png'), fullPage: true });
    await page.uncheck('#show-snoozed');

    // At its time (3 s, ±1 s) it comes back, unread, with the counts; the other stays away.
    await page.locator(`#messages li.message.unread[data-id="${b}"]`).waitFor({ timeout: 10_000 });
    const back = Date.now() - snoozedAt;
    assert.ok(back >= 1500, `came back after ${back} ms, not at once`);
    await waitFor(async () => (await badge(page, 'remind')) === 1, { what: 'the count with it again' });
    assert.ok(!(await shownIds(page)).includes(a));
  });

  it('over SSE (+ POST /v1/me/requests): preferences set and pushed, a snooze and its wake-up', async () => {
    const sid = user('sid');
    const sse = await newPage();
    const ws = await newPage();
    await signIn(sse, sid, '?transports=sse');
    await signIn(ws, sid);
    assert.equal(await sse.getAttribute('body', 'data-transport'), 'sse');
    for (const p of [sse, ws]) await p.locator('#pref-cat-remind').waitFor();
    await sse.uncheck('#pref-cat-resource_publish');
    await waitFor(async () => !(await ws.isChecked('#pref-cat-resource_publish')), { what: 'a change over POST pushed to the WebSocket tab' });
    await ws.check('#pref-cat-resource_publish');
    await waitFor(async () => await sse.isChecked('#pref-cat-resource_publish'), { what: 'a change pushed over the event stream' });

    const id = (await send(sid, 'snoozed over SSE')).id;
    const item = sse.locator(`#messages li.message[data-id="${id}"]`);
    await item.waitFor();
    await item.getByRole('button', { name: 'Snooze…' }).click();
    await item.locator('.snooze-amount').fill('2');
    await item.locator('.snooze-unit').selectOption({ label: 'seconds' });
    await item.getByRole('button', { name: 'Snooze', exact: true }).click();
    await waitFor(async () => !(await shownIds(sse)).includes(id), { what: 'the snoozed message leaving the list' });
    await waitFor(async () => (await badge(sse, 'remind')) === 0, { what: 'counts over the event stream' });
    await sse.locator(`#messages li.message.unread[data-id="${id}"]`).waitFor({ timeout: 10_000 });
    await waitFor(async () => (await badge(sse, 'remind')) === 1, { what: 'back in the counts' });
  });

  it('a scheduled send from the admin panel: pending, then delivered at its time, once', async () => {
    const skye = user('skye');
    const page = await newPage();
    await signIn(page, skye);
    await page.check('#kind-user');
    await page.fill('#admin-to', skye);
    await page.selectOption('#admin-category', 'remind');
    await page.fill('#admin-body', 'scheduled two seconds ahead');
    await page.fill('#admin-delay', '2');
    const postedAt = Date.now();
    await page.click('#admin-form button[type="submit"]');
    await waitFor(async () => /Scheduled for/.test(await page.textContent('#admin-result')), { what: 'the admin panel reporting the schedule' });
    const id = (await page.textContent('#admin-result')).match(/\(([0-9a-f-]{36})\)/)[1];
    assert.equal((await api(front.base, 'GET', `/v1/scheduled/${id}`)).state, 'pending');
    assert.equal(await page.locator(`#messages li.message[data-id="${id}"]`).count(), 0, 'not delivered at once');
    await page.locator(`#messages li.message[data-id="${id}"]`).waitFor({ timeout: 10_000 });
    const took = Date.now() - postedAt;
    assert.ok(took >= 1500, `delivered after ${took} ms, not at once`);
    await waitFor(async () => (await api(front.base, 'GET', `/v1/scheduled/${id}`)).state === 'delivered', { what: 'state delivered' });
    await waitFor(async () => (await badge(page, 'remind')) === 1, { what: 'counted once' });
    await assertEachOnce(page, skye, [id]);
  });

  it('action buttons: pressed in one tab, the other follows (read, the choice shown); the first press wins', async () => {
    const ada = user('ada');
    const p1 = await newPage();
    const p2 = await newPage(); // another device of the same user
    await signIn(p1, ada);
    await signIn(p2, ada);
    const actions = [
      { id: 'accept', label: 'Accept' },
      { id: 'decline', label: 'Decline' },
    ];
    const id = (await send(ada, 'join the team?', { actions })).id;
    for (const p of [p1, p2]) {
      await p.locator(`#messages li.message[data-id="${id}"] .buttons button[data-action="decline"]`).waitFor();
      await waitFor(async () => (await badge(p, 'remind')) === 1, { what: 'one unread' });
    }
    await axe(p1, 'action-buttons');
    await p1.locator(`#messages li.message[data-id="${id}"]`).screenshot({ path: path.join(ARTIFACTS, 'demo-action-buttons.png') });

    await p1.locator(`#messages li.message[data-id="${id}"]`).getByRole('button', { name: 'Accept' }).click();
    for (const p of [p1, p2]) {
      await p.locator(`#messages li.message[data-id="${id}"] .buttons[data-acted="accept"]`).waitFor();
      await waitFor(async () => (await badge(p, 'remind')) === 0, { what: 'read on every tab' });
    }
    assert.match(await p2.locator(`#messages li.message[data-id="${id}"] .tag.acted`).textContent(), /Accept/);
    assert.equal(await p2.locator(`#messages li.message[data-id="${id}"] .buttons button`).count(), 0, 'no buttons left');
    await p2.screenshot({ path: path.join(ARTIFACTS, 'demo-acted.png'), fullPage: true });

    // Any later act, here through the server API, is refused; the page after a reload shows the first choice.
    const late = await fetch(`${front.base}/v1/users/${ada}/act`, {
      method: 'POST',
      headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ message: id, action: 'decline' }),
    });
    assert.equal(late.status, 409);
    assert.equal((await late.json()).error.code, 'already_acted');
    await p2.reload();
    await p2.waitForSelector('body[data-state="open"]');
    await p2.locator(`#messages li.message[data-id="${id}"] .buttons[data-acted="accept"]`).waitFor();
    const history = await api(front.base, 'GET', `/v1/users/${ada}/messages`);
    assert.equal(history.messages.find((m) => m.id === id).acted, 'accept');
  });

  it('collapse: messages with one group key show as one item, ×n, counted once', async () => {
    const cole = user('cole');
    const page = await newPage();
    await signIn(page, cole);
    const ids = [];
    for (let i = 1; i <= 4; i++) ids.push((await send(cole, `${i} people liked your post`, { group_key: 'likes:post-1' })).id);
    const last = ids.at(-1);
    await page.locator(`#messages li.message[data-id="${last}"][data-collapsed="4"]`).waitFor();
    await waitFor(async () => (await shownIds(page)).filter((id) => ids.includes(id)).length === 1, { what: 'one item for the group' });
    assert.match(await page.locator(`#messages li.message[data-id="${last}"] .collapsed`).textContent(), /^×4\b/);
    await waitFor(async () => (await badge(page, 'remind')) === 1, { what: 'the group counted once' });
    // A reload shows the same (history holds the replacement only).
    await page.reload();
    await page.waitForSelector('body[data-state="open"]');
    await page.locator(`#messages li.message[data-id="${last}"][data-collapsed="4"]`).waitFor();
    assert.deepEqual((await shownIds(page)).filter((id) => ids.includes(id)), [last]);
    await page.screenshot({ path: path.join(ARTIFACTS, 'demo-collapsed.png'), fullPage: true });
  });

  it('tags and severity: badges, unread by severity, a tag filter and its mark-all-read, a severity filter', async () => {
    const tess = user('tess');
    // Announcements of the cases before are unread for every user: read
    // them first, so the counts below are this case's messages only.
    await api(front.base, 'POST', `/v1/users/${tess}/mark`, { state: 'read', all: true });
    const page = await newPage();
    await signIn(page, tess);
    const bill = (await send(tess, 'Invoice due', { tags: ['billing', 'team:42'], severity: 'high' })).id;
    const outage = (await send(tess, 'Outage', { tags: ['ops'], severity: 'critical' })).id;
    const refund = (await send(tess, 'Refund', { tags: ['billing'] })).id;
    const row = (id) => page.locator(`#messages li.message[data-id="${id}"]`);
    await row(refund).waitFor();
    await row(bill).locator('[data-severity-badge="high"]').waitFor();
    await row(outage).locator('[data-severity-badge="critical"]').waitFor();
    assert.equal(await row(refund).locator('[data-severity-badge]').count(), 0, 'normal has no badge');
    assert.deepEqual(await row(bill).locator('[data-tag]').evaluateAll((els) => els.map((e) => e.dataset.tag)), ['billing', 'team:42']);
    const bySeverity = () => page.textContent('#severity-counts');
    await waitFor(async () => (await bySeverity()) === '1 critical · 1 high · 1 normal · 0 low', { what: 'unread by severity' });
    // A tag filter: the list, its count from the server, then mark all read
    // with it (one request): the other message stays unread.
    await page.fill('#filter-tag', 'billing');
    await page.dispatchEvent('#filter-tag', 'change');
    await waitFor(async () => (await shownIds(page)).sort().join() === [bill, refund].sort().join(), { what: 'the billing messages only' });
    await waitFor(async () => (await page.textContent('#filter-count')) === '2 unread match the filter', { what: 'the filter count' });
    await page.click('#mark-all');
    await waitFor(async () => (await bySeverity()) === '1 critical · 0 high · 0 normal · 0 low', { what: 'billing read' });
    await waitFor(async () => (await badge(page, 'all')) === 1, { what: 'one unread left' });
    await waitFor(async () => (await page.textContent('#filter-count')) === '0 unread match the filter', { what: 'the filter count after' });
    // A severity filter instead.
    await page.fill('#filter-tag', '');
    await page.selectOption('#filter-severity', 'critical');
    await page.dispatchEvent('#filter-tag', 'change');
    await waitFor(async () => (await shownIds(page)).join() === outage, { what: 'the critical message only' });
    assert.match(await row(outage).getAttribute('class'), /unread/);
    await page.screenshot({ path: path.join(ARTIFACTS, 'demo-severity.png'), fullPage: true });
  });
});
