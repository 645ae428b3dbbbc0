/**
 * The chat server (seed 004), built on ezipc's service layer: rooms, nicknames unique across the server
 * (case-insensitive), rename, whispers within a room, member and room lists, and each room's history of the
 * current day, kept in a {@link ChatStore}.
 *
 * - Every line is stored before it is acknowledged or broadcast; the lines of one tick share one
 *   transaction (group commit), so durability costs one sync per tick, not per line.
 * - Nicknames are claimed synchronously in one map, so of two clients racing for a name exactly one gets it.
 * - Bad input gets a `refused` answer with a coded reason and the session carries on; a flooding client is
 *   refused with `EZIPC_RATE_LIMITED` beyond its allowance, which costs its room nothing.
 */

import type { Infer } from "../../codec/schema.js";
import { EzipcError, isEzipcError } from "../../errors.js";
import { log } from "../../log.js";
import { Service } from "../../service/service.js";
import type { Session } from "../../service/session.js";
import type { Listener } from "../../transport/types.js";
import {
  type chatMessages,
  chatProtocol,
  KIND_JOIN,
  KIND_LEAVE,
  KIND_RENAME,
  KIND_SAY,
  KIND_WHISPER,
} from "./protocol.js";
import { type ChatStore, type Line, nickKey, type StoredLine } from "./store.js";

type Body<K extends keyof typeof chatMessages> = Infer<(typeof chatMessages)[K]>;

const NICK_RE = /^[\p{L}\p{N}_-]{1,20}$/u;
const ROOM_RE = /^[\p{L}\p{N}_-]{1,32}$/u;
/** Longest message, in characters. */
export const MAX_TEXT = 2_000;
// biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting control characters is the point
const CONTROL_RE = /[\u0000-\u001f\u007f-\u009f]/;

export interface ChatServerOptions {
  /** Where lines are kept. */
  store: ChatStore;
  /** The time zone whose calendar day a room's history covers (IANA name). Default: the server's. */
  timeZone?: string;
  /** The clock (tests inject one). Default `Date.now`. */
  now?: () => number;
  /** Lines a client may send per second on average, and in a burst. Default 5 and 20. */
  ratePerSecond?: number;
  burst?: number;
}

interface Member {
  readonly session: Session;
  nick: string;
  room: string;
  tokens: number;
  refilledAt: number;
}

function refuse(
  code: "EZIPC_BAD_REQUEST" | "EZIPC_NICK_TAKEN" | "EZIPC_NO_SUCH_MEMBER" | "EZIPC_RATE_LIMITED",
  message: string,
): never {
  throw new EzipcError(code, message);
}

function checkNick(nick: string): void {
  if (typeof nick !== "string" || !NICK_RE.test(nick)) {
    refuse("EZIPC_BAD_REQUEST", "a nickname is 1-20 letters, digits, _ or -");
  }
}

function checkRoom(room: string): void {
  if (typeof room !== "string" || !ROOM_RE.test(room))
    refuse("EZIPC_BAD_REQUEST", "a room is 1-32 letters, digits, _ or -");
}

function checkText(text: string): void {
  if (text.length === 0) refuse("EZIPC_BAD_REQUEST", "an empty message");
  if (text.length > MAX_TEXT) refuse("EZIPC_BAD_REQUEST", `a message is at most ${MAX_TEXT} characters`);
  if (CONTROL_RE.test(text)) refuse("EZIPC_BAD_REQUEST", "a message may not contain control characters");
}

export class ChatServer {
  private readonly service = new Service();
  private readonly members = new Map<Session, Member>();
  /** Claimed nicknames by {@link nickKey}. */
  private readonly nicks = new Map<string, Member>();
  private readonly rooms = new Map<string, Set<Member>>();
  private readonly now: () => number;
  private readonly day: Intl.DateTimeFormat;
  private readonly rate: number;
  private readonly burst: number;
  private pending: { lines: StoredLine[]; done: Promise<void> } | null = null;
  private listener: Listener | null = null;

