import type { StreamName } from './types.js';

/** What `localStorage` offers; any object with these three methods will do. */
export interface StorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

/**
 * The highest seq processed in each stream, with the id of the message at
 * it when known (a `sync` sends it, so the server can tell that its store
 * went back even where new messages already passed that seq).
 */
export interface ResumeState {
  inbox: number;
  all: number;
  inboxId?: string;
  allId?: string;
}

export function defaultStorage(): StorageLike | null {
  try {
    const s = (globalThis as { localStorage?: StorageLike }).localStorage;
    if (!s) return null;
    const probe = '__herald_probe__';
    s.setItem(probe, '1');
    s.removeItem(probe);
    return s;
  } catch {
    return null; // private mode, sandboxed iframe, storage disabled
  }
}

/** An in-memory stand-in when no storage is available. */
export function memoryStorage(): StorageLike {
  const m = new Map<string, string>();
  return {
    getItem: (k) => (m.has(k) ? m.get(k)! : null),
    setItem: (k, v) => void m.set(k, v),
    removeItem: (k) => void m.delete(k),
  };
}

/**
 * Where the last seqs are kept per user (one key per user, so two users
 * signing in on one browser never resume from each other's position), so a
 * reconnect or a page reload resumes where it stopped. Writes never move a
 * position back: tabs of one user share it.
 */
export class ResumeStore {
  constructor(
    private readonly storage: StorageLike,
    private readonly prefix = 'herald',
  ) {}

  private key(user: string): string {
    return `${this.prefix}:resume:${user}`;
  }

  load(user: string): ResumeState {
    try {
      const raw = this.storage.getItem(this.key(user));
      if (raw) {
        const v = JSON.parse(raw) as Partial<ResumeState>;
        const state: ResumeState = { inbox: num(v.inbox), all: num(v.all) };
        if (typeof v.inboxId === 'string') state.inboxId = v.inboxId;
        if (typeof v.allId === 'string') state.allId = v.allId;
        return state;
      }
    } catch {
      /* unreadable: start afresh */
    }
    return { inbox: 0, all: 0 };
  }

  save(user: string, state: ResumeState): void {
    const cur = this.load(user);
    const next: ResumeState = { ...cur };
    for (const k of STREAMS) {
      const id = idKey(k);
      if (state[k] > cur[k] || (state[k] === cur[k] && state[id] !== undefined)) {
        next[k] = state[k];
        if (state[id] === undefined) delete next[id];
        else next[id] = state[id];
      }
    }
    this.write(user, cur, next);
  }

  /** The server's stream went back (a `reset`): the one write that moves a position back. */
  rewind(user: string, stream: StreamName, seq: number): void {
    const cur = this.load(user);
    const k = streamKey(stream);
    const next: ResumeState = { ...cur, [k]: seq };
    delete next[idKey(k)];
    this.write(user, cur, next);
  }

  private write(user: string, cur: ResumeState, next: ResumeState): void {
    if (JSON.stringify(next) === JSON.stringify(cur)) return;
    try {
      this.storage.setItem(this.key(user), JSON.stringify(next));
    } catch {
      /* quota: the in-memory position still dedupes this session */
    }
  }

  clear(user: string): void {
    this.storage.removeItem(this.key(user));
  }

  /** A value kept beside the positions (the device name, the last user). */
  get(name: string): string | null {
    try {
      return this.storage.getItem(`${this.prefix}:${name}`);
    } catch {
      return null;
    }
  }

  set(name: string, value: string): void {
    try {
      this.storage.setItem(`${this.prefix}:${name}`, value);
    } catch {
      /* ignore */
    }
  }
}

function num(v: unknown): number {
  return typeof v === 'number' && Number.isFinite(v) && v > 0 ? Math.floor(v) : 0;
}

const STREAMS = ['inbox', 'all'] as const;

export function streamKey(s: StreamName): 'inbox' | 'all' {
  return s === 'all' ? 'all' : 'inbox';
}

/** Where a position's message id is kept. */
export function idKey(k: 'inbox' | 'all'): 'inboxId' | 'allId' {
  return k === 'all' ? 'allId' : 'inboxId';
}
