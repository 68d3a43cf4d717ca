import type { QuietHours } from './types.js';

/** `HH:MM` → minutes after midnight, or null. */
function minutes(hhmm: string): number | null {
  const m = /^(\d{2}):(\d{2})$/.exec(hhmm);
  if (!m) return null;
  const v = Number(m[1]) * 60 + Number(m[2]);
  return v < 24 * 60 ? v : null;
}

/**
 * Whether `now` falls in the quiet hours, in their zone: `[start, end)`,
 * across midnight when `end` is before `start`, never when they are equal
 * (the server's rule). The server marks live messages `silent` itself; the
 * SDK needs this for what it did not mark: a backlog or a resume after a
 * reconnect or reload. An unknown zone or a bad time: not quiet.
 */
export function inQuietHours(q: QuietHours | null | undefined, now: Date = new Date()): boolean {
  if (!q) return false;
  const start = minutes(q.start);
  const end = minutes(q.end);
  if (start == null || end == null || start === end) return false;
  let t: number;
  try {
    const parts = new Intl.DateTimeFormat('en-GB', { timeZone: q.tz, hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }).formatToParts(now);
    const get = (type: string) => Number(parts.find((p) => p.type === type)?.value);
    t = (get('hour') % 24) * 60 + get('minute');
  } catch {
    return false;
  }
  if (!Number.isFinite(t)) return false;
  return start < end ? t >= start && t < end : t >= start || t < end;
}
