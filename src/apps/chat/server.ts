/**
 * The chat server (seed 004), built on ezipc's service layer: rooms, nicknames unique across the server
 * (case-insensitive), rename, whispers within a room, member and room lists, and each room's history of the
 * current day, kept in a {@link ChatStore}.
 *
 * - Every line is stored before it is acknowledged or broadcast; the lines of one tick share one
 *   transaction (group commit), so durability costs one sync per tick, not per line.
 * - One order: commits and history reads run one at a time, in the order they were asked for (the store
 *   queue). A batch's lines are acknowledged and broadcast as soon as it commits, before anything else runs;
 *   a joiner's history is read after every earlier batch and it enters its room right after, so it gets
 *   each line exactly once — in its history or live — and history comes out in the order lines were
 *   accepted, on every store.
 * - A batch the store refuses is retried line by line: only the lines that fail on their own are refused.
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

/** A nickname or room: letters (with their combining marks), digits, `_` and `-`. */
const NAME_RE = /^(?:[\p{L}\p{N}_-]\p{M}*)+$/u;
/** Longest nickname and room, in characters as a person counts them (grapheme clusters). */
export const MAX_NICK = 20;
export const MAX_ROOM = 32;
/**
 * Longest nickname and room in code points, as given and once normalised (NFKC, lower case): what the
 * store's columns are sized for (store.ts).
 */
export const MAX_NAME_CODE_POINTS = 64;
export const MAX_KEY_CODE_POINTS = 256;
/** Longest message, in code points (an emoji is one); the protocol also bounds a field to 8,192 bytes. */
export const MAX_TEXT = 2_000;
const graphemes = new Intl.Segmenter(undefined, { granularity: "grapheme" });
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
  /** Its room; "" while it moves between rooms (it receives nothing then). */
  room: string;
  tokens: number;
  refilledAt: number;
}

/** A line waiting for its commit: `after` runs (acknowledge, broadcast) as soon as its batch commits. */
interface Queued {
  readonly line: StoredLine;
  readonly after: () => void;
  readonly resolve: () => void;
  readonly reject: (err: EzipcError) => void;
}

/** A step of the store queue: a batch of lines to commit, or a read that must see every earlier line. */
type Step = { lines: Queued[] } | { read: () => Promise<void> };

function refuse(
  code: "EZIPC_BAD_REQUEST" | "EZIPC_NICK_TAKEN" | "EZIPC_NO_SUCH_MEMBER" | "EZIPC_RATE_LIMITED",
  message: string,
): never {
  throw new EzipcError(code, message);
}

/** Whether `name` is 1..max letters (with marks), digits, _ or -, within the code point bounds. */
function validName(name: string, max: number): boolean {
  if (typeof name !== "string" || !NAME_RE.test(name)) return false;
  if ([...name].length > MAX_NAME_CODE_POINTS) return false;
  let n = 0;
  for (const _ of graphemes.segment(name)) if (++n > max) return false;
  return [...nickKey(name)].length <= MAX_KEY_CODE_POINTS;
}

export function checkNick(nick: string): void {
  if (!validName(nick, MAX_NICK)) {
    refuse("EZIPC_BAD_REQUEST", `a nickname is 1-${MAX_NICK} letters (any script), digits, _ or -`);
  }
}

export function checkRoom(room: string): void {
  if (!validName(room, MAX_ROOM)) {
    refuse("EZIPC_BAD_REQUEST", `a room is 1-${MAX_ROOM} letters (any script), digits, _ or -`);
  }
}

