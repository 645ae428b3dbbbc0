/**
 * Shared variables of a cluster in a NATS JetStream key-value bucket (docs/cluster.md): one entry per key,
 * whose revision is the key's version everywhere. Compare-and-write is a publish with the expected last
 * revision, made in turn with the other hubs' (write-serializer.ts), so versions are given out by
 * JetStream's stream sequence — once, cluster-wide — and a write acknowledged by it is replicated to a
 * quorum of NATS nodes.
 *
 * Entry value: `u8 format (1) · u8 kind · u8 flags (bit 0 persistent) · data`. Entry key: the ezipc key
 * with every byte outside `[A-Za-z0-9_-]` written `=XX` (hex), so any ezipc key is a valid bucket key and
 * two keys never share one. Entries `dm.…` (with a dot, which no encoded key has) are deadman tokens
 * (kv-tokens.ts).
 */
import type { JetStreamManager, KV, KvEntry, StoredMsg } from "nats";
import { log } from "../log.js";
import type { ReplicaChange, ReplicaEntry, ReplicaRecord, VarsReplica } from "../vars/vars-replica.js";
import { clusterError } from "./errors.js";
import type { KvHolds } from "./kv-holds.js";
import type { WriteSerializer } from "./write-serializer.js";

const FORMAT = 1;
/** How often the watch is checked for a stall (two checks behind in a row restart it). */
const STALL_CHECK_MS = 1_000;

