// The Herald demo inbox: sign in as a demo user (development mode only), tabs
// per category with unread badges, live messages (toasts, except for silent
// ones; collapsed groups as "×n"; severity badges and tags, filtered by a
// tag and a severity, unread by severity), snooze, private conversations with
// receipts, a preferences panel (categories and topics shown in the app,
// quiet hours) and an admin panel. Everything goes through the SDK served at
// /sdk/herald.js, as an application would use it.
//
// Query parameters (used by the end-to-end tests, handy by hand):
//   ?transports=sse        only Server-Sent Events (or ws, or ws,sse: the default)
//   ?codec=msgpack         MessagePack on the WebSocket
//   ?upgrade=<ms>          while on SSE, try WebSocket again after this long
//   ?share=1               one connection for all tabs (Web Locks + BroadcastChannel)
//   ?device=<name>         the device name
import { HeraldClient, Inbox, CATEGORIES } from '/sdk/herald.js';

const LABELS = {
  all: 'All',
  announcement: 'Announcements',
  remind: 'Reminders',
  resource_subscription: 'Subscriptions',
  resource_publish: 'Publications',
  system: 'System',
  mailbox: 'Private messages',
};
const RECEIPT_TEXT = { sent: 'Sent', delivered: 'Delivered', read: 'Read' };
const HOUR = 3_600_000;
const TOAST_MS = 5000;
const TABS = ['all', ...CATEGORIES];
const params = new URLSearchParams(location.search);
const $ = (id) => document.getElementById(id);

/** Builds an element; children are nodes or text (never parsed as HTML). */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v == null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) if (c != null && c !== false) el.append(c instanceof Node ? c : String(c));
  return el;
}

const ui = {
  client: null,
  me: null,
  tab: 'all',
  /** The messages (with `state`), from history pages and live messages, as the server changes them (the SDK's `Inbox`). */
  inbox: new Inbox(),
  /** Listing the snoozed messages instead. */
  showSnoozed: false,
  /** The message whose custom snooze form is open. */
  snoozeOpen: null,
  /** Ids that raised a toast (the `notify` hook), oldest first. */
  toasted: [],
  peer: null,
  /** id → conversation entry of the open conversation. */
  thread: new Map(),
  conversations: [],
  log: [],
};
window.heraldDemo = ui;

// ------------------------------------------------------------------ sign in

const SESSION = 'herald-demo-session';

$('signin-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const user = $('user').value.trim();
  $('signin-error').textContent = '';
  try {
    const res = await fetch('/dev/token', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ user }),
    });
    const body = await res.json().catch(() => ({}));
    if (!res.ok || !body.token) throw new Error(body.error?.message ?? `HTTP ${res.status}`);
    sessionStorage.setItem(SESSION, JSON.stringify({ user, token: body.token }));
    start(user, body.token);
  } catch (err) {
    $('signin-error').textContent = `Could not sign in: ${err.message}`;
  }
});

$('signout').addEventListener('click', () => {
  ui.client?.close();
  ui.client = null;
  sessionStorage.removeItem(SESSION);
  location.reload();
});

function start(user, token) {
  ui.me = user;
  ui.log = JSON.parse(sessionStorage.getItem(`herald-demo-log:${user}`) ?? '[]');
  $('signin').hidden = true;
  $('app').hidden = false;
  $('whoami').hidden = false;
  $('me').textContent = user;
  document.title = `${user} — Herald demo inbox`;

  const transports = params.get('transports')?.split(',').filter(Boolean);
  const client = new HeraldClient({
    token,
    user,
    device: params.get('device') ?? undefined,
    codec: params.get('codec') === 'msgpack' ? 'msgpack' : 'json',
    transports: transports?.length ? transports : undefined,
    upgradeAfterMs: Number(params.get('upgrade')) || undefined,
    shareAcrossTabs: params.has('share'),
    backoff: { baseMs: 300, maxMs: 5000 },
  });
  ui.client = client;

  client.on('state', renderStatus);
  client.on('transport', renderStatus);
  client.on('counts', renderBadges);
  ui.inbox.follow(client);
  ui.inbox.on('change', renderMessages);
  ui.inbox.on('missing', () => void loadTab());
  client.on('message', onMessage);
  client.on('notify', toast);
  client.on('receipt', onReceipt);
  client.on('preferences', renderPrefs);
  client.on('welcome', () => {
    void loadTab();
    void loadPrefs();
    if (ui.peer) void openConversation(ui.peer, false);
  });
  client.on('error', (e) => console.warn('herald:', e.message));
  renderTabs();
  renderStatus();
  client.connect().catch(() => {});
}