function checkText(text: string): void {
  if (text.length === 0) refuse("EZIPC_BAD_REQUEST", "an empty message");
  let n = 0;
  for (const _ of text) {
    if (++n > MAX_TEXT) refuse("EZIPC_BAD_REQUEST", `a message is at most ${MAX_TEXT} characters`);
  }
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
  /** The store queue: steps run one at a time, in order. */
  private readonly steps: Step[] = [];
  private running: Promise<void> | null = null;
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
    while (this.running) await this.running;
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

  /**
   * Stores `line` with the others of this tick (one transaction), then runs `after` — acknowledge and
   * broadcast — as soon as the batch commits, before the queue goes on. Rejects with `EZIPC_STORE` if this
   * line cannot be stored (on its own: a batch that fails is retried line by line).
   */
  private commit(line: Line, after: () => void): Promise<void> {
    const stored: StoredLine = { ...line, day: this.dayOf(line.time) };
    return new Promise((resolve, reject) => {
      const last = this.steps[this.steps.length - 1];
      const item = { line: stored, after, resolve, reject };
      if (last && "lines" in last) last.lines.push(item);
      else this.steps.push({ lines: [item] });
      this.kick();
    });
  }

  /** Runs `read` once every line asked for before it has committed and been broadcast. */
  private afterEarlierLines<T>(read: () => Promise<T>): Promise<T> {
    return new Promise((resolve, reject) => {
      this.steps.push({ read: () => read().then(resolve, reject) });
      this.kick();
    });
  }

  private kick(): void {
    if (this.running) return;
    // The lines of this tick join the first batch.
    this.running = new Promise<void>((r) => setImmediate(r)).then(() => this.drain());
  }

  private async drain(): Promise<void> {
    for (let step = this.steps.shift(); step; step = this.steps.shift()) {
      if ("read" in step) await step.read();
      else await this.commitBatch(step.lines);
    }
    this.running = null;
  }

  private async commitBatch(items: Queued[]): Promise<void> {
    try {
      await this.options.store.save(items.map((i) => i.line));
      for (const i of items) this.settle(i);
      return;
    } catch (err) {
      if (items.length === 1) {
        this.fail(items[0]!, err);
        return;
      }
      log("warn", "chat", "a batch failed; storing its lines one by one", { error: err });
    }
    for (const i of items) {
      try {
        await this.options.store.save([i.line]);
        this.settle(i);
      } catch (err) {
        this.fail(i, err);
      }
    }
  }

  private settle(i: Queued): void {
    try {
      i.after();
    } finally {
      i.resolve();
    }
  }

  private fail(i: Queued, err: unknown): void {
    i.reject(
      new EzipcError("EZIPC_STORE", `storing the message failed: ${(err as Error).message}`, { cause: err }),
    );
  }

  /** A line from `m` in its room, now. */
  private line(m: Member, kind: number, text: string, to = ""): Line {
    return { kind, time: this.now(), room: m.room, from: m.nick, to, text };
  }

  /** Sends `line` to everyone in `room` (but `except`): encoded once, the same frame to each. */
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
    m.room = "";
  }

  /**
   * Enters `room`: the join line is committed and announced to the room, then — after every earlier line —
   * the day's history is read, sent in `welcome`, and the member enters, so it gets each line once.
   */
  private async welcome(m: Member, room: string, id: number): Promise<void> {
    const joined: Line = {
      kind: KIND_JOIN,
      time: this.now(),
      room,
      from: m.nick,
      to: "",
      text: `${m.nick} joined`,
    };
    await this.commit(joined, () => this.broadcast(room, joined));
    await this.afterEarlierLines(async () => {
      const history = await this.options.store.history(room, this.dayOf(joined.time), nickKey(m.nick));
      if (!m.session.open) {
        // Gone while entering: the room heard it join, so it hears it leave.
        const left: Line = { ...joined, kind: KIND_LEAVE, time: this.now(), text: `${m.nick} left` };
        this.commit(left, () => this.broadcast(room, left)).catch(() => {});
        return;
      }
      m.session.send("welcome", { id, room, nick: m.nick, history });
      this.enter(m, room);
    });
  }

  private async onHello(existing: Member | undefined, b: Body<"hello">, session: Session): Promise<void> {
    if (existing) refuse("EZIPC_BAD_REQUEST", `already in ${existing.room} as ${existing.nick}`);
    checkRoom(b.room);
    checkNick(b.nick);
    const key = nickKey(b.nick);
    if (this.nicks.has(key)) refuse("EZIPC_NICK_TAKEN", `${b.nick} is taken`);
    const m: Member = { session, nick: b.nick, room: "", tokens: this.burst, refilledAt: this.now() };
    this.nicks.set(key, m); // claimed synchronously: of two racing clients, one gets it
    this.members.set(session, m);
    try {
      await this.welcome(m, b.room, b.id);
    } catch (err) {
      // Not joined: the name is free again.
      if (this.nicks.get(key) === m) this.nicks.delete(key);
      if (this.members.get(session) === m) this.members.delete(session);
      this.leave(m);
      throw err;
    }
  }

  private async onSay(m: Member, b: Body<"say">): Promise<void> {
    checkText(b.text);
    this.inRoom(m);
    this.spend(m);
    const line = this.line(m, KIND_SAY, b.text);
    await this.commit(line, () => {
      if (m.session.open) m.session.send("ok", { id: b.id });
      this.broadcast(line.room, line, m);
    });
  }

  private async onWhisper(m: Member, b: Body<"whisper">): Promise<void> {
    checkText(b.text);
    this.inRoom(m);
    const to = this.nicks.get(nickKey(b.to));
    if (!to || to.room !== m.room) refuse("EZIPC_NO_SUCH_MEMBER", `nobody called ${b.to} is in ${m.room}`);
    this.spend(m);
    const line = this.line(m, KIND_WHISPER, b.text, to.nick);
    await this.commit(line, () => {
      if (m.session.open) m.session.send("ok", { id: b.id });
      if (to.session.open) to.session.send("line", line);
    });
  }

  private async onNick(m: Member, b: Body<"nick">): Promise<void> {
    checkNick(b.name);
    this.inRoom(m);
    const key = nickKey(b.name);
    const holder = this.nicks.get(key);
    if (holder && holder !== m) refuse("EZIPC_NICK_TAKEN", `${b.name} is taken`);
    this.spend(m);
    const old = m.nick;
    this.nicks.delete(nickKey(old));
    this.nicks.set(key, m);
    m.nick = b.name;
    const line = { ...this.line(m, KIND_RENAME, `${old} is now ${b.name}`, b.name), from: old };
    try {
      await this.commit(line, () => {
        if (m.session.open) m.session.send("ok", { id: b.id });
        this.broadcast(line.room, line, m);
      });
    } catch (err) {
      // Not renamed: the old name comes back, the new one is free.
      if (this.nicks.get(key) === m) this.nicks.delete(key);
      this.nicks.set(nickKey(old), m);
      m.nick = old;
      throw err;
    }
  }

  /** Refuses while the member moves between rooms. */
  private inRoom(m: Member): void {
    if (m.room === "") refuse("EZIPC_BAD_REQUEST", "still entering a room");
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
    this.inRoom(m);
    if (b.room === m.room) refuse("EZIPC_BAD_REQUEST", `already in ${b.room}`);
    this.spend(m);
    const left = this.line(m, KIND_LEAVE, `${m.nick} left`);
    this.leave(m);
    this.commit(left, () => this.broadcast(left.room, left)).catch((err) =>
      log("warn", "chat", "storing a leave failed", { error: err }),
    );
    await this.welcome(m, b.room, b.id);
  }

  private async onGone(session: Session): Promise<void> {
    const m = this.members.get(session);
    if (!m) return;
    this.members.delete(session);
    this.nicks.delete(nickKey(m.nick));
    if (m.room === "") return; // gone while entering: it was in no room
    const left = this.line(m, KIND_LEAVE, `${m.nick} left`);
    this.leave(m);
    try {
      await this.commit(left, () => this.broadcast(left.room, left));
    } catch (err) {
      log("warn", "chat", "storing a leave failed", { error: err });
    }
  }
}