/** An ezipc key as a bucket key. */
export function encodeKey(key: string): string {
  let out = "";
  for (const byte of Buffer.from(key, "utf8")) {
    const c = String.fromCharCode(byte);
    out += /[A-Za-z0-9_-]/.test(c) ? c : `=${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

/** A bucket key back to the ezipc key (null if it is not one {@link encodeKey} makes). */
export function decodeKey(encoded: string): string | null {
  const bytes: number[] = [];
  for (let i = 0; i < encoded.length; i++) {
    const c = encoded[i]!;
    if (c === "=") {
      const hex = encoded.slice(i + 1, i + 3);
      if (!/^[0-9A-F]{2}$/.test(hex)) return null;
      bytes.push(Number.parseInt(hex, 16));
      i += 2;
    } else if (/[A-Za-z0-9_-]/.test(c)) bytes.push(c.charCodeAt(0));
    else return null;
  }
  return Buffer.from(bytes).toString("utf8");
}

function encodeRecord(r: ReplicaRecord): Buffer {
  const out = Buffer.allocUnsafe(3 + r.data.length);
  out[0] = FORMAT;
  out[1] = r.kind;
  out[2] = r.persistent ? 1 : 0;
  out.set(r.data, 3);
  return out;
}

function toEntry(e: Pick<KvEntry, "key" | "value" | "revision">): ReplicaEntry | null {
  const key = decodeKey(e.key);
  const v = e.value;
  if (key === null || v.length < 3 || v[0] !== FORMAT) return null;
  return {
    key,
    version: e.revision,
    kind: v[1]!,
    persistent: (v[2]! & 1) === 1,
    data: Buffer.from(v.buffer, v.byteOffset + 3, v.length - 3),
  };
}

export class KvVars implements VarsReplica {
  private stopped = false;

  constructor(
    private readonly kv: KV,
    private readonly writes: WriteSerializer,
    /** Who holds which key (kv-holds.ts). */
    readonly holds: KvHolds,
    private readonly jsm: JetStreamManager,
    /** The bucket's stream. */
    private readonly streamName: string,
  ) {}

  async create(key: string, record: ReplicaRecord): Promise<{ version: number } | { exists: ReplicaEntry }> {
    for (let attempt = 0; attempt < 10; attempt++) {
      const r = await this.writes.write({
        op: "create",
        bucketKey: encodeKey(key),
        expect: 0,
        value: encodeRecord(record),
      });
      if ("version" in r) return r;
      const now = await this.get(key);
      if (now) return { exists: now };
      // Deleted between the two: create again.
    }
    throw clusterError(`creating ${key}`, new Error("it kept being created and deleted by other hubs"));
  }

  async update(
    key: string,
    record: ReplicaRecord,
    expect: number,
  ): Promise<{ version: number } | { conflict: ReplicaEntry | null }> {
    const r = await this.writes.write({
      op: "update",
      bucketKey: encodeKey(key),
      expect,
      value: encodeRecord(record),
    });
    return "version" in r ? r : { conflict: await this.get(key) };
  }

  async get(key: string): Promise<ReplicaEntry | null> {
    let e: KvEntry | null;
    try {
      e = await this.kv.get(encodeKey(key));
    } catch (err) {
      throw clusterError(`reading ${key}`, err);
    }
    return e && e.operation === "PUT" ? toEntry(e) : null;
  }

  async delete(key: string): Promise<void> {
    try {
      await this.kv.delete(encodeKey(key));
    } catch (err) {
      throw clusterError(`deleting ${key}`, err);
    }
  }

  /**
   * Watches the bucket from the current entries on. If the watch ends (a NATS node failed over), it is
   * started again from the revision after the last one reported, so no change is missed or reported twice.
   */
  async watch(onChange: (change: ReplicaChange) => void): Promise<void> {
    let last = 0;
    let initialized!: () => void;
    const ready = new Promise<void>((r) => (initialized = r));
    let current: { stop(): void } | null = null;
    /** Applies one revision of the bucket (in order; one already applied is ignored). */
    const apply = (e: Pick<KvEntry, "key" | "value" | "revision" | "operation">): void => {
      if (e.revision <= last) return;
      last = e.revision;
      if (e.key.startsWith("dm.")) return; // a deadman token (kv-tokens.ts)
      if (e.operation !== "PUT") {
        const key = decodeKey(e.key);
        if (key !== null) onChange({ key, version: e.revision, deleted: true });
        return;
      }
      const entry = toEntry(e);
      if (entry) onChange(entry);
      else log("warn", "cluster", "an entry that is not ezipc's in the vars bucket", { key: e.key });
    };
    /**
     * Reads the revisions after `last` one by one from the bucket's stream (up to 1,000), for a watch that
     * stays silent after it was made again (a consumer made while a NATS node fails can).
     */
    const readOn = async (newest: number): Promise<void> => {
      const prefix = `$KV.${this.streamName.slice("KV_".length)}.`;
      for (let seq = last + 1, n = 0; seq <= newest && n < 1_000 && !this.stopped; seq++, n++) {
        let m: StoredMsg;
        try {
          m = await this.jsm.streams.getMessage(this.streamName, { seq });
        } catch {
          continue; // replaced since (history 1), or deleted: a later revision of that key follows
        }
        const op = m.header?.get("KV-Operation");
        apply({
          key: m.subject.slice(prefix.length),
          value: m.data,
          revision: m.seq,
          operation: (op === "DEL" || op === "PURGE" ? op : "PUT") as KvEntry["operation"],
        });
      }
    };
    /** A {@link readOn} in progress: the watch is made again after it. */
    let reading: Promise<void> | null = null;
    const run = async (): Promise<void> => {
      while (!this.stopped) {
        try {
          if (reading) await reading;
          const it = await this.kv.watch({
            ...(last > 0 ? { resumeFromRevision: last + 1 } : {}),
            initializedFn: () => initialized(),
          });
          current = it;
          if (last > 0) initialized();
          for await (const e of it) {
            if (this.stopped) break;
            apply(e);
          }
        } catch (err) {
          if (this.stopped) return;
          log("warn", "cluster", "vars watch ended; watching again", { error: err });
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    };
    void run();
    await ready;
    // A watch whose NATS node stopped can stall without ending: if the bucket has moved on and this watch
    // has not for two checks in a row, it is stopped and watched again from the last revision applied.
    let seen = last;
    let behind = 0;
    this.stallCheck = setInterval(() => {
      this.lastRevision()
        .then((newest) => {
          behind = newest > last && last === seen ? behind + 1 : 0;
          seen = last;
          if (behind >= 2) {
            log("warn", "cluster", "vars watch stalled; reading on and watching again", { last, newest });
            behind = 0;
            reading = readOn(newest)
              .catch((err: unknown) =>
                log("warn", "cluster", "reading a stalled watch's revisions failed", { error: err }),
              )
              .finally(() => {
                reading = null;
              });
            current?.stop();
          }
        })
        .catch(() => {});
    }, STALL_CHECK_MS);
    this.stallCheck.unref();
  }

  private stallCheck: NodeJS.Timeout | null = null;

  /** The bucket's newest revision (its stream's last sequence). */
  private async lastRevision(): Promise<number> {
    const info = await this.jsm.streams.info(this.streamName);
    return info.state.last_seq;
  }

  /** Stops the watch. */
  stop(): void {
    this.stopped = true;
    if (this.stallCheck) clearInterval(this.stallCheck);
    this.holds.stop();
  }
}