// ------------------------------------------------------------------- status

function renderStatus() {
  const c = ui.client;
  const el = $('status');
  const how = { ws: 'WebSocket', sse: 'Server-Sent Events', tab: 'another tab' }[c.transportKind] ?? '';
  const text = {
    idle: 'Not connected',
    connecting: 'Connecting…',
    open: `Connected over ${how}`,
    reconnecting: 'Connection lost: reconnecting…',
    closed: 'Disconnected',
  }[c.state];
  el.textContent = c.state === 'open' && c.welcome ? `${text} (node ${c.welcome.node_id})` : text;
  el.dataset.state = c.state;
  document.body.dataset.state = c.state;
  document.body.dataset.transport = c.transportKind ?? '';
}

// --------------------------------------------------------------------- tabs

function renderTabs() {
  const list = $('tabs');
  list.replaceChildren(
    ...TABS.map((cat) =>
      h(
        'button',
        {
          type: 'button',
          role: 'tab',
          id: `tab-${cat}`,
          'aria-controls': 'panel',
          'aria-selected': String(cat === ui.tab),
          tabindex: cat === ui.tab ? '0' : '-1',
          'data-category': cat,
          onclick: () => selectTab(cat),
          onkeydown: onTabKey,
        },
        h('span', {}, LABELS[cat] ?? cat),
        h('span', { class: 'badge', 'data-badge': cat, 'data-zero': true }, '0'),
      ),
    ),
  );
  $('panel').setAttribute('aria-labelledby', `tab-${ui.tab}`);
  if (ui.client?.counts) renderBadges(ui.client.counts);
}

function onTabKey(ev) {
  const i = TABS.indexOf(ui.tab);
  const next = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: TABS.length - 1 }[ev.key];
  if (next == null) return;
  ev.preventDefault();
  const cat = TABS[(next + TABS.length) % TABS.length];
  selectTab(cat);
  $(`tab-${cat}`).focus();
}

function selectTab(cat) {
  ui.tab = cat;
  for (const b of $('tabs').querySelectorAll('[role="tab"]')) {
    const on = b.dataset.category === cat;
    b.setAttribute('aria-selected', String(on));
    b.tabIndex = on ? 0 : -1;
  }
  $('panel').setAttribute('aria-labelledby', `tab-${cat}`);
  void loadTab();
}

/** The tag and severity filter, as the SDK's history/mark/counts take it. */
function filterOf() {
  const tag = $('filter-tag').value.trim();
  const severity = $('filter-severity').value;
  return { tags: tag ? [tag] : undefined, severity: severity || undefined };
}

function matchesFilter(m) {
  const { tags, severity } = filterOf();
  if (severity && (m.severity ?? 'normal') !== severity) return false;
  return !tags || (m.tags ?? []).some((t) => tags.includes(t));
}

/** With a filter on, its unread count, asked of the server. */
async function renderFilterCount() {
  const f = filterOf();
  const out = $('filter-count');
  if (!f.tags && !f.severity) return void (out.textContent = '');
  try {
    out.textContent = `${await ui.client.countUnread(f)} unread match the filter`;
  } catch (err) {
    out.textContent = `Filter: ${err.message}`;
  }
}

