import type { StreamName } from './types.js';

/** What `localStorage` offers; any object with these three methods will do. */
export interface StorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

/** The highest seq processed in each stream. */
export interface ResumeState {
  inbox: number;
  all: number;
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
        return { inbox: num(v.inbox), all: num(v.all) };
      }
    } catch {
      /* unreadable: start afresh */
    }
    return { inbox: 0, all: 0 };
  }

  save(user: string, state: ResumeState): void {
    const cur = this.load(user);
    const next = { inbox: Math.max(cur.inbox, state.inbox), all: Math.max(cur.all, state.all) };
    if (next.inbox === cur.inbox && next.all === cur.all) return;
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

export function streamKey(s: StreamName): keyof ResumeState {
  return s === 'all' ? 'all' : 'inbox';
}
