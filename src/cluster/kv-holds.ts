/**
 * Reference counts across the hubs of a cluster (docs/cluster.md, "Reference counts"), in two JetStream
 * key-value buckets:
 *
 * - `PREFIX_holds`: an entry `ENCODEDKEY.HUBID` for each key a hub holds (one pointer or more of its
 *   clients, or a client of it within its reconnect window). Each hub keeps only its own entries: it puts
 *   one when its count of a key leaves 0 and deletes it when the count comes back to 0.
 * - `PREFIX_hubs`: an entry per hub, put again every `heartbeatMs` with its reconnect window. A hub whose
 *   entry is older than `hubTimeoutMs` (at least three of its heartbeats) plus its window is gone: any other hub deletes its holds (the
 *   *sweep*), and the keys that no hub holds any more start their grace on the sweeping hub.
 *
 * A key is deleted from the cluster when its grace ends on a hub that no longer holds it and no other hub
 * that is alive (or gone for less than its reconnect window) holds it. Hub ages are measured against the
 * entries' server-side timestamps, so the hubs' clocks must agree to within `hubTimeoutMs` (NTP).
 *
 * Nothing here is dropped when JetStream fails to answer (a node lost, a leader being elected): a hold's
 * put or delete is made again until it holds (the latest wanted state wins); a sweep releases each key as
 * soon as its hold is deleted, so one that fails half-way loses nothing the next sweep would not see; and a
 * listing of keys from which nothing comes for `attemptMs` fails instead of holding the sweep up for good.
 *
 * A hub that was silent too long (its process stopped, its link to JetStream cut) but lives is swept like a
 * dead one. The sweep and the hub's heartbeat are ordered so that its holds come back:
 *
 * 1. the sweeper reads the revisions of the gone hub's holds;
 * 2. it deletes the hub's entry only if it is still the revision it judged too old (the hub beat since:
 *    not gone, nothing deleted);
 * 3. it deletes each hold only if it is still the revision read in 1.
 *
 * Each heartbeat replaces the hub's entry only if it is still the revision the last one left. When it is
 * not (swept in 2), or the last heartbeat failed, the hub puts its entry anew and every hold it has again:
 * those are newer than what the sweeper read, so 3 leaves them. Keys another hub disposed while this one
 * was silent are invalidated here as everywhere.
 */
import { randomBytes } from "node:crypto";
import type { KV, KvEntry } from "nats";
import { log } from "../log.js";
import type { HoldRegistry } from "../vars/vars-replica.js";
import { decodeKey as decode, encodeKey } from "./kv-vars.js";
import { lostRace } from "./write-serializer.js";

export interface HoldOptions {
  /** This hub's reconnect window: its clients' pointers outlive them this long. */
  reconnectWindowMs: number;
  /** How often a hub says it is alive. Default 1 s. */
  heartbeatMs?: number;
  /** A hub silent this long (plus its reconnect window) is gone. Default 3 s. */
  hubTimeoutMs?: number;
  hubName: string;
  /** Longest wait for one listing of keys (each request's own wait is the buckets' timeout). Default 2 s. */
  attemptMs?: number;
}

/** Longest wait between two attempts of a hold's put or delete. */
const MAX_BACKOFF_MS = 1_000;

/**
 * The keys of `kv` under `filter`, each once.
 *
 * `kv.keys()` is an ordered consumer from the last revision of each key, which goes on with the changes made
 * after it started until it catches up: on a busy bucket (the hubs' heartbeats, under load) it went on for
 * 20 s, naming the same keys again and again, and held the sweep up all that time. Its messages come in
 * stream order, and every key's last revision at the start comes before any later change; so the first key
 * named twice means every key has been named, and the listing ends there. When nothing comes for `ms`, it
 * rejects, where iterating could wait for good on a stream that lost its leader.
 */
export async function keysWithin(kv: KV, filter: string | undefined, ms: number): Promise<string[]> {
  const it = await kv.keys(filter);
  const silent = () => it.stop(new Error(`TIMEOUT: listing keys, nothing came for ${ms} ms`));
  let timer = setTimeout(silent, ms);
  const keys = new Set<string>();
  try {
    for await (const k of it) {
      if (keys.has(k)) break;
      keys.add(k);
      clearTimeout(timer);
      timer = setTimeout(silent, ms);
    }
  } finally {
    clearTimeout(timer);
  }
  return [...keys];
}

interface HubEntry {
  name: string;
  windowMs: number;
  heartbeatMs: number;
}

