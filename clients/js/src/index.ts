export { HeraldClient, HeraldError, tokenSubject } from './client.js';
export type { ClientEvents, ConnectionState, HeraldOptions, MessageHandler } from './client.js';
export { backoffDelay } from './backoff.js';
export type { BackoffOptions } from './backoff.js';
export { jsonCodec, loadMsgpackCodec, makeMsgpackCodec, SUBPROTOCOL_JSON, SUBPROTOCOL_MSGPACK, uuidFromBytes, uuidToBytes } from './codec.js';
export type { Codec, MsgpackModule } from './codec.js';
export { Inbox } from './inbox.js';
export { inQuietHours } from './quiet.js';
export type { InboxEvents, InboxSource } from './inbox.js';
export { ResumeStore, memoryStorage } from './store.js';
export type { ResumeState, StorageLike } from './store.js';
export type { TransportKind, CloseInfo } from './transport.js';
export * from './types.js';

import { HeraldClient, type HeraldOptions } from './client.js';

/** Creates a client and starts connecting. */
export function connect(options: HeraldOptions = {}): HeraldClient {
  const client = new HeraldClient(options);
  void client.connect().catch(() => {});
  return client;
}