  constructor(private readonly options: ChatServerOptions) {
    this.now = options.now ?? Date.now;
    this.day = new Intl.DateTimeFormat("en-CA", {
      timeZone: options.timeZone,
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
    });
    this.rate = options.ratePerSecond ?? 5;
    this.burst = options.burst ?? 20;
    const handle = <K extends keyof typeof chatMessages>(
      type: K,
      fn: (m: Member | undefined, body: Body<K>, session: Session) => Promise<void> | void,
    ) => {
      this.service.handle(type, async (body: Body<K>, session) => {
        const id = (body as { id: number }).id;
        try {
          await fn(this.members.get(session), body, session);
        } catch (err) {
          if (!isEzipcError(err)) throw err;
          if (session.open) session.send("refused", { id, code: err.code, message: err.message });
        }
      });
    };
    handle("hello", (m, b, s) => this.onHello(m, b, s));
    handle("say", (m, b) => this.onSay(this.need(m), b));
    handle("whisper", (m, b) => this.onWhisper(this.need(m), b));
    handle("nick", (m, b) => this.onNick(this.need(m), b));
    handle("who", (m, b) => this.onWho(this.need(m), b));
    handle("rooms", (m, b) => this.onRooms(this.need(m), b));
    handle("join", (m, b) => this.onJoin(this.need(m), b));
    this.service.on("sessionClosed", (session) => void this.onGone(session));
  }

  /** Starts serving at `url` (e.g. `tcp://127.0.0.1:9993`); resolves with the bound URL. */
  async listen(url: string): Promise<string> {
    await this.options.store.migrate();
    this.listener = await this.service.accept(url, chatProtocol, { maxFrameBytes: 64 * 1024 });
    return this.listener.url;
  }

  /** Stops serving, waits for pending lines to be stored, closes the store. */
  async close(): Promise<void> {
    await this.service.close();
    await this.pending?.done;
    await this.options.store.close();
  }

  /** The calendar day of `time` in the server's time zone, `YYYY-MM-DD`. */
  dayOf(time: number): string {
    return this.day.format(time);
  }

  private need(m: Member | undefined): Member {
    if (!m) refuse("EZIPC_BAD_REQUEST", "say hello (a room and a nickname) first");
    return m;
  }

  /** Spends one token of the member's allowance, or refuses. */
  private spend(m: Member): void {
    const now = this.now();
    m.tokens = Math.min(this.burst, m.tokens + ((now - m.refilledAt) / 1000) * this.rate);
    m.refilledAt = now;
    if (m.tokens < 1)
      refuse("EZIPC_RATE_LIMITED", `at most ${this.rate} messages per second (burst ${this.burst})`);
    m.tokens -= 1;
  }