for (const id of ['filter-tag', 'filter-severity']) {
  $(id).addEventListener('change', () => {
    void loadTab();
    void renderFilterCount();
  });
}

function renderBadges(counts) {
  const by = counts.unread_by_severity;
  $('severity-counts').textContent = by
    ? ['critical', 'high', 'normal', 'low'].map((s) => `${by[s] ?? 0} ${s}`).join(' · ')
    : '';
  for (const cat of TABS) {
    const n = cat === 'all' ? counts.unread_total : counts.unread[cat] ?? 0;
    const badge = $('tabs').querySelector(`[data-badge="${cat}"]`);
    if (!badge) continue;
    badge.replaceChildren(String(n), h('span', { class: 'sr-only' }, ' unread'));
    badge.toggleAttribute('data-zero', n === 0);
  }
  $('total').textContent = counts.unread_total ? `(${counts.unread_total} unread)` : '';
}

// ----------------------------------------------------------------- messages

async function loadTab() {
  const c = ui.client;
  const cat = ui.tab;
  const mailbox = cat === 'mailbox';
  $('mailbox').hidden = !mailbox;
  $('messages').hidden = mailbox;
  $('mark-all').hidden = ui.showSnoozed && !mailbox;
  if (mailbox) {
    $('empty').hidden = true;
    return loadConversations();
  }
  renderMessages();
  if (c.state !== 'open') return;
  try {
    const snoozed = ui.showSnoozed;
    const page = await c.history({ category: cat === 'all' ? undefined : cat, snoozed: snoozed || undefined, limit: 50, ...filterOf() });
    ui.inbox.addPage(snoozed ? page.messages.map((m) => ({ ...m, state: 'snoozed' })) : page.messages);
  } catch (err) {
    console.warn('history:', err.message);
  }
}

function visibleMessages() {
  return ui.inbox.list({ category: ui.tab === 'all' ? undefined : ui.tab, snoozed: ui.showSnoozed }).filter(matchesFilter);
}

$('show-snoozed').addEventListener('change', (ev) => {
  ui.showSnoozed = ev.target.checked;
  void loadTab();
});

function renderMessages() {
  if (ui.tab === 'mailbox') return;
  const list = visibleMessages();
  $('empty').hidden = list.length > 0;
  $('messages').replaceChildren(
    ...list.map((m) => {
      const unread = m.state === 'unseen' || m.state === 'seen' || m.state == null;
      const snoozed = m.state === 'snoozed';
      const titleId = `t-${m.id}`;
      return h(
        'li',
        {
          class: `message${unread ? ' unread' : ''}`,
          'data-id': m.id,
          'data-seq': `${m.stream}:${m.seq}`,
          'data-silent': m.silent,
          'data-critical': m.critical,
          'data-collapsed': m.collapsed,
          'data-severity': m.severity ?? 'normal',
        },
        h(
          'div',
          { class: 'meta' },
          h('span', { class: 'cat' }, LABELS[m.category] ?? m.category),
          m.from ? h('span', {}, `from ${m.from}`) : null,
          h('time', { datetime: m.ts }, new Date(m.ts).toLocaleString()),
          m.critical ? h('span', { class: 'tag critical' }, 'Critical') : null,
          m.severity && m.severity !== 'normal'
            ? h('span', { class: `tag severity ${m.severity}`, 'data-severity-badge': m.severity }, `${m.severity[0].toUpperCase()}${m.severity.slice(1)}`)
            : null,
          ...(m.tags ?? []).map((t) => h('span', { class: 'tag label', 'data-tag': t }, `#${t}`)),
          m.silent ? h('span', { class: 'tag silent', title: 'Arrived in your quiet hours: no toast' }, 'Quiet hours') : null,
          snoozed && m.until ? h('span', { class: 'tag snoozed' }, `Snoozed until ${new Date(m.until).toLocaleString()}`) : null,
          unread ? h('span', { class: 'sr-only' }, 'unread') : null,
        ),
        h(
          'div',
          { class: 'headline' },
          m.title ? h('div', { class: 'title', id: titleId }, m.title) : h('div', { class: 'body', id: titleId }, m.body),
          m.collapsed > 1
            ? h('span', { class: 'collapsed', title: `stands for ${m.collapsed} messages` }, `×${m.collapsed}`, h('span', { class: 'sr-only' }, ' messages'))
            : null,
        ),
        m.title ? h('div', { class: 'body' }, m.body) : null,
        actionButtons(m, titleId),
        h(
          'div',
          { class: 'actions' },
          unread
            ? h('button', { type: 'button', class: 'link', 'aria-describedby': titleId, onclick: () => markRead(m) }, 'Mark read')
            : null,
          !snoozed
            ? h('button', { type: 'button', class: 'link', 'aria-describedby': titleId, onclick: () => snooze(m, Date.now() + HOUR) }, 'Snooze 1 h')
            : null,
          !snoozed
            ? h(
                'button',
                {
                  type: 'button',
                  class: 'link',
                  'aria-describedby': titleId,
                  'aria-expanded': String(ui.snoozeOpen === m.id),
                  onclick: () => {
                    ui.snoozeOpen = ui.snoozeOpen === m.id ? null : m.id;
                    renderMessages();
                  },
                },
                'Snooze…',
              )
            : null,
          h('button', { type: 'button', class: 'link', 'aria-describedby': titleId, onclick: () => archive(m) }, 'Archive'),
        ),
        ui.snoozeOpen === m.id && !snoozed ? snoozeForm(m) : null,
      );
    }),
  );
}

