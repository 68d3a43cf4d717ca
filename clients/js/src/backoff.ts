export interface BackoffOptions {
  /** First delay's ceiling, ms (default 500). */
  baseMs?: number;
  /** Largest delay, ms (default 30 000). */
  maxMs?: number;
  /** Growth per failed attempt (default 2). */
  factor?: number;
}

/**
 * Exponential backoff with jitter: the ceiling grows `factor`× per attempt up
 * to `maxMs`, and the delay is drawn uniformly from [ceiling/2, ceiling]
 * ("equal jitter"), so clients dropped together by one node do not all come
 * back at the same instant, and none retries in a tight loop.
 */
export function backoffDelay(
  attempt: number,
  opts: BackoffOptions = {},
  random: () => number = Math.random,
): number {
  const base = opts.baseMs ?? 500;
  const max = opts.maxMs ?? 30_000;
  const factor = opts.factor ?? 2;
  const ceiling = Math.min(max, base * Math.pow(factor, Math.max(0, attempt)));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}
