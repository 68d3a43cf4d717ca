import type { ClientFrame, ServerFrame } from './types.js';

/** How frames travel on a WebSocket: JSON text frames or MessagePack binary frames. */
export interface Codec {
  readonly name: 'json' | 'msgpack';
  /** The `Sec-WebSocket-Protocol` offered. */
  readonly subprotocol: string;
  /** `binaryType` frames (MessagePack) rather than text. */
  readonly binary: boolean;
  encode(frame: ClientFrame): string | Uint8Array;
  decode(data: unknown): ServerFrame;
}

export const SUBPROTOCOL_JSON = 'herald.v1.json';
export const SUBPROTOCOL_MSGPACK = 'herald.v1.msgpack';

const textDecoder = /* @__PURE__ */ (() =>
  typeof TextDecoder === 'function' ? new TextDecoder() : null)();

export const jsonCodec: Codec = {
  name: 'json',
  subprotocol: SUBPROTOCOL_JSON,
  binary: false,
  encode: (frame) => JSON.stringify(frame),
  decode(data) {
    if (typeof data !== 'string') {
      if (!textDecoder) throw new TypeError('binary frame on a JSON connection');
      data = textDecoder.decode(toBytes(data));
    }
    return JSON.parse(data as string) as ServerFrame;
  },
};

/** The two functions the SDK uses from `@msgpack/msgpack`. */
export interface MsgpackModule {
  encode(value: unknown, options?: { ignoreUndefined?: boolean }): Uint8Array;
  decode(data: ArrayLike<number> | ArrayBufferView | ArrayBuffer): unknown;
}

function toBytes(data: unknown): Uint8Array {
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  throw new TypeError('expected binary frame data');
}

const HEX = /* @__PURE__ */ Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/** 16 bytes → `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`. */
export function uuidFromBytes(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i < 16; i++) {
    if (i === 4 || i === 6 || i === 8 || i === 10) s += '-';
    s += HEX[b[i]!];
  }
  return s;
}

/** A UUID string → its 16 bytes. */
export function uuidToBytes(id: string): Uint8Array {
  const hex = id.replace(/-/g, '');
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) throw new TypeError(`not a UUID: ${id}`);
  const out = new Uint8Array(16);
  for (let i = 0; i < 16; i++) out[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return out;
}

type Obj = Record<string, unknown>;

function fixId(o: unknown, key: string): void {
  if (o && typeof o === 'object') {
    const v = (o as Obj)[key];
    if (v instanceof Uint8Array && v.length === 16) (o as Obj)[key] = uuidFromBytes(v);
  }
}

/**
 * The server's MessagePack (rmp-serde, named fields) carries UUIDs as 16-byte
 * binaries, not strings: turn them into the same strings JSON gives, so both
 * codecs hand the application the same objects. Only the known UUID fields are
 * touched (never `data`).
 */
export function normalizeMsgpackFrame(frame: Obj): ServerFrame {
  fixId(frame, 'id');
  fixId(frame, 'conn_id');
  fixId(frame, 'replaces');
  const messages = frame['messages'];
  if (Array.isArray(messages)) for (const m of messages) fixId(m, 'id'), fixId(m, 'replaces');
  const convs = frame['conversations'];
  if (Array.isArray(convs)) for (const c of convs) fixId((c as Obj)?.['last'], 'id');
  if (frame['type'] === 'changed') {
    fixId(frame, 'by');
    const ids = frame['ids'];
    if (Array.isArray(ids)) frame['ids'] = ids.map((v: unknown) => (v instanceof Uint8Array && v.length === 16 ? uuidFromBytes(v) : v));
  }
  return frame as unknown as ServerFrame;
}

/** The inverse for client frames: the `ids` of a `mark` go as 16-byte binaries. */
export function msgpackClientFrame(frame: ClientFrame): unknown {
  const ids = (frame as { ids?: unknown }).ids;
  if (frame.type === 'mark' && Array.isArray(ids)) {
    return { ...frame, ids: ids.map((id) => (typeof id === 'string' ? uuidToBytes(id) : id)) };
  }
  return frame;
}

export function makeMsgpackCodec(mp: MsgpackModule): Codec {
  return {
    name: 'msgpack',
    subprotocol: SUBPROTOCOL_MSGPACK,
    binary: true,
    encode: (frame) => mp.encode(msgpackClientFrame(frame), { ignoreUndefined: true }),
    decode(data) {
      const value = mp.decode(toBytes(data));
      if (!value || typeof value !== 'object') throw new TypeError('a frame must be a map');
      return normalizeMsgpackFrame(value as Obj);
    },
  };
}

/**
 * Loads `@msgpack/msgpack` (an optional peer dependency) only when MessagePack
 * is asked for; `loader` overrides how (an import map, a CDN, a test double).
 */
export async function loadMsgpackCodec(
  loader?: () => Promise<MsgpackModule> | MsgpackModule,
): Promise<Codec> {
  const mod = loader ? await loader() : await importMsgpack();
  return makeMsgpackCodec(mod);
}

function importMsgpack(): Promise<MsgpackModule> {
  // A variable specifier keeps bundlers (ours included) from inlining it:
  // applications that never ask for MessagePack never load it.
  const name = '@msgpack/msgpack';
  return import(/* @vite-ignore */ name) as Promise<MsgpackModule>;
}