/**
 * The message's action buttons (the sender's), or, once one was pressed on
 * any tab or device, which one. A press marks it read on every tab.
 */
function actionButtons(m, titleId) {
  if (!m.actions?.length) return null;
  if (m.acted) {
    const label = m.actions.find((a) => a.id === m.acted)?.label ?? m.acted;
    return h('div', { class: 'buttons', 'data-acted': m.acted }, h('span', { class: 'tag acted' }, `✓ ${label}`));
  }
  return h(
    'div',
    { class: 'buttons', role: 'group', 'aria-label': 'Actions' },
    ...m.actions.map((a) =>
      h(
        'button',
        { type: 'button', class: 'secondary', 'data-action': a.id, 'aria-describedby': titleId, onclick: () => act(m, a) },
        a.label,
      ),
    ),
  );
}

async function act(m, a) {
  try {
    await ui.client.act(m.id, a.id);
    ui.inbox.apply({ ids: [m.id], state: 'acted', action: a.id });
    // The server let only http(s) URLs through; open it without handing over this page.
    if (a.url) window.open(a.url, '_blank', 'noopener,noreferrer');
  } catch (e) {
    console.warn('act:', e.message);
    renderMessages();
  }
}

/** "Snooze for n units" under a message. */
function snoozeForm(m) {
  const amount = h('input', { type: 'number', id: `snooze-n-${m.id}`, class: 'snooze-amount', min: 1, value: 10, required: true });
  const unit = h(
    'select',
    { id: `snooze-unit-${m.id}`, class: 'snooze-unit', 'aria-label': 'unit' },
    h('option', { value: 1000 }, 'seconds'),
    h('option', { value: 60_000, selected: true }, 'minutes'),
    h('option', { value: HOUR }, 'hours'),
    h('option', { value: 24 * HOUR }, 'days'),
  );
  return h(
    'form',
    {
      class: 'snooze-form',
      onsubmit: (ev) => {
        ev.preventDefault();
        ui.snoozeOpen = null;
        void snooze(m, Date.now() + Number(amount.value) * Number(unit.value));
      },
    },
    h('label', { for: `snooze-n-${m.id}` }, 'Snooze for'),
    amount,
    unit,
    h('button', { type: 'submit', class: 'secondary' }, 'Snooze'),
  );
}

