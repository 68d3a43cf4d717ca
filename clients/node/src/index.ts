// @herald/server: the Node client of Herald's server API (docs/protocol.md,
// *Server API*). No runtime dependencies: Node 20's global fetch.
export { Herald } from './client.js';
export type { HeraldOptions, CallOptions } from './client.js';
export { HeraldError, isHeraldError } from './errors.js';
export type * from './types.js';
