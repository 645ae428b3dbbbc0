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
 */
import { randomBytes } from "node:crypto";
import type { KV } from "nats";
import { log } from "../log.js";
import type { HoldRegistry } from "../vars/vars-replica.js";
import { decodeKey as decode, encodeKey } from "./kv-vars.js";

export interface HoldOptions {
  /** This hub's reconnect window: its clients' pointers outlive them this long. */
  reconnectWindowMs: number;
  /** How often a hub says it is alive. Default 1 s. */
  heartbeatMs?: number;
  /** A hub silent this long (plus its reconnect window) is gone. Default 3 s. */
  hubTimeoutMs?: number;
  hubName: string;
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
  private orphaned: (key: string) => void = () => {};
  /** Per key, the last put or delete of this hub's entry (they are made in order). */
  private readonly pending = new Map<string, Promise<void>>();
  private sweeping = false;

  constructor(
    private readonly holds: KV,
    private readonly hubs: KV,
    private readonly o: HoldOptions,
  ) {
    this.heartbeatMs = o.heartbeatMs ?? 1_000;
    this.hubTimeoutMs = o.hubTimeoutMs ?? 3_000;
  }

  /** Says this hub is alive now and every `heartbeatMs`, sweeping gone hubs each time. */
  async start(): Promise<void> {
    // A first heartbeat that fails (a fresh cluster still electing) is made again at the next tick.
    await this.beat().catch((err: unknown) =>
      log("debug", "cluster", "first heartbeat failed", { error: err }),
    );
    this.timer = setInterval(() => {
      this.beat().catch((err: unknown) => log("warn", "cluster", "heartbeat failed", { error: err }));
      this.sweep().catch((err: unknown) => log("warn", "cluster", "sweep failed", { error: err }));
    }, this.heartbeatMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  onOrphaned(fn: (key: string) => void): void {
    this.orphaned = fn;
  }

  setHeld(key: string, held: boolean): void {
    const entry = `${encodeKey(key)}.${this.hubId}`;
    const before = this.pending.get(entry) ?? Promise.resolve();
    const next = before
      .then(() => (held ? this.holds.put(entry, new Uint8Array(0)).then(() => {}) : this.holds.delete(entry)))
      .catch((err: unknown) => log("warn", "cluster", "updating a hold failed", { key, held, error: err }));
    this.pending.set(entry, next);
    void next.then(() => {
      if (this.pending.get(entry) === next) this.pending.delete(entry);
    });
  }

  async heldElsewhere(key: string): Promise<boolean> {
    const prefix = `${encodeKey(key)}.`;
    const holders: string[] = [];
    for await (const k of await this.holds.keys(`${prefix}*`)) {
      const hub = k.slice(prefix.length);
      if (hub !== this.hubId) holders.push(hub);
    }
    for (const hub of holders) if (await this.alive(hub)) return true;
    return false;
  }

  private async beat(): Promise<void> {
    const e: HubEntry = {
      name: this.o.hubName,
      windowMs: this.o.reconnectWindowMs,
      heartbeatMs: this.heartbeatMs,
    };
    await this.hubs.put(this.hubId, new TextEncoder().encode(JSON.stringify(e)));
  }

  /** Whether `hub` beats: its last heartbeat is younger than the hub timeout (and three of its beats). */
  async running(hub: string): Promise<boolean> {
    const e = await this.hubs.get(hub);
    if (e?.operation !== "PUT") return false;
    let heartbeatMs = 0;
    try {
      ({ heartbeatMs } = JSON.parse(new TextDecoder().decode(e.value)) as HubEntry);
    } catch {
      // not ours
    }
    return Date.now() - e.created.getTime() < Math.max(this.hubTimeoutMs, 3 * heartbeatMs);
  }

  /** Whether `hub` is alive or gone for less than its reconnect window. */
  private async alive(hub: string): Promise<boolean> {
    const e = await this.hubs.get(hub);
    if (e?.operation !== "PUT") return false;
    let windowMs = 0;
    let heartbeatMs = 0;
    try {
      ({ windowMs, heartbeatMs } = JSON.parse(new TextDecoder().decode(e.value)) as HubEntry);
    } catch {
      // not ours: no window
    }
    // Silent for longer than our timeout — and than three of its own heartbeats — plus its window: gone.
    return Date.now() - e.created.getTime() < Math.max(this.hubTimeoutMs, 3 * heartbeatMs) + windowMs;
  }

  /** Deletes the holds of hubs that are gone; tells of the keys no hub holds any more. */
  private async sweep(): Promise<void> {
    if (this.sweeping) return;
    this.sweeping = true;
    try {
      const gone: string[] = [];
      for await (const hub of await this.hubs.keys()) {
        if (hub !== this.hubId && !(await this.alive(hub))) gone.push(hub);
      }
      if (gone.length === 0) return;
      const released = new Set<string>();
      for await (const k of await this.holds.keys()) {
        const dot = k.lastIndexOf(".");
        if (!gone.includes(k.slice(dot + 1))) continue;
        await this.holds.delete(k);
        released.add(k.slice(0, dot));
      }
      for (const hub of gone) await this.hubs.delete(hub);
      for (const encoded of released) {
        const key = decode(encoded);
        if (key !== null) {
          log("info", "cluster", "a gone hub's holds released", { key });
          this.orphaned(key);
        }
      }
    } finally {
      this.sweeping = false;
    }
  }
}