async function snooze(m, until) {
  try {
    await ui.client.snooze([m.id], until);
    ui.inbox.setState([m.id], 'snoozed', until);
  } catch (e) {
    console.warn('snooze:', e.message);
    renderMessages();
  }
}

/** The `notify` hook: a toast for each message but silent ones (quiet hours). */
function toast(m) {
  if (m.category === 'mailbox' && m.from === ui.peer && ui.tab === 'mailbox') return; // on screen already
  ui.toasted.push(m.id);
  const el = h(
    'div',
    { class: `toast${m.critical ? ' critical' : ''}`, 'data-id': m.id },
    h('strong', {}, m.title ?? LABELS[m.category] ?? m.category),
    h('span', {}, m.body.length > 120 ? `${m.body.slice(0, 117)}…` : m.body),
  );
  $('toasts').append(el);
  setTimeout(() => el.remove(), TOAST_MS);
}

function onMessage(m) {
  ui.log.push(`${m.stream}:${m.seq}:${m.id}`);
  sessionStorage.setItem(`herald-demo-log:${ui.me}`, JSON.stringify(ui.log));
  if (m.category === 'mailbox') {
    if (m.from && m.from === ui.peer) {
      ui.thread.set(m.id, { ...m, state: 'unseen' });
      renderThread();
      readOpenConversation();
    }
    if (ui.tab === 'mailbox') void loadConversations();
  }
}

async function markRead(m) {
  await ui.client.markRead([m.id]).catch((e) => console.warn(e.message));
  ui.inbox.setState([m.id], 'read');
}

async function archive(m) {
  await ui.client.archive([m.id]).catch((e) => console.warn(e.message));
  ui.inbox.setState([m.id], 'archived');
}

$('mark-all').addEventListener('click', async () => {
  const cat = ui.tab;
  if (cat === 'mailbox' && ui.peer) return void readOpenConversation(true);
  // With a tag or severity filter on: only what it shows, one request.
  await ui.client.mark('read', cat === 'all' ? { all: true } : { category: cat }, filterOf()).catch((e) => console.warn(e.message));
  const ids = ui.inbox.list({ category: cat === 'all' ? undefined : cat }).filter(matchesFilter).map((m) => m.id);
  void renderFilterCount();
  ui.inbox.setState(ids, 'read');
  if (cat === 'mailbox') void loadConversations();
});

// ------------------------------------------------------------ conversations

async function loadConversations() {
  if (ui.client.state !== 'open') return renderConversations();
  try {
    ui.conversations = (await ui.client.conversations({ limit: 50 })).conversations;
  } catch (err) {
    console.warn('conversations:', err.message);
  }
  renderConversations();
}

function renderConversations() {
  $('conversations').replaceChildren(
    ...ui.conversations.map((c) =>
      h(
        'li',
        {},
        h(
          'button',
          { type: 'button', 'data-peer': c.peer, 'aria-current': String(c.peer === ui.peer), onclick: () => openConversation(c.peer) },
          h('span', {}, h('strong', {}, c.peer), h('span', { class: 'preview' }, ` ${c.last.body}`)),
          c.unread ? h('span', { class: 'badge' }, String(c.unread), h('span', { class: 'sr-only' }, ' unread')) : null,
        ),
      ),
    ),
  );
}

$('new-conversation').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const peer = $('peer').value.trim();
  if (peer) void openConversation(peer);
});

async function openConversation(peer, focus = true) {
  if (ui.peer !== peer) ui.thread = new Map();
  ui.peer = peer;
  $('conversation').hidden = false;
  $('conv-title').textContent = `Conversation with ${peer}`;
  renderConversations();
  renderThread();
  if (focus) $('body').focus();
  if (ui.client.state !== 'open') return;
  try {
    const page = await ui.client.conversation(peer, { limit: 50 });
    for (const m of page.messages) ui.thread.set(m.id, m);
    renderThread();
    readOpenConversation();
  } catch (err) {
    console.warn('conversation:', err.message);
  }
}

