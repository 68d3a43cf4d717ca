import { HeraldError } from './errors.js';
import type * as T from './types.js';

/** How the client reaches Herald. */
export interface HeraldOptions {
  /** The gateway's base URL, e.g. `https://herald.internal:8080` (no `/v1`). */
  url: string;
  /** A server API key (`api.key` or one of `api.keys`) with the scopes the calls need. */
  apiKey: string;
  /**
   * Milliseconds a call may take, every retry and wait included, before it
   * throws `HeraldError` with code `timeout`; 0: no limit. Default 10,000.
   */
  timeout?: number;
  /** Retries after the first try (so `maxRetries + 1` requests at most). Default 2. */
  maxRetries?: number;
  /** The first backoff's ceiling in ms (doubled each retry, full jitter). Default 200. */
  retryBaseDelay?: number;
  /** The ceiling of any wait between tries, `Retry-After` included, in ms. Default 5,000. */
  retryMaxDelay?: number;
  /**
   * Whether a send without `idempotency_key` gets one from the client
   * (default true). With a key a send is retried after a lost answer (a cut
   * connection, a 503) and Herald stores it once; without one a send is
   * retried only when Herald certainly did not take it (429, connection
   * refused). Each key costs the store an entry for the idempotency window.
   */
  idempotencyKeys?: boolean;
  /** Makes idempotency keys; default `crypto.randomUUID()`. */
  newIdempotencyKey?: () => string;
  /** The fetch to use; default the global one (Node ≥ 20). For tests and proxies. */
  fetch?: typeof fetch;
}

/** Per call: overrides the client's options for this call only. */
export interface CallOptions {
  /** Milliseconds for this call, retries included; 0: no limit. */
  timeout?: number;
  /** Aborts the call: it throws `HeraldError` with code `aborted`. */
  signal?: AbortSignal;
  maxRetries?: number;
}

/**
 * When a failed try may be tried again.
 * - `safe`: the call can be repeated without doing twice what it does (a
 *   read, a PUT/DELETE/PATCH, a mark, a send with an idempotency key):
 *   after a network error, a 429 or any 5xx.
 * - `unsent`: only when Herald certainly did not act on it: a 429 (refused
 *   before anything ran) or a connection that was never made.
 */
type RetryClass = 'safe' | 'unsent';

interface Request {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  path: string;
  query?: Record<string, string | number | boolean | string[] | undefined>;
  body?: unknown;
  retry: RetryClass;
  /** Parse the answer as JSON (all but none do). */
  parse?: (text: string, status: number, attempts: number) => unknown;
}

const VERSION = '0.1.0';

/**
 * A thin typed client of Herald's server API (docs/protocol.md, *Server
 * API*): one method per route an application's backend calls, each
 * answering the route's JSON body or throwing {@link HeraldError}.
 */
export class Herald {
  readonly #base: string;
  readonly #auth: string;
  readonly #timeout: number;
  readonly #maxRetries: number;
  readonly #baseDelay: number;
  readonly #maxDelay: number;
  readonly #autoKeys: boolean;
  readonly #newKey: () => string;
  readonly #fetch: typeof fetch;

  constructor(options: HeraldOptions) {
    if (typeof options?.url !== 'string' || !/^https?:\/\//.test(options.url)) {
      throw new TypeError(`Herald: url must be an http(s) URL, got ${JSON.stringify(options?.url)}`);
    }
    if (typeof options.apiKey !== 'string' || options.apiKey === '') {
      throw new TypeError('Herald: apiKey is required');
    }
    this.#base = options.url.replace(/\/+$/, '');
    this.#auth = `Bearer ${options.apiKey}`;
    this.#timeout = nonNegative('timeout', options.timeout ?? 10_000);
    this.#maxRetries = nonNegative('maxRetries', options.maxRetries ?? 2);
    this.#baseDelay = nonNegative('retryBaseDelay', options.retryBaseDelay ?? 200);
    this.#maxDelay = nonNegative('retryMaxDelay', options.retryMaxDelay ?? 5_000);
    this.#autoKeys = options.idempotencyKeys ?? true;
    this.#newKey = options.newIdempotencyKey ?? (() => globalThis.crypto.randomUUID());
    const f = options.fetch ?? globalThis.fetch;
    if (typeof f !== 'function') throw new TypeError('Herald: no fetch (Node >= 20, or pass options.fetch)');
    this.#fetch = f;
  }