export class KvHolds implements HoldRegistry {
  readonly hubId = randomBytes(8).toString("hex");
  private readonly heartbeatMs: number;
  private readonly hubTimeoutMs: number;
  private timer: NodeJS.Timeout | null = null;
  private readonly attemptMs: number;
  private orphaned: (key: string) => void = () => {};
  /** Per entry of this hub, the state to make: held (put) or not (delete). Absent: made. */
  private readonly wanted = new Map<string, boolean>();
  /** Entries being made (one loop each, so an entry's puts and deletes are made in order). */
  private readonly making = new Set<string>();
  /** The entries whose put was the last thing made of them (in the cluster, as far as this hub knows). */
  private readonly made = new Set<string>();
  /** The entries this hub holds (wanted held), with their keys: put again after a sweep. */
  private readonly held = new Map<string, string>();
  /** Called once an entry's wanted hold is made, or is no longer wanted ({@link whenHeld}). */
  private readonly waiters = new Map<string, (() => void)[]>();
  /** The revision of this hub's entry its last heartbeat left (0: none, or unknown). */
  private beatRevision = 0;
  private beating = false;
  private stopped = false;
  private sweeping = false;
  private sweeps = 0;
  /** Puts and deletes of holds made again after a failure; sweeps that failed; times every hold was put again. */
  readonly counters = { holdRetries: 0, sweepsFailed: 0, holdsPutAgain: 0 };

  constructor(
    private readonly holds: KV,
    private readonly hubs: KV,
    private readonly o: HoldOptions,
  ) {
    this.heartbeatMs = o.heartbeatMs ?? 1_000;
    this.hubTimeoutMs = o.hubTimeoutMs ?? 3_000;
    this.attemptMs = o.attemptMs ?? 2_000;
  }

  /** Says this hub is alive now and every `heartbeatMs`, sweeping gone hubs each time. */
  async start(): Promise<void> {
    // A first heartbeat that fails (a fresh cluster still electing) is made again at the next tick.
    await this.beat().catch((err: unknown) =>
      log("debug", "cluster", "first heartbeat failed", { error: err }),
    );
    this.timer = setInterval(() => {
      this.beat().catch((err: unknown) => log("warn", "cluster", "heartbeat failed", { error: err }));
      this.sweep().catch((err: unknown) => {
        this.counters.sweepsFailed++;
        log("warn", "cluster", "sweep failed (made again at the next heartbeat)", { error: err });
      });
    }, this.heartbeatMs);
    this.timer.unref();
  }

