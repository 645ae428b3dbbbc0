/**
 * Deadman tokens on a clustered hub (docs/cluster.md): the same messages and answers as deadman-hub.ts, with
 * each token's record in the cluster (token-replica.ts), so a token has at most one holder among the
 * clients of every hub.
 *
 * - A take is a compare-and-write of the token's free record; a `take` that finds it held waits in this
 *   hub's queue and tries again when the cluster reports it freed (the hubs race for it: first come is
 *   first served within a hub, not across hubs).
 * - A holder's connection that closes releases its tokens at once, as on one hub; a hub that stops beating
 *   for the hub timeout has its tokens released by the other hubs.
 * - `waitTaken` / `waitReleased` complete on the next change this hub hears of; `state` and `tryTake` read
 *   the record from the cluster.
 */
import type { Infer } from "../codec/schema.js";
import { EzipcError, isEzipcError } from "../errors.js";
import { log } from "../log.js";
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
import type { TokenEntry, TokenReplica } from "./token-replica.js";
import { describeTokens, type TokenView, type WaitLists, Waits, waitsOn } from "./waiters.js";

type Msg = Infer<typeof deadmanMessages.deadman>;

/** What this hub knows of one token. */
interface Local extends WaitLists {
  /** The newest record heard of (null: none yet). */
  entry: TokenEntry | null;
  /** This hub's client holding it, with its take's epoch. */
  holder: { conn: Connection; label: string; epoch: number } | null;
  /** A take attempt is in flight (pump). */
  busy: boolean;
  /** `tryTake`s in flight. */
  trying: number;
}

export class ClusterDeadmen implements HubPart {
  private readonly tokens = new Map<string, Local>();
  private readonly labels = new Map<Connection, string>();
  private readonly waits: Waits;
  private sweeper: NodeJS.Timeout | null = null;
  private sweeping = false;
  readonly counters = { takes: 0, lostRaces: 0, releasedForGoneHubs: 0 };

  constructor(
    private readonly protocol: Protocol,
    private readonly replica: TokenReplica,
    private readonly sweepMs: number,
  ) {
    this.waits = new Waits(protocol, (conn, name) => {
      const t = this.tokens.get(name);
      return t !== undefined && (t.holder?.conn === conn || waitsOn(t, conn));
    });
  }

  /** Watches the cluster's tokens; resolves once their records are known. */
  async start(): Promise<void> {
    await this.replica.watch((name, entry) => this.changed(name, entry));
    this.sweeper = setInterval(() => {
      this.sweep().catch((err) => log("warn", "cluster", "deadman sweep failed", { error: err }));
    }, this.sweepMs);
    this.sweeper.unref();
  }

  stop(): void {
    if (this.sweeper) clearInterval(this.sweeper);
    this.replica.stop();
  }

  get size(): number {
    let n = 0;
    for (const t of this.tokens.values()) if (t.entry?.held || t.takers.length > 0) n++;
    return n;
  }

  /** Tokens matching `match` (monitor view). */
  describe(match: (name: string) => boolean, limit: number): { deadman: TokenView[]; more: number } {
    return describeTokens(
      this.tokens,
      match,
      limit,
      (t) => (t.entry?.held ? t.entry.holder : ""),
      (t) => t.entry?.held === true || t.takers.length > 0,
    );
  }

  handle(conn: Connection, client: string, type: string, body: unknown): boolean {
    if (type !== "deadman") return false;
    this.labels.set(conn, client);
    const m = body as Msg;
    try {
      checkKey(m.name);
      this.op(conn, client, m);
    } catch (err) {
      this.fail(conn, m.rid, err);
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
      if (t.holder?.conn === conn) {
        const epoch = t.holder.epoch;
        t.holder = null;
        this.replica.release(name, epoch).catch((err) => {
          // The sweep of a hub that is gone does not apply: this hub lives. Try again at the next sweep.
          log("warn", "cluster", "releasing a closed holder's token failed", { name, error: err });
          this.orphans.set(name, epoch);
        });
      }
    }
  }