  // --- sending (scope `send`) ------------------------------------------------

  /**
   * `POST /v1/messages`: stores the message in each receiver's inbox (or
   * once for everybody) and answers once stored; with `deliver_at`,
   * schedules it. A key is added when the message has none (see
   * `idempotencyKeys`), and every retry sends the same key, so a lost
   * answer never stores the message twice.
   */
  send(message: T.SendRequest & { deliver_at: number }, options?: CallOptions): Promise<T.ScheduledResult>;
  send(message: T.SendRequest & { deliver_at?: null }, options?: CallOptions): Promise<T.SendResult>;
  send(message: T.SendRequest, options?: CallOptions): Promise<T.SendAnswer>;
  send(message: T.SendRequest, options?: CallOptions): Promise<T.SendAnswer> {
    const body = this.#keyed(message);
    return this.#call({ method: 'POST', path: '/v1/messages', body, retry: this.#sendRetry(body) }, options);
  }

  /**
   * `POST /v1/messages/batch`: up to 1,000 messages, checked as a whole
   * before any is stored; one result per message in request order.
   */
  sendBatch(messages: T.SendRequest[], options?: CallOptions): Promise<T.BatchResult> {
    const keyed = messages.map((m) => this.#keyed(m));
    const retry: RetryClass = keyed.every((m) => (m.idempotency_key ?? undefined) !== undefined) ? 'safe' : 'unsent';
    return this.#call({ method: 'POST', path: '/v1/messages/batch', body: { messages: keyed }, retry }, options);
  }

  /** `POST /v1/topics/{topic}/messages`: one inbox message per subscriber, as a durable job. */
  publish(topic: string, message: T.PublishRequest, options?: CallOptions): Promise<T.PublishResult> {
    const body = this.#keyed(message);
    return this.#call(
      { method: 'POST', path: `/v1/topics/${seg(topic)}/messages`, body, retry: this.#sendRetry(body) },
      options,
    );
  }

  /** `GET /v1/jobs/{id}`: how far a publish got. */
  job(id: string, options?: CallOptions): Promise<T.Job> {
    return this.#call({ method: 'GET', path: `/v1/jobs/${seg(id)}`, retry: 'safe' }, options);
  }

  /** `GET /v1/scheduled/{id}`: a scheduled send's state. */
  scheduled(id: string, options?: CallOptions): Promise<T.ScheduledStatus> {
    return this.#call({ method: 'GET', path: `/v1/scheduled/${seg(id)}`, retry: 'safe' }, options);
  }

  /** `DELETE /v1/scheduled/{id}`: cancels a scheduled send (409 `conflict` once delivered). */
  cancelScheduled(id: string, options?: CallOptions): Promise<T.ScheduledStatus> {
    return this.#call({ method: 'DELETE', path: `/v1/scheduled/${seg(id)}`, retry: 'safe' }, options);
  }

  // --- users (scope `users`) -------------------------------------------------

  /** `GET /v1/presence`: how many distinct users have a live connection. */
  onlineUsers(options?: CallOptions): Promise<T.OnlineUsers> {
    return this.#call({ method: 'GET', path: '/v1/presence', retry: 'safe' }, options);
  }

  /** `GET /v1/users/{id}/presence`: a user's live connections. */
  presence(user: string, options?: CallOptions): Promise<T.UserPresence> {
    return this.#call({ method: 'GET', path: `${u(user)}/presence`, retry: 'safe' }, options);
  }

  /** `GET /v1/users/{id}/inbox?after=&limit=`: inbox messages with seq > `after`. */
  inbox(user: string, query: T.InboxQuery = {}, options?: CallOptions): Promise<T.InboxPage> {
    return this.#call({ method: 'GET', path: `${u(user)}/inbox`, query, retry: 'safe' }, options);
  }

  /** `GET /v1/users/{id}/messages`: history, newest first, with the user's state of each message. */
  history(user: string, query: T.HistoryQuery = {}, options?: CallOptions): Promise<T.HistoryPage> {
    return this.#call({ method: 'GET', path: `${u(user)}/messages`, query: { ...query }, retry: 'safe' }, options);
  }

  /**
   * `GET /v1/users/{id}/counts`: unread counts by category and severity;
   * with `tags` and/or `severity`, the unread count of that filter alone.
   */
  counts(user: string, filter?: undefined, options?: CallOptions): Promise<T.Counts>;
  counts(user: string, filter: T.CountsFilter, options?: CallOptions): Promise<T.FilteredCounts>;
  counts(
    user: string,
    filter?: T.CountsFilter,
    options?: CallOptions,
  ): Promise<T.Counts | T.FilteredCounts> {
    return this.#call({ method: 'GET', path: `${u(user)}/counts`, query: { ...filter }, retry: 'safe' }, options);
  }

  /**
   * `POST /v1/users/{id}/mark`: read, archive, delete, snooze… by exactly
   * one selector (`ids`, `up_to`, `category`, `all`, `peer`). Setting a
   * state again changes nothing, so it is retried like a read.
   */
  mark(user: string, request: T.MarkRequest, options?: CallOptions): Promise<T.Changed> {
    return this.#call({ method: 'POST', path: `${u(user)}/mark`, body: request, retry: 'safe' }, options);
  }

  /**
   * `POST /v1/users/{id}/act`: presses an action button for the user (409
   * `already_acted` when one was pressed before). Not retried after a lost
   * answer: the retry would meet its own first act.
   */
  act(user: string, request: T.ActRequest, options?: CallOptions): Promise<T.Acted> {
    return this.#call({ method: 'POST', path: `${u(user)}/act`, body: request, retry: 'unsent' }, options);
  }

  /** `GET /v1/users/{id}/topics`: the user's topics, sorted. */
  topics(user: string, options?: CallOptions): Promise<T.Topics> {
    return this.#call({ method: 'GET', path: `${u(user)}/topics`, retry: 'safe' }, options);
  }

  /** `PUT /v1/users/{id}/topics/{topic}`: `changed: false` when already subscribed. */
  subscribe(user: string, topic: string, options?: CallOptions): Promise<T.Toggled> {
    return this.#call({ method: 'PUT', path: `${u(user)}/topics/${seg(topic)}`, retry: 'safe' }, options);
  }

  /** `DELETE /v1/users/{id}/topics/{topic}`. */
  unsubscribe(user: string, topic: string, options?: CallOptions): Promise<T.Toggled> {
    return this.#call({ method: 'DELETE', path: `${u(user)}/topics/${seg(topic)}`, retry: 'safe' }, options);
  }

  /** `GET /v1/topics/{topic}/subscribers?after=&limit=`: a page of subscribers in id order. */
  subscribers(
    topic: string,
    query: T.SubscribersQuery = {},
    options?: CallOptions,
  ): Promise<T.SubscriberPage> {
    return this.#call({ method: 'GET', path: `/v1/topics/${seg(topic)}/subscribers`, query, retry: 'safe' }, options);
  }

  /** `GET /v1/users/{id}/conversations?before=&limit=`: the user's conversations, most recent first. */
  conversations(
    user: string,
    query: T.ConversationsQuery = {},
    options?: CallOptions,
  ): Promise<T.ConversationList> {
    return this.#call({ method: 'GET', path: `${u(user)}/conversations`, query, retry: 'safe' }, options);
  }

  /** `GET /v1/users/{id}/conversations/{peer}?before=&limit=`: one conversation's messages. */
  conversation(
    user: string,
    peer: string,
    query: T.ConversationQuery = {},
    options?: CallOptions,
  ): Promise<T.ConversationPage> {
    return this.#call(
      { method: 'GET', path: `${u(user)}/conversations/${seg(peer)}`, query, retry: 'safe' },
      options,
    );
  }

