import type { Codec } from './codec.js';
import type { ClientFrame, ErrorBody, ServerFrame } from './types.js';

export type TransportKind = 'ws' | 'sse' | 'tab';

export interface CloseInfo {
  /** WebSocket close code (1006 when the connection failed or was lost without one). */
  code: number;
  reason: string;
  /** The connection was established before it closed. */
  opened: boolean;
}

export interface TransportHandlers {
  onFrame(frame: ServerFrame): void;
  /** Final: this transport object is done. */
  onClose(info: CloseInfo): void;
  /** The stream broke and reconnects by itself (EventSource); a `welcome` follows when it is back. */
  onInterrupted?(): void;
  /** Requests sent earlier will never be answered here (a new tab leader): send them again. */
  onReset?(): void;
  /** The leader tab's connection closed with 4003: the user's data was erased. */
  onErased?(): void;
}

export interface Transport {
  readonly kind: TransportKind;
  /** false when the frame could not be sent now (it stays queued by the client). */
  send(frame: ClientFrame): boolean;
  close(code?: number, reason?: string): void;
}

type WebSocketCtor = new (url: string, protocols?: string | string[]) => WebSocket;
type EventSourceCtor = new (url: string, init?: EventSourceInit) => EventSource;
type FetchFn = (input: string, init?: RequestInit) => Promise<Response>;

/** One WebSocket connection. */
export class WsTransport implements Transport {
  readonly kind = 'ws' as const;
  private ws: WebSocket | null = null;
  private opened = false;
  private done = false;

  constructor(
    url: string,
    private readonly codec: Codec,
    private readonly h: TransportHandlers,
    WS: WebSocketCtor,
  ) {
    let ws: WebSocket;
    try {
      ws = new WS(url, codec.subprotocol);
    } catch (err) {
      // A Content-Security-Policy or a stubbed WebSocket may throw here.
      setTimeout(() => this.finish({ code: 1006, reason: String(err), opened: false }));
      return;
    }
    this.ws = ws;
    ws.binaryType = 'arraybuffer';
    ws.onopen = () => {
      this.opened = true;
    };
    ws.onmessage = (ev: MessageEvent) => {
      if (this.done) return;
      let frame: ServerFrame;
      try {
        frame = codec.decode(ev.data);
      } catch {
        return; // not a frame of this protocol: ignore it
      }
      this.h.onFrame(frame);
    };
    ws.onclose = (ev: CloseEvent) =>
      this.finish({ code: ev.code || 1006, reason: ev.reason || '', opened: this.opened });
    ws.onerror = () => {
      /* a close event follows */
    };
  }

  send(frame: ClientFrame): boolean {
    const ws = this.ws;
    if (!ws || this.done || ws.readyState !== 1) return false;
    try {
      ws.send(this.codec.encode(frame) as string);
      return true;
    } catch {
      return false;
    }
  }

  close(code = 1000, reason = ''): void {
    const ws = this.ws;
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      try {
        ws.close(code, reason);
      } catch {
        /* already closed */
      }
    }
    this.finish({ code, reason, opened: this.opened });
  }

  private finish(info: CloseInfo): void {
    if (this.done) return;
    this.done = true;
    this.h.onClose(info);
  }
}

export interface SseOptions {
  /** The gateway's base URL (http or https), no trailing slash. */
  base: string;
  token: string | null;
  device: string;
  since: number;
  sinceAll: number;
  withCredentials: boolean;
  EventSource: EventSourceCtor;
  fetch: FetchFn;
  /** Errors in a row without a welcome before the transport gives up (default 3). */
  maxErrors?: number;
}

/**
 * Server-Sent Events for what the server pushes, `POST /v1/me/requests` for
 * what the client asks. EventSource reconnects by itself with `Last-Event-ID`
 * (`<inbox seq>.<all seq>`), so the stream resumes without a gap.
 */
export class SseTransport implements Transport {
  readonly kind = 'sse' as const;
  private es: EventSource | null = null;
  private done = false;
  private opened = false;
  private errors = 0;

