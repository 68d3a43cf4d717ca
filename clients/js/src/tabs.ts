import type { ConnectionState } from './client.js';
import type { Transport, TransportHandlers, TransportKind } from './transport.js';
import type { ClientFrame, ServerFrame } from './types.js';

/**
 * Messages between the tabs of one user on one browser. The tab holding the
 * Web Lock (the leader) owns the only connection; the others (followers) get
 * every frame it processed over a BroadcastChannel and send their requests
 * through it.
 */
export type TabMsg =
  | { k: 'hello'; tab: string }
  | { k: 'frame'; frame: ServerFrame; to?: string }
  | { k: 'req'; tab: string; frame: ClientFrame }
  | { k: 'state'; state: ConnectionState; transport: TransportKind | null }
  | { k: 'leader'; tab: string }
  | { k: 'erased' };

export interface Channel {
  postMessage(msg: unknown): void;
  close(): void;
  onmessage: ((ev: MessageEvent) => void) | null;
}

export type ChannelCtor = new (name: string) => Channel;

/** A follower tab's "connection": the leader tab, over a BroadcastChannel. */
export class TabTransport implements Transport {
  readonly kind = 'tab' as const;
  private done = false;
  private readonly ch: Channel;

  constructor(
    name: string,
    private readonly tab: string,
    private readonly h: TransportHandlers & { onLeaderState(state: ConnectionState, t: TransportKind | null): void },
    BC: ChannelCtor,
  ) {
    this.ch = new BC(name);
    this.ch.onmessage = (ev) => {
      const m = ev.data as TabMsg;
      if (this.done || !m || typeof m !== 'object') return;
      if (m.k === 'frame' && (!m.to || m.to === tab)) h.onFrame(m.frame);
      else if (m.k === 'state') h.onLeaderState(m.state, m.transport);
      else if (m.k === 'erased') h.onErased?.();
      else if (m.k === 'leader') {
        // A new leader knows nothing of what we asked the old one.
        h.onReset?.();
        this.hello();
      }
    };
    this.hello();
  }

  private hello(): void {
    this.ch.postMessage({ k: 'hello', tab: this.tab } satisfies TabMsg);
  }

  send(frame: ClientFrame): boolean {
    if (this.done) return false;
    if (frame.type === 'ack') return true; // the leader acknowledges
    this.ch.postMessage({ k: 'req', tab: this.tab, frame } satisfies TabMsg);
    return true;
  }

  close(code = 1000, reason = ''): void {
    if (this.done) return;
    this.done = true;
    this.ch.onmessage = null;
    this.ch.close();
    this.h.onClose({ code, reason, opened: true });
  }
}

export interface LockManagerLike {
  request(
    name: string,
    options: { ifAvailable?: boolean; signal?: AbortSignal },
    cb: (lock: unknown) => Promise<void> | void,
  ): Promise<unknown>;
}