let readTimer = null;
/** The open conversation is on screen: what the peer sent is read (the peer sees "Read"). */
function readOpenConversation(force = false) {
  const unread = [...ui.thread.values()].some((m) => m.from === ui.peer && m.state !== 'read');
  if (!ui.peer || (!unread && !force) || ui.tab !== 'mailbox' || document.visibilityState === 'hidden') return;
  clearTimeout(readTimer);
  readTimer = setTimeout(async () => {
    const peer = ui.peer;
    await ui.client.markConversationRead(peer).catch((e) => console.warn(e.message));
    for (const m of ui.thread.values()) if (m.from === peer) m.state = 'read';
    ui.inbox.setState(
      ui.inbox.list({ category: 'mailbox' }).filter((m) => m.from === peer).map((m) => m.id),
      'read',
    );
    void loadConversations();
  }, 150);
}

function renderThread() {
  const items = [...ui.thread.values()].sort((a, b) => (a.ts < b.ts ? -1 : a.ts > b.ts ? 1 : 0));
  $('thread').replaceChildren(
    ...items.map((m) => {
      const mine = m.from === ui.me;
      const receipt = mine ? ui.client.receiptOf(m.id) ?? m.receipt ?? 'sent' : null;
      return h(
        'li',
        { class: `bubble${mine ? ' mine' : ''}`, 'data-id': m.id },
        h('span', { class: 'sr-only' }, mine ? 'You: ' : `${m.from}: `),
        h('span', { class: 'text' }, m.body),
        receipt ? h('span', { class: 'receipt', 'data-state': receipt }, RECEIPT_TEXT[receipt]) : null,
      );
    }),
  );
  const t = $('thread');
  t.scrollTop = t.scrollHeight;
}

function onReceipt(r) {
  const m = ui.thread.get(r.id);
  if (m) {
    m.receipt = r.state;
    renderThread();
  }
}

$('send-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const body = $('body').value;
  const peer = ui.peer;
  if (!body.trim() || !peer) return;
  $('send-error').textContent = '';
  try {
    const { id } = await ui.client.send(peer, body);
    $('body').value = '';
    if (!ui.thread.has(id)) {
      ui.thread.set(id, { id, from: ui.me, body, ts: new Date().toISOString(), receipt: 'sent', category: 'mailbox' });
    }
    if (ui.peer === peer) renderThread();
    void loadConversations();
  } catch (err) {
    $('send-error').textContent = err.code === 'blocked' ? `${peer} does not accept your messages.` : `Not sent: ${err.message}`;
  }
});

document.addEventListener('visibilitychange', () => readOpenConversation());

// -------------------------------------------------------------- preferences

async function loadPrefs() {
  try {
    await ui.client.preferences(); // renders through the `preferences` event when new
    if (ui.client.currentPreferences) renderPrefs(ui.client.currentPreferences);
  } catch (err) {
    prefsResult(`Preferences unavailable: ${err.message}`, true);
  }
}

function prefsResult(text, error = false) {
  const out = $('prefs-result');
  out.textContent = text;
  out.classList.toggle('error', error);
}

function toggle(id, label, checked, onchange) {
  return h(
    'div',
    { class: 'radio' },
    h('input', { type: 'checkbox', id, checked, onchange: (ev) => onchange(ev.target.checked) }),
    h('label', { for: id }, label),
  );
}