  /** Takes of closed holders whose release failed (made again by the sweep). */
  private readonly orphans = new Map<string, number>();

  private local(name: string): Local {
    let t = this.tokens.get(name);
    if (!t) {
      t = {
        entry: null,
        holder: null,
        takers: [],
        waitTaken: [],
        waitReleased: [],
        busy: false,
        trying: 0,
      };
      this.tokens.set(name, t);
    }
    return t;
  }

  private op(conn: Connection, client: string, m: Msg): void {
    const t = this.local(m.name);
    switch (m.op) {
      case OP_TAKE:
      case OP_TRY_TAKE:
        if (t.holder?.conn === conn)
          throw new EzipcError("EZIPC_BAD_REQUEST", `${m.name}: this client already holds it`);
        if (m.op === OP_TAKE) {
          t.takers.push(this.waits.add(conn, m.rid, m.name));
          this.pump(m.name, t);
        } else this.tryTake(m.name, t, conn, client, m.rid);
        return;
      case OP_RELEASE: {
        if (t.holder?.conn !== conn)
          throw new EzipcError("EZIPC_BAD_REQUEST", `${m.name}: this client does not hold it`);
        const epoch = t.holder.epoch;
        t.holder = null;
        this.replica.release(m.name, epoch).then(
          () => this.reply(conn, m.rid, null, t),
          (err) => {
            this.orphans.set(m.name, epoch);
            this.fail(conn, m.rid, err);
          },
        );
        return;
      }
      case OP_WAIT_TAKEN:
        if (t.entry?.held) this.reply(conn, m.rid, t.entry, t);
        else t.waitTaken.push(this.waits.add(conn, m.rid, m.name));
        return;
      case OP_WAIT_RELEASED:
        if (!t.entry?.held) this.reply(conn, m.rid, t.entry, t);
        else t.waitReleased.push(this.waits.add(conn, m.rid, m.name));
        return;
      case OP_STATE:
        this.replica.get(m.name).then(
          (e) => this.reply(conn, m.rid, e, t),
          (err) => this.fail(conn, m.rid, err),
        );
        return;
      case OP_CANCEL:
        this.waits.cancel(t, conn, m.rid);
        return;
      default:
        throw new EzipcError("EZIPC_BAD_REQUEST", `unknown deadman op ${m.op}`);
    }
  }

  /** One attempt for `conn`: answered with the record (its own take, or the holder's). */
  private tryTake(name: string, t: Local, conn: Connection, label: string, rid: number): void {
    t.trying++;
    void (async () => {
      const current = await this.replica.get(name);
      if (current?.held) return this.reply(conn, rid, current, t);
      const r = await this.replica.take(name, label, current);
      if ("lost" in r) {
        this.counters.lostRaces++;
        return this.reply(conn, rid, await this.replica.get(name), t);
      }
      this.taken(name, t, conn, label, rid, r.epoch, false);
    })()
      .catch((err) => this.fail(conn, rid, err))
      .finally(() => {
        t.trying--;
      });
  }

  /**
   * Gives the token to this hub's first waiting taker while it is free in the cluster: one attempt at a
   * time per token; a lost race reads the record again.
   */
  private pump(name: string, t: Local): void {
    if (t.busy) return;
    t.busy = true;
    void (async () => {
      try {
        while (t.takers.length > 0 && !t.holder) {
          const w = t.takers[0]!;
          if (w.conn.state !== "open") {
            t.takers.shift();
            continue;
          }
          const current = await this.replica.get(name);
          if (current) this.changed(name, current, false);
          if (current?.held) return; // the cluster reports its release: pumped again then
          const label = this.labels.get(w.conn) ?? "";
          const r = await this.replica.take(name, label, current);
          if ("lost" in r) {
            this.counters.lostRaces++;
            continue;
          }
          if (t.takers[0] !== w) {
            // Cancelled or closed meanwhile: what it took goes back.
            await this.replica.release(name, r.epoch);
            continue;
          }
          t.takers.shift();
          this.taken(name, t, w.conn, label, w.rid, r.epoch, true);
        }
      } catch (err) {
        log("warn", "cluster", "taking a deadman token failed; trying again at the next sweep", {
          name,
          error: err,
        });
      } finally {
        t.busy = false;
      }
    })();
  }

