import { Emitter } from './emitter.js';
import type { Category, Changed, HistoryEntry, Message, MessageState } from './types.js';

/** What an `Inbox` tells the application. */
export interface InboxEvents {
  /** The list changed: render `list()` again. */
  change: () => void;
  /**
   * Messages came back from a snooze that this inbox never held (snoozed
   * before it was loaded, or on another device): load a history page to show them.
   */
  missing: (ids: string[]) => void;
}

/** Where an `Inbox` gets its messages and changes: a `HeraldClient`. */
export interface InboxSource {
  on(event: 'message', fn: (m: Message) => void): () => void;
  on(event: 'changed', fn: (c: Changed) => void): () => void;
  on(event: 'erased', fn: () => void): () => void;
}

/** Replaced ids remembered, so a history page loaded after the `changed` frame does not bring one back. */
const MAX_REPLACED = 5000;

/**
 * The messages an application shows, by id, kept as the server says they
 * are: live messages and history pages go in, each once; a `changed` frame
 * takes a message whose collapse group has a newer one (`replaced`) out, and
 * brings a snoozed one back unread (`unsnoozed`), and records a pressed
 * action button (`acted`: read, with `acted` set). Snoozed, archived and
 * deleted messages are held but not listed. The SDK's connection has no such
 * list of its own: it hands each message over once and forgets it.
 */
export class Inbox extends Emitter<InboxEvents> {
  private readonly byId = new Map<string, HistoryEntry>();
  private readonly replaced = new Set<string>();

  /** Follows a client's `message`, `changed` and `erased` events; returns a function that stops. */
  follow(client: InboxSource): () => void {
    const offs = [
      client.on('message', (m) => this.add(m)),
      client.on('changed', (c) => this.apply(c)),
      client.on('erased', () => this.clear()),
    ];
    return () => offs.forEach((off) => off());
  }

  get(id: string): HistoryEntry | undefined {
    return this.byId.get(id);
  }

  /**
   * A live message (unread, `unseen`, unless this inbox knows its state) or
   * a history entry (with its state). Returns false for one a newer message
   * of its group replaced.
   */
  add(m: Message | HistoryEntry): boolean {
    if (!this.put(m)) return false;
    this.emit('change');
    return true;
  }

  /** A history page: each entry with the state the server gives it. */
  addPage(entries: HistoryEntry[]): void {
    let any = false;
    for (const m of entries) any = this.put(m) || any;
    if (any) this.emit('change');
  }

  /** After a `mark` this page made: the new state of those messages (`until` with `snoozed`). */
  setState(ids: string[], state: MessageState | 'deleted', until?: number): void {
    let any = false;
    for (const id of ids) {
      const m = this.byId.get(id);
      if (!m) continue;
      if (state === 'deleted') this.byId.delete(id);
      else {
        const next: HistoryEntry = { ...m, state };
        if (state === 'snoozed' && until !== undefined) next.until = until;
        else delete next.until;
        this.byId.set(id, next);
      }
      any = true;
    }
    if (any) this.emit('change');
  }

  /**
   * A `changed` frame. Returns the ids it named that this inbox does not
   * hold (also emitted as `missing` for `unsnoozed`).
   */
  apply(c: Changed): string[] {
    const missing: string[] = [];
    let any = false;
    for (const id of c.ids) {
      if (c.state === 'replaced') {
        if (this.replace(id)) any = true;
        else missing.push(id);
      } else if (c.state === 'unsnoozed') {
        const m = this.byId.get(id);
        if (!m) {
          missing.push(id);
          continue;
        }
        const back: HistoryEntry = { ...m, state: 'unseen' };
        delete back.until;
        this.byId.set(id, back);
        any = true;
      } else if (c.state === 'acted') {
        const m = this.byId.get(id);
        if (!m) {
          missing.push(id);
          continue;
        }
        const acted: HistoryEntry = { ...m, state: 'read' };
        if (c.action !== undefined) acted.acted = c.action;
        this.byId.set(id, acted);
        any = true;
      }
    }
    if (any) this.emit('change');
    if (c.state === 'unsnoozed' && missing.length) this.emit('missing', missing);
    return missing;
  }

  /**
   * What to show, newest first: not archived, snoozed or replaced; of one
   * category when given. `{ snoozed: true }`: the snoozed ones instead.
   */
  list(opts: { category?: Category; snoozed?: boolean } = {}): HistoryEntry[] {
    return [...this.byId.values()]
      .filter((m) => (opts.snoozed ? m.state === 'snoozed' : m.state !== 'archived' && m.state !== 'snoozed'))
      .filter((m) => !opts.category || m.category === opts.category)
      .sort((a, b) => (a.ts < b.ts ? 1 : a.ts > b.ts ? -1 : b.seq - a.seq));
  }

  get size(): number {
    return this.byId.size;
  }

  clear(): void {
    this.byId.clear();
    this.replaced.clear();
    this.emit('change');
  }

  /** Takes a replaced message out for good; true when it was held. */
  private replace(id: string): boolean {
    this.replaced.add(id);
    if (this.replaced.size > MAX_REPLACED) this.replaced.delete(this.replaced.values().next().value as string);
    return this.byId.delete(id);
  }

  private put(m: Message | HistoryEntry): boolean {
    if (this.replaced.has(m.id)) return false;
    // It names the message it replaced: out, even where the `changed` frame was missed.
    if (m.replaces) this.replace(m.replaces);
    const known = this.byId.get(m.id);
    // A page of snoozed messages gives each the state it returns to, and `until`.
    const until = 'until' in m && typeof m.until === 'number';
    const state = until ? 'snoozed' : 'state' in m && m.state ? m.state : known?.state ?? 'unseen';
    this.byId.set(m.id, { ...known, ...m, state });
    return true;
  }
}
