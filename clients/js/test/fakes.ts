// Test doubles for the browser APIs the SDK uses: WebSocket, EventSource,
// fetch, BroadcastChannel and navigator.locks. Each records what the SDK did
// and lets a test play the server.
import { memoryStorage } from '../src/store.js';

export class FakeWebSocket {
  static instances: FakeWebSocket[] = [];
  /** When set, every new socket fails (as a page that cannot open one). */
  static blocked = false;
  static reset(): void {
    FakeWebSocket.instances = [];
    FakeWebSocket.blocked = false;
  }
  static last(): FakeWebSocket {
    const ws = FakeWebSocket.instances[FakeWebSocket.instances.length - 1];
    if (!ws) throw new Error('no WebSocket was opened');
    return ws;
  }

  readyState = 0;
  binaryType = 'blob';
  sent: unknown[] = [];
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onclose: ((ev: { code: number; reason: string }) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  closedWith: number | null = null;

  constructor(
    readonly url: string,
    readonly protocols?: string | string[],
  ) {
    FakeWebSocket.instances.push(this);
    if (FakeWebSocket.blocked) {
      queueMicrotask(() => {
        this.readyState = 3;
        this.onerror?.({});
        this.onclose?.({ code: 1006, reason: '' });
      });
    }
  }

  get query(): URLSearchParams {
    return new URL(this.url).searchParams;
  }

  /** The server accepts and says welcome. */
  accept(welcome: Partial<Record<string, unknown>> = {}): void {
    this.readyState = 1;
    this.onopen?.({});
    this.receive({
      type: 'welcome',
      conn_id: '00000000-0000-0000-0000-000000000001',
      user_id: 'alice',
      node_id: 'n1',
      heartbeat_ms: 25000,
      last_seq: 0,
      last_all_seq: 0,
      ...welcome,
    });
  }

  receive(frame: unknown): void {
    this.onmessage?.({ data: typeof frame === 'string' || frame instanceof ArrayBuffer || frame instanceof Uint8Array ? frame : JSON.stringify(frame) });
  }

  /** The server closes the connection. */
  serverClose(code = 1006, reason = ''): void {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }

  send(data: unknown): void {
    if (this.readyState !== 1) throw new Error('not open');
    this.sent.push(typeof data === 'string' ? JSON.parse(data) : data);
  }

  /** Frames of one type the client sent. */
  frames(type?: string): Array<Record<string, unknown>> {
    return (this.sent as Array<Record<string, unknown>>).filter((f) => !type || f['type'] === type);
  }

  close(code = 1000): void {
    this.closedWith = code;
    this.readyState = 3;
  }
}

export class FakeEventSource {
  static instances: FakeEventSource[] = [];
  static reset(): void {
    FakeEventSource.instances = [];
  }
  static last(): FakeEventSource {
    const es = FakeEventSource.instances[FakeEventSource.instances.length - 1];
    if (!es) throw new Error('no EventSource was opened');
    return es;
  }

  readyState = 0;
  onmessage: ((ev: { data: string; lastEventId?: string }) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  onopen: ((ev: unknown) => void) | null = null;
  closed = false;

  constructor(
    readonly url: string,
    readonly init?: { withCredentials?: boolean },
  ) {
    FakeEventSource.instances.push(this);
  }

  get query(): URLSearchParams {
    return new URL(this.url).searchParams;
  }

  accept(welcome: Partial<Record<string, unknown>> = {}): void {
    this.readyState = 1;
    this.onopen?.({});
    this.receive({
      type: 'welcome',
      conn_id: '00000000-0000-0000-0000-000000000002',
      user_id: 'alice',
      node_id: 'n1',
      heartbeat_ms: 25000,
      last_seq: 0,
      last_all_seq: 0,
      ...welcome,
    });
  }

  receive(frame: Record<string, unknown>, id?: string): void {
    this.onmessage?.({ data: JSON.stringify(frame), lastEventId: id });
  }

  /** A network error: CONNECTING (0) retries by itself, CLOSED (2) gives up. */
  fail(readyState: 0 | 2): void {
    this.readyState = readyState;
    this.onerror?.({});
  }

  close(): void {
    this.closed = true;
    this.readyState = 2;
  }
}

export interface FetchCall {
  url: string;
  init: RequestInit;
  body: Record<string, unknown>;
}

/** A fetch that answers `POST /v1/me/requests` with `answer(body)`. */
export function fakeFetch(answer: (body: Record<string, unknown>) => { status: number; body?: unknown }) {
  const calls: FetchCall[] = [];
  const fn = async (url: string, init: RequestInit = {}): Promise<Response> => {
    const body = JSON.parse(String(init.body)) as Record<string, unknown>;
    calls.push({ url, init, body });
    const a = answer(body);
    return new Response(a.status === 204 ? null : JSON.stringify(a.body ?? {}), {
      status: a.status,
      headers: { 'content-type': 'application/json' },
    });
  };
  return { fn, calls };
}

/** BroadcastChannel within one process: every instance of a name but the sender gets each message. */
export class FakeChannel {
  static all = new Map<string, Set<FakeChannel>>();
  onmessage: ((ev: MessageEvent) => void) | null = null;
  constructor(readonly name: string) {
    let set = FakeChannel.all.get(name);
    if (!set) FakeChannel.all.set(name, (set = new Set()));
    set.add(this);
  }
  postMessage(msg: unknown): void {
    const data = structuredClone(msg);
    for (const ch of FakeChannel.all.get(this.name) ?? []) {
      if (ch !== this) queueMicrotask(() => ch.onmessage?.({ data } as MessageEvent));
    }
  }
  close(): void {
    FakeChannel.all.get(this.name)?.delete(this);
  }
}

/** navigator.locks with exclusive locks only. */
export class FakeLocks {
  private held = new Set<string>();
  private queue = new Map<string, Array<() => void>>();
  async request(name: string, options: { ifAvailable?: boolean }, cb: (lock: unknown) => unknown): Promise<unknown> {
    if (this.held.has(name)) {
      if (options.ifAvailable) return cb(null);
      await new Promise<void>((res) => {
        const q = this.queue.get(name) ?? [];
        q.push(res);
        this.queue.set(name, q);
      });
    }
    this.held.add(name);
    try {
      return await cb({ name });
    } finally {
      this.held.delete(name);
      const next = this.queue.get(name)?.shift();
      if (next) next();
    }
  }
}

export { memoryStorage };