  private taken(
    name: string,
    t: Local,
    conn: Connection,
    label: string,
    rid: number,
    epoch: number,
    waited: boolean,
  ): void {
    this.counters.takes++;
    if (conn.state !== "open") {
      // Its holder left while it was being taken: free it again.
      this.replica.release(name, epoch).catch(() => this.orphans.set(name, epoch));
      return;
    }
    t.holder = { conn, label, epoch };
    this.waits.involve(conn, name);
    this.changed(name, { held: true, hub: this.replica.hubId, holder: label, epoch }, false);
    if (waited) this.waits.done(conn);
    this.reply(conn, rid, t.entry, t);
  }

  /** A record heard of (from the watch, or read): waiters are answered; a freed token is taken if wanted. */
  private changed(name: string, entry: TokenEntry, fromWatch = true): void {
    const t = this.local(name);
    if (t.entry && t.entry.epoch >= entry.epoch) return;
    t.entry = entry;
    const waiting = entry.held ? t.waitTaken : t.waitReleased;
    if (entry.held) t.waitTaken = [];
    else t.waitReleased = [];
    for (const w of waiting) {
      this.waits.done(w.conn);
      this.reply(w.conn, w.rid, entry, t);
    }
    if (!entry.held && fromWatch && t.takers.length > 0) this.pump(name, t);
  }

  /**
   * Releases the tokens of hubs that stopped beating, the failed releases of closed holders, and pumps the
   * tokens this hub waits for (should a change have been missed).
   */
  private async sweep(): Promise<void> {
    if (this.sweeping) return;
    this.sweeping = true;
    try {
      for (const [name, epoch] of [...this.orphans]) {
        await this.replica.release(name, epoch);
        this.orphans.delete(name);
      }
      const verdicts = new Map<string, boolean>();
      for (const [name, t] of [...this.tokens]) {
        const e = t.entry;
        if (e?.held && e.hub !== this.replica.hubId) {
          let running = verdicts.get(e.hub);
          if (running === undefined) {
            running = await this.replica.running(e.hub);
            verdicts.set(e.hub, running);
          }
          if (!running && (await this.replica.release(name, e.epoch))) {
            this.counters.releasedForGoneHubs++;
            log("info", "cluster", "a gone hub's deadman token released", { name, hub: e.hub });
          }
        }
        if (t.takers.length > 0) this.pump(name, t);
        // Waiters are answered from the record too, should the watch have missed a change.
        if (t.waitTaken.length > 0 || t.waitReleased.length > 0) {
          const e = await this.replica.get(name);
          if (e) this.changed(name, e, false);
        }
        // Forgotten when nothing here needs it (its record stays in the cluster, heard of again if it changes).
        const idle = !t.holder && !t.busy && t.trying === 0 && t.takers.length === 0;
        if (idle && !t.entry?.held && t.waitTaken.length === 0 && t.waitReleased.length === 0) {
          this.tokens.delete(name);
        }
      }
    } finally {
      this.sweeping = false;
    }
  }

  /** Answers an op with the record `e` (`mine`: it is `conn`'s take, as `t` knows). */
  private reply(conn: Connection, rid: number, e: TokenEntry | null, t: Local): void {
    const held = e?.held === true;
    const local = held && t.holder?.conn === conn && t.holder.epoch === e!.epoch;
    sendTo(
      conn,
      this.protocol.encode("deadmanState", {
        rid,
        taken: held,
        holder: held ? e!.holder : "",
        mine: local,
        epoch: BigInt(e?.epoch ?? 0),
      }),
    );
  }

  private fail(conn: Connection, rid: number, err: unknown): void {
    const e = isEzipcError(err) ? err : new EzipcError("EZIPC_CLUSTER", String(err));
    sendTo(conn, this.protocol.encode("error", { rid, code: e.code, message: e.message }));
  }
}