  /** Stores lines, then runs `after` (acknowledge, broadcast): one transaction per tick. */
  private async store(line: Line): Promise<void> {
    const stored: StoredLine = { ...line, day: this.dayOf(line.time) };
    if (!this.pending) {
      const lines = [stored];
      const done = new Promise<void>((resolve, reject) => {
        setImmediate(() => {
          this.pending = null;
          this.options.store.save(lines).then(resolve, reject);
        });
      });
      this.pending = { lines, done };
    } else this.pending.lines.push(stored);
    try {
      await this.pending.done;
    } catch (err) {
      throw new EzipcError("EZIPC_STORE", `storing the message failed: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }

  /** Sends `line` to everyone in `room` (but `except`): encoded once, the same frame to each. */
  /** A line from `m` in its room, now. */
  private line(m: Member, kind: number, text: string, to = ""): Line {
    return { kind, time: this.now(), room: m.room, from: m.nick, to, text };
  }

  private broadcast(room: string, line: Line, except?: Member): void {
    let frame: Uint8Array | undefined;
    for (const m of this.rooms.get(room) ?? []) {
      if (m === except || !m.session.open) continue;
      frame ??= m.session.protocol.encode("line", line);
      m.session.connection.send(frame);
    }
  }

  private enter(m: Member, room: string): void {
    let set = this.rooms.get(room);
    if (!set) {
      set = new Set();
      this.rooms.set(room, set);
    }
    set.add(m);
    m.room = room;
  }

  private leave(m: Member): void {
    const set = this.rooms.get(m.room);
    set?.delete(m);
    if (set?.size === 0) this.rooms.delete(m.room);
  }

  private async welcome(m: Member, id: number): Promise<void> {
    const joined = this.line(m, KIND_JOIN, `${m.nick} joined`);
    await this.store(joined);
    const history = await this.options.store.history(m.room, this.dayOf(joined.time), nickKey(m.nick));
    if (m.session.open) m.session.send("welcome", { id, room: m.room, nick: m.nick, history });
    this.broadcast(m.room, joined, m);
  }

  private async onHello(existing: Member | undefined, b: Body<"hello">, session: Session): Promise<void> {
    if (existing) refuse("EZIPC_BAD_REQUEST", `already in ${existing.room} as ${existing.nick}`);
    checkRoom(b.room);
    checkNick(b.nick);
    const key = nickKey(b.nick);
    if (this.nicks.has(key)) refuse("EZIPC_NICK_TAKEN", `${b.nick} is taken`);
    const m: Member = { session, nick: b.nick, room: b.room, tokens: this.burst, refilledAt: this.now() };
    this.nicks.set(key, m); // claimed synchronously: of two racing clients, one gets it
    this.members.set(session, m);
    this.enter(m, b.room);
    await this.welcome(m, b.id);
  }

  private async onSay(m: Member, b: Body<"say">): Promise<void> {
    checkText(b.text);
    this.spend(m);
    const line = this.line(m, KIND_SAY, b.text);
    await this.store(line);
    if (m.session.open) m.session.send("ok", { id: b.id });
    this.broadcast(m.room, line, m);
  }

  private async onWhisper(m: Member, b: Body<"whisper">): Promise<void> {
    checkText(b.text);
    const to = this.nicks.get(nickKey(b.to));
    if (!to || to.room !== m.room) refuse("EZIPC_NO_SUCH_MEMBER", `nobody called ${b.to} is in ${m.room}`);
    this.spend(m);
    const line = this.line(m, KIND_WHISPER, b.text, to.nick);
    await this.store(line);
    if (m.session.open) m.session.send("ok", { id: b.id });
    if (to.session.open) to.session.send("line", line);
  }

  private async onNick(m: Member, b: Body<"nick">): Promise<void> {
    checkNick(b.name);
    const key = nickKey(b.name);
    const holder = this.nicks.get(key);
    if (holder && holder !== m) refuse("EZIPC_NICK_TAKEN", `${b.name} is taken`);
    this.spend(m);
    const old = m.nick;
    this.nicks.delete(nickKey(old));
    this.nicks.set(key, m);
    m.nick = b.name;
    const line = { ...this.line(m, KIND_RENAME, `${old} is now ${b.name}`, b.name), from: old };
    await this.store(line);
    if (m.session.open) m.session.send("ok", { id: b.id });
    this.broadcast(m.room, line, m);
  }

  private onWho(m: Member, b: Body<"who">): void {
    const nicks = [...(this.rooms.get(m.room) ?? [])].map((x) => x.nick).sort();
    m.session.send("members", { id: b.id, room: m.room, nicks });
  }

  private onRooms(m: Member, b: Body<"rooms">): void {
    const rooms = [...this.rooms].map(([name, set]) => ({ name, members: set.size }));
    rooms.sort((x, y) => (x.name < y.name ? -1 : x.name > y.name ? 1 : 0));
    m.session.send("roomList", { id: b.id, rooms });
  }

  private async onJoin(m: Member, b: Body<"join">): Promise<void> {
    checkRoom(b.room);
    if (b.room === m.room) refuse("EZIPC_BAD_REQUEST", `already in ${b.room}`);
    this.spend(m);
    const left = this.line(m, KIND_LEAVE, `${m.nick} left`);
    this.leave(m);
    this.enter(m, b.room);
    await this.store(left);
    this.broadcast(left.room, left);
    await this.welcome(m, b.id);
  }

  private async onGone(session: Session): Promise<void> {
    const m = this.members.get(session);
    if (!m) return;
    this.members.delete(session);
    this.nicks.delete(nickKey(m.nick));
    this.leave(m);
    const left = this.line(m, KIND_LEAVE, `${m.nick} left`);
    try {
      await this.store(left);
    } catch (err) {
      log("warn", "chat", "storing a leave failed", { error: err });
    }
    this.broadcast(m.room, left);
  }
}
