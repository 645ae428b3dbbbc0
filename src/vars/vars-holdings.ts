/**
 * Who holds which shared variable, and the pushing of new values to them: per block, the clients with
 * pointers on it and their counts per policy ({@link Holding}); per client, its holdings and the poll
 * updates it is owed ({@link PeerVars}). A new value goes to `poll` holders at once, or, while a client's
 * queue is over its high-water mark, is coalesced (the holding is marked dirty and the latest value sent
 * once the queue drains); `lazy` holders get one `stale` notice until they read. The reference counts in
 * the block table are the caller's (vars-hub.ts).
 */
import type { Protocol } from "../service/protocol.js";
import { sendTo } from "../transport/send.js";
import type { Connection } from "../transport/types.js";
import type { Block } from "./block-table.js";

/** Pointer policies (indexes of a holding's counts). */
export const REQUEST = 0;
export const LAZY = 1;
export const POLL = 2;

/** One client's pointers on one block. */
export interface Holding {
  readonly block: Block;
  /** Pointers per policy: request, lazy, poll. */
  readonly counts: [number, number, number];
  /** Highest policy with a pointer. */
  policy: number;
  /** A `stale` was sent and the client has not read since (lazy). */
  staleSent: boolean;
  /** An update is owed (poll, coalesced while the client's queue was full). */
  dirty: boolean;
}

export function policyOf(counts: readonly number[]): number {
  return counts[POLL]! > 0 ? POLL : counts[LAZY]! > 0 ? LAZY : counts[REQUEST]! > 0 ? REQUEST : -1;
}

/** One client's shared-variable state, kept by the hub for it across a reconnect window. */
export class PeerVars {
  readonly holdings = new Map<number, Holding>();
  pointers = 0;
  /** Poll holdings owed an update. */
  readonly dirty = new Set<Holding>();
  congested = false;
  /** Block ids resynchronised since the last reconnect (null outside a resync). */
  resynced: Set<number> | null = null;
  /** The client is gone for good (an answer that comes later from the cluster adds no pointer). */
  gone = false;
  /**
   * Until its first resync is done: the client comes back from an earlier run of the hub (or another hub),
   * so the keys it resynchronises that this run did not keep (not persistent) are other keys of the same name.
   */
  fromEarlierRun = false;
}

/** A client as this part sees it. */
export interface VarsPeer {
  readonly id: string;
  readonly name: string;
  readonly conn: Connection | null;
  readonly vars: PeerVars;
}

/** The holders of every block, and the propagation of new values to them. */
export class VarsHolders {
  private readonly byBlock = new Map<Block, Map<VarsPeer, Holding>>();
  /** Pointers over all clients (the hub-wide bound). */
  pointers = 0;

  constructor(
    private readonly protocol: Protocol,
    private readonly counters: { updatesSent: number; updatesCoalesced: number; staleSent: number },
  ) {}

  /** The clients holding `block`, and their holdings. */
  of(block: Block): ReadonlyMap<VarsPeer, Holding> | undefined {
    return this.byBlock.get(block);
  }

  /**
   * Adds pointers to a client's holding of `block` (created if need be): `n` of `policy`, or the given
   * per-policy `counts`.
   */
  add(client: VarsPeer, block: Block, policy: number, n: number, counts?: readonly number[]): void {
    let h = client.vars.holdings.get(block.id);
    if (!h) {
      h = { block, counts: [0, 0, 0], policy: -1, staleSent: false, dirty: false };
      client.vars.holdings.set(block.id, h);
      let m = this.byBlock.get(block);
      if (!m) {
        m = new Map();
        this.byBlock.set(block, m);
      }
      m.set(client, h);
    }
    if (counts) {
      for (let p = 0; p < 3; p++) {
        h.counts[p]! += counts[p]!;
        this.count(client, counts[p]!);
      }
    } else {
      h.counts[policy]! += n;
      this.count(client, n);
    }
    h.policy = policyOf(h.counts);
    h.staleSent = false;
  }

  /** Counts `n` pointers more (or fewer) for `client`, and in all. */
  count(client: VarsPeer, n: number): void {
    client.vars.pointers += n;
    this.pointers += n;
  }

  /** Removes a holding whose counts are all 0. */
  remove(client: VarsPeer, h: Holding): void {
    client.vars.holdings.delete(h.block.id);
    client.vars.dirty.delete(h);
    const m = this.byBlock.get(h.block);
    m?.delete(client);
    if (m && m.size === 0) this.byBlock.delete(h.block);
  }

  /** Tells a block's holders of its new value (poll: the value; lazy: a stale notice). */
  notify(b: Block): void {
    const holders = this.byBlock.get(b);
    if (!holders) return;
    let update: Uint8Array | undefined;
    let stale: Uint8Array | undefined;
    for (const [client, h] of holders) {
      const conn = client.conn;
      if (h.policy === POLL) {
        if (!conn || client.vars.congested || conn.state !== "open") {
          if (!h.dirty) {
            h.dirty = true;
            client.vars.dirty.add(h);
          }
          this.counters.updatesCoalesced++;
          continue;
        }
        update ??= this.protocol.encode("update", { id: b.id, version: BigInt(b.version), data: b.data });
        this.counters.updatesSent++;
        if (!sendTo(conn, update)) this.congest(client, conn);
      } else if (h.policy === LAZY && !h.staleSent) {
        h.staleSent = true;
        if (conn?.state !== "open") continue;
        stale ??= this.protocol.encode("stale", { id: b.id, version: BigInt(b.version) });
        this.counters.staleSent++;
        sendTo(conn, stale);
      }
    }
  }

  /** The client's queue is full: coalesce its updates until it drains. */
  private congest(client: VarsPeer, conn: Connection): void {
    if (client.vars.congested) return;
    client.vars.congested = true;
    conn.drain().then(
      () => this.flushDirty(client, conn),
      () => {},
    );
  }

  private flushDirty(client: VarsPeer, conn: Connection): void {
    if (client.conn !== conn) return;
    client.vars.congested = false;
    for (const h of client.vars.dirty) {
      if (conn.state !== "open") return;
      client.vars.dirty.delete(h);
      h.dirty = false;
      const b = h.block;
      this.counters.updatesSent++;
      const ok = sendTo(
        conn,
        this.protocol.encode("update", { id: b.id, version: BigInt(b.version), data: b.data }),
      );
      if (!ok) {
        this.congest(client, conn);
        return;
      }
    }
  }
}