  /** `GET /v1/users/{id}/blocks`: whom the user blocked, sorted. */
  blocks(user: string, options?: CallOptions): Promise<T.Blocks> {
    return this.#call({ method: 'GET', path: `${u(user)}/blocks`, retry: 'safe' }, options);
  }

  /** `PUT /v1/users/{id}/blocks/{other}`: the user blocks `other`'s private messages. */
  block(user: string, other: string, options?: CallOptions): Promise<T.Toggled> {
    return this.#call({ method: 'PUT', path: `${u(user)}/blocks/${seg(other)}`, retry: 'safe' }, options);
  }

  /** `DELETE /v1/users/{id}/blocks/{other}`. */
  unblock(user: string, other: string, options?: CallOptions): Promise<T.Toggled> {
    return this.#call({ method: 'DELETE', path: `${u(user)}/blocks/${seg(other)}`, retry: 'safe' }, options);
  }

  /** `GET /v1/users/{id}/preferences`: every category, with the operator's defaults filled in. */
  preferences(user: string, options?: CallOptions): Promise<T.Preferences> {
    return this.#call({ method: 'GET', path: `${u(user)}/preferences`, retry: 'safe' }, options);
  }

  /** `PATCH /v1/users/{id}/preferences`: merges `patch`, answers the whole object. */
  updatePreferences(user: string, patch: T.PreferencesPatch, options?: CallOptions): Promise<T.Preferences> {
    return this.#call({ method: 'PATCH', path: `${u(user)}/preferences`, body: patch, retry: 'safe' }, options);
  }