/** The panel shows the server's preferences: after each change on any tab or device. */
function renderPrefs(p) {
  $('prefs-category-list').replaceChildren(
    ...Object.keys(p.categories).map((cat) =>
      toggle(`pref-cat-${cat}`, LABELS[cat] ?? cat, p.categories[cat].in_app, (on) =>
        setPrefs({ categories: { [cat]: { in_app: on } } }, `${LABELS[cat] ?? cat}: ${on ? 'shown' : 'muted'}.`),
      ),
    ),
  );
  const topics = Object.keys(p.topics).sort();
  $('prefs-topic-list').replaceChildren(
    ...(topics.length
      ? topics.map((t) =>
          toggle(`pref-topic-${t}`, t, p.topics[t].in_app, (on) => setPrefs({ topics: { [t]: { in_app: on } } }, `${t}: ${on ? 'shown' : 'muted'}.`)),
        )
      : [h('p', { class: 'hint' }, 'No topic set.')]),
  );
  const q = p.quiet_hours;
  $('quiet-on').checked = !!q;
  if (q) {
    $('quiet-start').value = q.start;
    $('quiet-end').value = q.end;
    $('quiet-tz').value = q.tz;
  }
  document.body.dataset.quiet = q ? `${q.start}-${q.end} ${q.tz}` : '';
}

async function setPrefs(patch, done) {
  prefsResult('');
  try {
    await ui.client.setPreferences(patch);
    prefsResult(done);
  } catch (err) {
    prefsResult(`Not saved: ${err.message}`, true);
    if (ui.client.currentPreferences) renderPrefs(ui.client.currentPreferences);
  }
}

$('quiet-tz').value = Intl.DateTimeFormat().resolvedOptions().timeZone ?? 'UTC';

$('prefs-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const on = $('quiet-on').checked;
  const q = { tz: $('quiet-tz').value.trim(), start: $('quiet-start').value, end: $('quiet-end').value };
  void setPrefs({ quiet_hours: on ? q : null }, on ? `Quiet hours ${q.start}–${q.end} (${q.tz}).` : 'No quiet hours.');
});

$('prefs-topic-mute').addEventListener('click', () => {
  const t = $('prefs-topic').value.trim();
  if (!t) return;
  $('prefs-topic').value = '';
  void setPrefs({ topics: { [t]: { in_app: false } } }, `${t}: muted.`);
});

// -------------------------------------------------------------------- admin

for (const r of document.querySelectorAll('input[name="kind"]')) {
  r.addEventListener('change', () => {
    const one = $('kind-user').checked;
    $('admin-to').disabled = !one;
    $('admin-to').required = one;
    $('admin-category').disabled = !one;
  });
}

$('admin-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const one = $('kind-user').checked;
  const title = $('admin-title-input').value.trim();
  const msg = {
    to: one ? { users: [$('admin-to').value.trim()] } : { all: true },
    category: one ? $('admin-category').value : 'announcement',
    body: $('admin-body').value,
  };
  if (title) msg.title = title;
  // Only what is set: a server without these features refuses them by name.
  if ($('admin-critical').checked) msg.critical = true;
  const group = $('admin-group').value.trim();
  if (group) msg.group_key = group;
  const tags = $('admin-tags').value.split(',').map((t) => t.trim()).filter(Boolean);
  if (tags.length) msg.tags = tags;
  if ($('admin-severity').value) msg.severity = $('admin-severity').value;
  const delay = Number($('admin-delay').value);
  if (delay > 0) msg.deliver_at = Date.now() + delay * 1000;
  const out = $('admin-result');
  out.textContent = '';
  out.classList.remove('error');
  try {
    const res = await fetch('/dev/messages', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(msg),
    });
    const body = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error(body.error?.message ?? `HTTP ${res.status}`);
    if (body.scheduled) out.textContent = `Scheduled for ${new Date(body.deliver_at).toLocaleTimeString()} (${body.scheduled}).`;
    else if (body.skipped?.length) out.textContent = `Not stored for ${body.skipped.join(', ')}: muted by their preferences.`;
    else out.textContent = one ? `Sent to ${msg.to.users[0]}.` : 'Announcement posted to everyone.';
    $('admin-body').value = '';
    $('admin-title-input').value = '';
  } catch (err) {
    out.classList.add('error');
    out.textContent = `Not posted: ${err.message}`;
  }
});

// ----------------------------------------------------------------- startup

const saved = JSON.parse(sessionStorage.getItem(SESSION) ?? 'null');
if (saved?.user && saved?.token) start(saved.user, saved.token);
else $('user').focus();