  constructor(
    private readonly o: SseOptions,
    private readonly h: TransportHandlers,
  ) {
    // Without positions the server starts after the device's acknowledged
    // cursor, as on a WebSocket (a new device gets the recent announcements only).
    const q = new URLSearchParams({ device: o.device });
    if (o.since > 0) q.set('since', String(o.since));
    if (o.sinceAll > 0) q.set('since_all', String(o.sinceAll));
    if (o.token) q.set('token', o.token);
    let es: EventSource;
    try {
      es = new o.EventSource(`${o.base}/sse?${q}`, { withCredentials: o.withCredentials });
    } catch (err) {
      setTimeout(() => this.finish({ code: 1006, reason: String(err), opened: false }));
      return;
    }
    this.es = es;
    es.onmessage = (ev: MessageEvent) => {
      if (this.done) return;
      let frame: ServerFrame;
      try {
        frame = JSON.parse(ev.data as string) as ServerFrame;
      } catch {
        return;
      }
      if (frame.type === 'welcome') {
        this.opened = true;
        this.errors = 0;
      }
      this.h.onFrame(frame);
    };
    es.onerror = () => {
      if (this.done) return;
      // CLOSED (2): the server refused (HTTP error, wrong content type): give up.
      // CONNECTING (0): EventSource retries with Last-Event-ID by itself.
      if (es.readyState === 2 || ++this.errors >= (o.maxErrors ?? 3)) {
        this.close(1006, 'event stream failed');
      } else {
        this.h.onInterrupted?.();
      }
    };
  }

  send(frame: ClientFrame): boolean {
    if (this.done) return false;
    void this.post(frame, 0);
    return true;
  }

  private async post(frame: ClientFrame, attempt: number): Promise<void> {
    const { o } = this;
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (o.token) headers['authorization'] = `Bearer ${o.token}`;
    const rid = 'rid' in frame ? frame.rid : null;
    let res: Response;
    try {
      res = await o.fetch(`${o.base}/v1/me/requests?device=${encodeURIComponent(o.device)}`, {
        method: 'POST',
        headers,
        body: JSON.stringify(frame),
        credentials: o.withCredentials ? 'include' : 'same-origin',
      });
    } catch {
      return this.retry(frame, attempt, { code: 'network', message: 'the request could not be sent' });
    }
    if (res.status === 204 || rid == null) return;
    let body: unknown = null;
    try {
      body = await res.json();
    } catch {
      /* not JSON */
    }
    if (res.ok && body && typeof body === 'object') {
      this.h.onFrame({ type: 'reply', ...(body as object), rid } as ServerFrame);
      return;
    }
    const error = (body as { error?: ErrorBody } | null)?.error;
    if (res.status >= 500 && res.status !== 501) {
      return this.retry(frame, attempt, error ?? { code: 'unavailable', message: `HTTP ${res.status}` });
    }
    this.h.onFrame({
      type: 'reply',
      rid,
      ok: false,
      error: error ?? { code: res.status === 401 ? 'unauthorized' : 'bad_request', message: `HTTP ${res.status}` },
    });
  }

  private retry(frame: ClientFrame, attempt: number, error: ErrorBody): void {
    // Every request the SDK makes is safe to repeat (a send carries an idempotency key).
    if (attempt < 3 && !this.done) {
      setTimeout(() => void this.post(frame, attempt + 1), 500 * 2 ** attempt);
    } else if ('rid' in frame) {
      this.h.onFrame({ type: 'reply', rid: frame.rid, ok: false, error });
    }
  }

  close(code = 1000, reason = ''): void {
    if (this.es) {
      this.es.onmessage = this.es.onerror = null;
      this.es.close();
    }
    this.finish({ code, reason, opened: this.opened });
  }

  private finish(info: CloseInfo): void {
    if (this.done) return;
    this.done = true;
    this.h.onClose(info);
  }
}