  // --- admin (scope `admin`) -------------------------------------------------

  /**
   * `GET /v1/users/{id}/export`: everything Herald holds about the user.
   * Herald streams it; a body cut short (the store failed midway) throws
   * `HeraldError` with code `incomplete`, never a partial document.
   */
  exportUser(user: string, options?: CallOptions): Promise<T.UserExport> {
    return this.#call(
      {
        method: 'GET',
        path: `${u(user)}/export`,
        retry: 'safe',
        parse: (text, status, attempts) => {
          try {
            return JSON.parse(text);
          } catch (cause) {
            throw new HeraldError(`export of ${user} ended before its document did (${text.length} bytes)`, {
              status,
              code: 'incomplete',
              attempts,
              cause,
            });
          }
        },
      },
      options,
    );
  }

  /** `DELETE /v1/users/{id}`: erases the user's data and closes their connections; again: zeros. */
  eraseUser(user: string, options?: CallOptions): Promise<T.Erased> {
    return this.#call({ method: 'DELETE', path: u(user), retry: 'safe' }, options);
  }

  /** `GET /v1/webhooks/dead?limit=&after=`: dead fallback webhook events (404 while webhooks are off). */
  deadWebhooks(query: T.DeadWebhooksQuery = {}, options?: CallOptions): Promise<T.DeadWebhookPage> {
    return this.#call({ method: 'GET', path: '/v1/webhooks/dead', query, retry: 'safe' }, options);
  }

  /** `POST /v1/webhooks/dead/{id}/retry`: sends a dead event again (409 when it is not dead). */
  retryDeadWebhook(id: string, options?: CallOptions): Promise<T.RetriedWebhook> {
    return this.#call({ method: 'POST', path: `/v1/webhooks/dead/${seg(id)}/retry`, retry: 'unsent' }, options);
  }

  // --- the machinery ---------------------------------------------------------

  #keyed<M extends { idempotency_key?: string | null }>(message: M): M {
    if (!this.#autoKeys || (message.idempotency_key ?? undefined) !== undefined) return message;
    return { ...message, idempotency_key: this.#newKey() };
  }

  #sendRetry(body: { idempotency_key?: string | null }): RetryClass {
    return (body.idempotency_key ?? undefined) === undefined ? 'unsent' : 'safe';
  }

  /**
   * One call: tries until an answer that is final, the retries are spent,
   * or the deadline (`timeout`, all tries and waits included) or the
   * caller's signal ends it. The body is serialized once, so every try
   * sends the same bytes — the same idempotency key included.
   */
  async #call<R>(req: Request, options: CallOptions = {}): Promise<R> {
    const timeout = nonNegative('timeout', options.timeout ?? this.#timeout);
    const maxRetries = nonNegative('maxRetries', options.maxRetries ?? this.#maxRetries);
    const deadline = timeout > 0 ? Date.now() + timeout : Infinity;
    const url = this.#base + req.path + queryString(req.query);
    const headers: Record<string, string> = {
      authorization: this.#auth,
      accept: 'application/json',
      'user-agent': `herald-server-node/${VERSION}`,
    };
    let payload: string | undefined;
    if (req.body !== undefined) {
      payload = JSON.stringify(req.body);
      headers['content-type'] = 'application/json';
    }
    const stop = new Stop(options.signal, timeout, () => `${req.method} ${req.path}`);
    try {
      for (let attempt = 1; ; attempt++) {
        let failure: HeraldError;
        try {
          const res = await this.#fetch(url, { method: req.method, headers, body: payload, signal: stop.signal });
          const text = await res.text();
          if (res.ok) {
            if (req.parse) return req.parse(text, res.status, attempt) as R;
            return parseJson(req, text, res.status, attempt) as R;
          }
          failure = apiError(req, res, text, attempt);
          if (!retryableStatus(res.status, req.retry)) throw failure;
        } catch (err) {
          if (err instanceof HeraldError) throw err;
          stop.throwIfStopped(attempt, err);
          failure = networkError(req, err, attempt);
          if (req.retry === 'unsent' && !neverConnected(err)) throw failure;
        }
        if (attempt > maxRetries) throw failure;
        // Herald's Retry-After when it gave one, else exponential backoff
        // with full jitter (tries from many backends spread out).
        const backoff = Math.random() * Math.min(this.#maxDelay, this.#baseDelay * 2 ** (attempt - 1));
        const wait = Math.min(this.#maxDelay, failure.retryAfterMs ?? backoff);
        // A wait that would outlast the deadline: the last failure is the answer.
        if (Date.now() + wait >= deadline) throw failure;
        await stop.sleep(wait, attempt);
      }
    } finally {
      stop.dispose();
    }
  }
}

/**
 * The call's end, by its deadline or the caller's signal: one
 * AbortController whose signal every try's fetch and every wait follows
 * (written out rather than `AbortSignal.any`, missing before Node 20.3).
 */
class Stop {
  readonly #controller = new AbortController();
  readonly #timer: ReturnType<typeof setTimeout> | undefined;
  readonly #onAbort: () => void;
  readonly #caller: AbortSignal | undefined;
  readonly #describe: () => string;
  readonly #timeout: number;
  #why: 'timeout' | 'aborted' | undefined;

  constructor(caller: AbortSignal | undefined, timeout: number, describe: () => string) {
    this.#caller = caller;
    this.#timeout = timeout;
    this.#describe = describe;
    this.#onAbort = () => this.#end('aborted');
    if (caller?.aborted) this.#end('aborted');
    else caller?.addEventListener('abort', this.#onAbort, { once: true });
    if (timeout > 0 && this.#why === undefined) {
      this.#timer = setTimeout(() => this.#end('timeout'), timeout);
    }
  }

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  #end(why: 'timeout' | 'aborted'): void {
    if (this.#why !== undefined) return;
    this.#why = why;
    this.#controller.abort();
  }

  /** After a failed try: the call's own end, when that is what failed it. */
  throwIfStopped(attempts: number, cause?: unknown): void {
    if (this.#why === undefined) return;
    const what = this.#describe();
    throw this.#why === 'timeout'
      ? new HeraldError(`${what}: no answer within ${this.#timeout} ms (${attempts} tries)`, {
          status: 0,
          code: 'timeout',
          attempts,
          cause,
        })
      : new HeraldError(`${what}: aborted by the caller's signal`, { status: 0, code: 'aborted', attempts, cause });
  }

  sleep(ms: number, attempts: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        this.signal.removeEventListener('abort', done);
        try {
          this.throwIfStopped(attempts);
          resolve();
        } catch (err) {
          reject(err);
        }
      };
      const timer = setTimeout(done, ms);
      this.signal.addEventListener('abort', done, { once: true });
    });
  }

  dispose(): void {
    clearTimeout(this.#timer);
    this.#caller?.removeEventListener('abort', this.#onAbort);
  }
}

/** 429 is refused before anything ran; 5xx may have run, so only a safe call repeats it. */
function retryableStatus(status: number, retry: RetryClass): boolean {
  if (status === 429) return true;
  return retry === 'safe' && status >= 500;
}

/** The connection was never made, so the request cannot have reached Herald. */
function neverConnected(err: unknown): boolean {
  const code = (err as { cause?: { code?: unknown } })?.cause?.code;
  return code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'EAI_AGAIN';
}

function parseJson(req: Request, text: string, status: number, attempts: number): unknown {
  try {
    return JSON.parse(text);
  } catch (cause) {
    throw new HeraldError(`${req.method} ${req.path}: ${status} with a body that is not JSON`, {
      status,
      code: 'invalid_response',
      attempts,
      cause,
    });
  }
}

function apiError(req: Request, res: Response, text: string, attempts: number): HeraldError {
  let code = `http_${res.status}`;
  let message = text.slice(0, 200) || res.statusText;
  try {
    const body = JSON.parse(text) as { error?: { code?: unknown; message?: unknown } };
    if (typeof body?.error?.code === 'string') code = body.error.code;
    if (typeof body?.error?.message === 'string') message = body.error.message;
  } catch {
    // Not the API's error body (a proxy's page): the status says it.
  }
  return new HeraldError(`${req.method} ${req.path}: ${res.status} ${code}: ${message}`, {
    status: res.status,
    code,
    attempts,
    retryAfterMs: retryAfter(res.headers.get('retry-after')),
  });
}

function networkError(req: Request, err: unknown, attempts: number): HeraldError {
  const cause = (err as { cause?: { code?: string; message?: string } })?.cause;
  const detail = cause?.code ?? cause?.message ?? (err instanceof Error ? err.message : String(err));
  return new HeraldError(`${req.method} ${req.path}: no answer (${detail})`, {
    status: 0,
    code: 'network',
    attempts,
    cause: err,
  });
}

/** `Retry-After` as seconds or an HTTP date, in ms. */
function retryAfter(header: string | null): number | undefined {
  if (header === null) return undefined;
  if (/^\d+$/.test(header.trim())) return Number(header.trim()) * 1000;
  const at = Date.parse(header);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

function queryString(query: Request['query']): string {
  if (!query) return '';
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v === undefined) continue;
    params.set(k, Array.isArray(v) ? v.join(',') : String(v));
  }
  const s = params.toString();
  return s === '' ? '' : `?${s}`;
}

function seg(s: string): string {
  if (typeof s !== 'string' || s === '') throw new TypeError(`Herald: a path segment must be a non-empty string, got ${JSON.stringify(s)}`);
  return encodeURIComponent(s);
}

function u(user: string): string {
  return `/v1/users/${seg(user)}`;
}

function nonNegative(name: string, n: number): number {
  if (!Number.isFinite(n) || n < 0) throw new TypeError(`Herald: ${name} must be a number >= 0, got ${n}`);
  return n;
}
