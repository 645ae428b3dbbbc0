/**
 * Deadman tokens (AlephZero's deadman): a named token at most one client holds at a time. It is released
 * when its holder says so, or at once when the holder's connection closes — a killed process, or one whose
 * heartbeats stopped (the transport closes it after heartbeatTimeoutMs). Waiting `take`s are served in
 * order; `waitTaken` / `waitReleased` complete on the next change.
 */

import type { Infer } from "../codec/schema.js";
import { EzipcError, isEzipcError } from "../errors.js";
import type { HubPart } from "../protocol/hub-part.js";
import { checkKey } from "../protocol/names.js";
import type { Protocol } from "../service/protocol.js";
import { sendTo } from "../transport/send.js";
import type { Connection } from "../transport/types.js";
import {
  type deadmanMessages,
  OP_CANCEL,
  OP_RELEASE,
  OP_STATE,
  OP_TAKE,
  OP_TRY_TAKE,
  OP_WAIT_RELEASED,
  OP_WAIT_TAKEN,
} from "./deadman-messages.js";
import { describeTokens, type TokenView, type Waiter, type WaitLists, Waits, waitsOn } from "./waiters.js";

interface Token extends WaitLists {
  holder: Connection | null;
  holderLabel: string;
  /** +1 per take: tells holders apart over time. */
  epoch: bigint;
}

type Msg = Infer<typeof deadmanMessages.deadman>;

/** Most tokens with a holder or a waiter (`EZIPC_TOO_MANY_KEYS`). */
const MAX_TOKENS = 100_000;

export { MAX_WAITS_PER_CONNECTION } from "./waiters.js";

export class Deadmen implements HubPart {
  private readonly tokens = new Map<string, Token>();
  /**
   * The last epoch given, over every token: a take's epoch is never one given before while the hub runs,
   * even for a token that went idle in between (an idle token is forgotten).
   */
  private lastEpoch = 0n;
  private readonly labels = new Map<Connection, string>();
  private readonly waits: Waits;

  constructor(private readonly protocol: Protocol) {
    this.waits = new Waits(protocol, (conn, name) => {
      const t = this.tokens.get(name);
      return t !== undefined && (t.holder === conn || waitsOn(t, conn));
    });
  }

  get size(): number {
    return this.tokens.size;
  }

  /** The tokens matching `match`, with their holder and waiters, at most `limit` (monitor view). */
  describe(match: (name: string) => boolean, limit: number): { deadman: TokenView[]; more: number } {
    return describeTokens(this.tokens, match, limit, (t) => (t.holder ? t.holderLabel : ""));
  }

  handle(conn: Connection, client: string, type: string, body: unknown): boolean {
    if (type !== "deadman") return false;
    this.labels.set(conn, client);
    const m = body as Msg;
    try {
      checkKey(m.name);
      this.op(conn, m);
    } catch (err) {
      if (!isEzipcError(err)) throw err;
      sendTo(conn, this.protocol.encode("error", { rid: m.rid, code: err.code, message: err.message }));
    }
    return true;
  }

  connectionClosed(conn: Connection): void {
    this.labels.delete(conn);
    const names = this.waits.involvedIn(conn);
    this.waits.forget(conn);
    for (const name of names) {
      const t = this.tokens.get(name);
      if (!t) continue;
      this.waits.dropFrom(t, conn);
      if (t.holder === conn) this.release(name, t);
      this.gc(name, t);
    }
  }

  private op(conn: Connection, m: Msg): void {
    let t = this.tokens.get(m.name);
    if (!t) {
      if (m.op === OP_STATE || m.op === OP_CANCEL) {
        if (m.op === OP_STATE) this.reply(conn, m.rid, undefined);
        return;
      }
      if (this.tokens.size >= MAX_TOKENS)
        throw new EzipcError("EZIPC_TOO_MANY_KEYS", "too many deadman tokens");
      t = { holder: null, holderLabel: "", epoch: 0n, takers: [], waitTaken: [], waitReleased: [] };
      this.tokens.set(m.name, t);
    }
    switch (m.op) {
      case OP_TAKE:
      case OP_TRY_TAKE:
        if (t.holder === conn)
          throw new EzipcError("EZIPC_BAD_REQUEST", `${m.name}: this client already holds it`);
        if (!t.holder) this.give(m.name, t, { conn, rid: m.rid });
        else if (m.op === OP_TAKE) t.takers.push(this.waits.add(conn, m.rid, m.name));
        else this.reply(conn, m.rid, t);
        break;
      case OP_RELEASE:
        if (t.holder !== conn)
          throw new EzipcError("EZIPC_BAD_REQUEST", `${m.name}: this client does not hold it`);
        this.release(m.name, t);
        this.reply(conn, m.rid, t);
        break;
      case OP_WAIT_TAKEN:
        if (t.holder) this.reply(conn, m.rid, t);
        else t.waitTaken.push(this.waits.add(conn, m.rid, m.name));
        break;
      case OP_WAIT_RELEASED:
        if (!t.holder) this.reply(conn, m.rid, t);
        else t.waitReleased.push(this.waits.add(conn, m.rid, m.name));
        break;
      case OP_STATE:
        this.reply(conn, m.rid, t);
        break;
      case OP_CANCEL:
        // m.rid names the waiting op to drop; it is answered with EZIPC_CANCELLED.
        this.waits.cancel(t, conn, m.rid);
        break;
      default:
        throw new EzipcError("EZIPC_BAD_REQUEST", `unknown deadman op ${m.op}`);
    }
    this.gc(m.name, t);
  }

  private give(name: string, t: Token, w: Waiter, waited = false): void {
    t.holder = w.conn;
    this.waits.involve(w.conn, name);
    t.holderLabel = this.labels.get(w.conn) ?? "";
    t.epoch = ++this.lastEpoch;
    this.reply(w.conn, w.rid, t, waited);
    const waiting = t.waitTaken;
    t.waitTaken = [];
    for (const x of waiting) this.reply(x.conn, x.rid, t, true);
  }

  private release(name: string, t: Token): void {
    t.holder = null;
    t.holderLabel = "";
    const waiting = t.waitReleased;
    t.waitReleased = [];
    for (const x of waiting) this.reply(x.conn, x.rid, t, true);
    while (t.takers.length > 0 && !t.holder) {
      const next = t.takers.shift()!;
      if (next.conn.state === "open") this.give(name, t, next, true);
    }
  }

  private gc(name: string, t: Token): void {
    if (!t.holder && t.takers.length === 0 && t.waitTaken.length === 0 && t.waitReleased.length === 0) {
      this.tokens.delete(name);
    }
  }

  /** Answers an op; a waiting one is no longer counted. */
  private reply(conn: Connection, rid: number, t: Token | undefined, waited = false): void {
    if (waited) this.waits.done(conn);
    if (conn.state !== "open") return;
    sendTo(
      conn,
      this.protocol.encode("deadmanState", {
        rid,
        taken: t?.holder != null,
        holder: t?.holderLabel ?? "",
        mine: t?.holder === conn,
        epoch: t?.epoch ?? 0n,
      }),
    );
  }
}
