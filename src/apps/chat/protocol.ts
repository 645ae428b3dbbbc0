/**
 * The chat protocol: a schema protocol (docs/protocol.md#session-protocols) over any ezipc transport. Every
 * client request carries an `id` the server echoes in its answer (`ok`, `refused`, `welcome`, `members`,
 * `roomList`); `line` frames are pushed.
 */
import { t } from "../../codec/schema.js";
import { schemaProtocol } from "../../service/protocol.js";

const str = t.string({ maxBytes: 8192 });

/** What a line is. */
export const KIND_SAY = 0;
export const KIND_WHISPER = 1;
export const KIND_JOIN = 2;
export const KIND_LEAVE = 3;
export const KIND_RENAME = 4;

/** One chat line as stored and sent: a message, a whisper or an announcement. */
export const line = t.struct({
  kind: t.u8,
  /** Milliseconds since the epoch (server clock). */
  time: t.f64,
  room: str,
  /** Who said it (for a rename: the old name). */
  from: str,
  /** A whisper's recipient; a rename's new name; "" otherwise. */
  to: str,
  text: str,
});

export const chatMessages = {
  // client → server
  /** Enter `room` as `nick` (first, and again after a reconnect). Answered with `welcome` or `refused`. */
  hello: t.struct({ id: t.u32, room: str, nick: str }),
  say: t.struct({ id: t.u32, text: str }),
  whisper: t.struct({ id: t.u32, to: str, text: str }),
  nick: t.struct({ id: t.u32, name: str }),
  who: t.struct({ id: t.u32 }),
  rooms: t.struct({ id: t.u32 }),
  /** Move to another room. Answered with `welcome` (its history) or `refused`. */
  join: t.struct({ id: t.u32, room: str }),
  // server → client
  ok: t.struct({ id: t.u32 }),
  refused: t.struct({ id: t.u32, code: str, message: str }),
  /** Entered `room` as `nick`: the room's lines of the day (and this nick's whispers there). */
  welcome: t.struct({ id: t.u32, room: str, nick: str, history: t.array(line, { maxLength: 1_000_000 }) }),
  line,
  members: t.struct({ id: t.u32, room: str, nicks: t.array(str, { maxLength: 100_000 }) }),
  roomList: t.struct({
    id: t.u32,
    rooms: t.array(t.struct({ name: str, members: t.u32 }), { maxLength: 100_000 }),
  }),
} as const;

/** The protocol's name and factory, as `Service.accept`/`connect` take them. */
export const chatProtocol = schemaProtocol(chatMessages, "ezipc-chat/1");