  stop(): void {
    this.stopped = true;
    for (const entry of [...this.waiters.keys()]) this.settle(entry);
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  onOrphaned(fn: (key: string) => void): void {
    this.orphaned = fn;
  }

  /** This hub's hold entry on `key`. */
  private entryOf(key: string): string {
    return `${encodeKey(key)}.${this.hubId}`;
  }

  setHeld(key: string, held: boolean): void {
    const entry = this.entryOf(key);
    if (held) this.held.set(entry, key);
    else this.held.delete(entry);
    // Put already, and nothing else wanted since (a hold put ahead of an allocate's create): nothing to do.
    if (held && this.made.has(entry) && !this.wanted.has(entry)) return;
    this.want(entry, key, held);
  }

  private want(entry: string, key: string, held: boolean): void {
    this.wanted.set(entry, held);
    if (!held) this.settle(entry);
    if (!this.making.has(entry)) void this.make(entry, key);
  }

  whenHeld(key: string): Promise<void> | null {
    const entry = this.entryOf(key);
    if (this.wanted.get(entry) !== true || this.stopped) return null;
    return new Promise((resolve) => {
      const list = this.waiters.get(entry);
      if (list) list.push(resolve);
      else this.waiters.set(entry, [resolve]);
    });
  }

  private settle(entry: string): void {
    const list = this.waiters.get(entry);
    if (!list) return;
    this.waiters.delete(entry);
    for (const resolve of list) resolve();
  }

  /** Makes `entry` what is wanted of it, again after each failure, until it holds or the hub stops. */
  private async make(entry: string, key: string): Promise<void> {
    this.making.add(entry);
    try {
      for (let failures = 0; !this.stopped; ) {
        const held = this.wanted.get(entry);
        if (held === undefined) return;
        try {
          if (held) await this.holds.put(entry, new Uint8Array(0));
          else await this.holds.delete(entry);
          if (held) this.made.add(entry);
          else this.made.delete(entry);
          // Wanted again meanwhile (the other way, or the same): made once more, in order.
          if (this.wanted.get(entry) === held) {
            this.wanted.delete(entry);
            if (held) this.settle(entry);
          }
          failures = 0;
        } catch (err) {
          if (this.stopped) return;
          this.counters.holdRetries++;
          log("warn", "cluster", "updating a hold failed: made again", { key, held, error: err });
          await new Promise((r) => setTimeout(r, Math.min(MAX_BACKOFF_MS, 100 * 2 ** failures++)));
        }
      }
    } finally {
      this.making.delete(entry);
    }
  }

  async heldElsewhere(key: string): Promise<boolean> {
    const prefix = `${encodeKey(key)}.`;
    const holders: string[] = [];
    for (const k of await keysWithin(this.holds, `${prefix}*`, this.attemptMs)) {
      const hub = k.slice(prefix.length);
      if (hub !== this.hubId) holders.push(hub);
    }
    for (const hub of holders) if (await this.alive(hub)) return true;
    return false;
  }

  /**
   * Puts this hub's entry: in place of the revision the last heartbeat left, or, when that is gone (another
   * hub swept this one) or unknown (the last heartbeat failed), anew, putting every hold again.
   */
  private async beat(): Promise<void> {
    if (this.beating) return;
    this.beating = true;
    try {
      const e: HubEntry = {
        name: this.o.hubName,
        windowMs: this.o.reconnectWindowMs,
        heartbeatMs: this.heartbeatMs,
      };
      const value = new TextEncoder().encode(JSON.stringify(e));
      if (this.beatRevision !== 0) {
        try {
          this.beatRevision = await this.hubs.update(this.hubId, value, this.beatRevision);
          return;
        } catch (err) {
          this.beatRevision = 0;
          log("warn", "cluster", "this hub's entry changed or did not answer: its holds are put again", {
            error: err,
          });
        }
      }
      this.beatRevision = await this.hubs.put(this.hubId, value);
      // Swept, or unknown (a heartbeat failed; a hub with no entry yet may have been swept too): any hold
      // may have been deleted.
      this.made.clear();
      if (this.held.size === 0) return;
      this.counters.holdsPutAgain++;
      for (const [entry, key] of this.held) this.want(entry, key, true);
    } finally {
      this.beating = false;
    }
  }

  /** Whether `hub` beats: its last heartbeat is younger than the hub timeout (and three of its beats). */
  async running(hub: string): Promise<boolean> {
    return this.heard(await this.hubs.get(hub), false);
  }

  /** Whether `hub` is alive or gone for less than its reconnect window. */
  private async alive(hub: string): Promise<boolean> {
    return this.heard(await this.hubs.get(hub), true);
  }

  /**
   * Whether the hub of entry `e` was heard of lately: silent for less than our timeout and than three of its
   * own heartbeats (`withWindow`: plus its reconnect window). No entry, or a deleted one: no.
   */
  private heard(e: KvEntry | null, withWindow: boolean): boolean {
    if (e?.operation !== "PUT") return false;
    let windowMs = 0;
    let heartbeatMs = 0;
    try {
      ({ windowMs, heartbeatMs } = JSON.parse(new TextDecoder().decode(e.value)) as HubEntry);
    } catch {
      // not ours: no window
    }
    const bound = Math.max(this.hubTimeoutMs, 3 * heartbeatMs) + (withWindow ? windowMs : 0);
    return Date.now() - e.created.getTime() < bound;
  }

  /**
   * Deletes the entries and holds of hubs that are gone (no entry, or one too old), in the order the top of
   * this file gives, and tells of each key as soon as its hold is deleted (a sweep that fails half-way has
   * lost nothing: what is left is found by the next one).
   */
  private async sweep(): Promise<void> {
    if (this.sweeping) return;
    this.sweeping = true;
    try {
      // Hubs with an entry too old; every 30th sweep also hubs with holds and no entry at all (their first
      // heartbeat failed, or a sweep stopped half-way), without listing every hold each heartbeat.
      const entries = new Map<string, KvEntry | null>();
      for (const hub of await keysWithin(this.hubs, undefined, this.attemptMs)) {
        if (hub === this.hubId) continue;
        const e = await this.hubs.get(hub);
        entries.set(hub, e);
      }
      const gone = [...entries].filter(([, e]) => !this.heard(e, true)).map(([hub]) => hub);
      if (gone.length === 0 && this.sweeps++ % 30 !== 0) return;
      const holdsOf = new Map<string, string[]>(gone.map((hub) => [hub, []]));
      for (const k of await keysWithin(this.holds, undefined, this.attemptMs)) {
        const hub = k.slice(k.lastIndexOf(".") + 1);
        if (hub === this.hubId || (entries.has(hub) && !gone.includes(hub))) continue;
        const list = holdsOf.get(hub);
        if (list) list.push(k);
        else holdsOf.set(hub, [k]);
      }
      for (const [hub, holds] of holdsOf) {
        // Read again: a hub listed without an entry may have put its first since.
        const entry = await this.hubs.get(hub);
        if (this.heard(entry, true)) continue;
        // 1. The revisions of its holds, before its entry goes.
        const revisions: [string, number][] = [];
        for (const k of holds) {
          const h = await this.holds.get(k);
          if (h?.operation === "PUT") revisions.push([k, h.revision]);
        }
        // 2. Its entry, if it did not beat since.
        if (entry?.operation === "PUT") {
          try {
            await this.hubs.delete(hub, { previousSeq: entry.revision });
          } catch (err) {
            if (lostRace(err)) continue; // it beat: not gone
            throw err;
          }
        }
        // 3. Each hold, if not put again since.
        for (const [k, revision] of revisions) {
          try {
            await this.holds.delete(k, { previousSeq: revision });
          } catch (err) {
            if (lostRace(err)) continue; // put again by its hub, back
            throw err;
          }
          const key = decode(k.slice(0, k.lastIndexOf(".")));
          if (key !== null) {
            log("info", "cluster", "a gone hub's hold released", { key, hub });
            this.orphaned(key);
          }
        }
      }
    } finally {
      this.sweeping = false;
    }
  }
}
