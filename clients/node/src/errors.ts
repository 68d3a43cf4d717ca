/**
 * The one error every call of the client throws.
 *
 * An answer from Herald that is not a success carries the API's own
 * `{"error":{"code","message"}}` body (docs/protocol.md, *Server API*): its
 * `code` and `message` are copied here with the HTTP `status`, so a backend
 * branches on `err.code === 'conflict'` rather than on message text.
 *
 * When no answer came back, `status` is 0 and `code` says why, in codes the
 * API never uses: `timeout` (the call's `timeout` ran out, retries
 * included), `aborted` (the caller's `signal` fired), `network` (the
 * connection failed or was cut, on the last try). A `network` error on a
 * send does not mean "not stored": the request may have reached Herald and
 * only its answer been lost — which is why sends carry an idempotency key
 * and are retried with the same one.
 */
export class HeraldError extends Error {
  /** HTTP status of Herald's answer; 0 when there was none. */
  readonly status: number;
  /**
   * The API's error code (`bad_request`, `invalid_field`, `unauthorized`,
   * `conflict`, `not_found`, `blocked`, `already_acted`, `rate_limited`,
   * `unavailable`, `internal`…), or `timeout` / `aborted` / `network` when
   * no answer came back, or `http_<status>` for an answer without the API's
   * error body (a proxy's page, say).
   */
  readonly code: string;
  /** How many requests the call made (1 when it was not retried). */
  readonly attempts: number;
  /** `Retry-After` of the answer, in milliseconds, when it had one. */
  readonly retryAfterMs: number | undefined;

  constructor(
    message: string,
    init: { status: number; code: string; attempts: number; retryAfterMs?: number; cause?: unknown },
  ) {
    super(message, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = 'HeraldError';
    this.status = init.status;
    this.code = init.code;
    this.attempts = init.attempts;
    this.retryAfterMs = init.retryAfterMs;
  }
}

/** Whether `err` is a {@link HeraldError} with this `code`. */
export function isHeraldError(err: unknown, code?: string): err is HeraldError {
  return err instanceof HeraldError && (code === undefined || err.code === code);
}
