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
import type { JetStreamManager, KV, KvEntry } from "nats";
import { log } from "../log.js";
import type { ReplicaChange, ReplicaEntry, ReplicaRecord, VarsReplica } from "../vars/vars-replica.js";
import { clusterError } from "./errors.js";
import { BucketFollower } from "./kv-follow.js";
import type { KvHolds } from "./kv-holds.js";
import type { WriteSerializer } from "./write-serializer.js";

const FORMAT = 1;

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
   * Follows the bucket from the current entries on (kv-follow.ts: through failovers and stalls, each
   * revision once, in order). Resolves once the current entries have been reported.
   */
  watch(onChange: (change: ReplicaChange) => void): Promise<void> {
    this.follower = new BucketFollower({
      kv: this.kv,
      jsm: this.jsm,
      streamName: this.streamName,
      owns: () => true,
      newest: () => this.lastRevision(),
      what: "vars",
      onEntry: (e) => {
        if (e.key.startsWith("dm.")) {
          // A deadman token (kv-tokens.ts, which follows them itself): how far they go.
          this.newestToken = e.revision;
          return;
        }
        if (e.operation !== "PUT") {
          const key = decodeKey(e.key);
          if (key !== null) onChange({ key, version: e.revision, deleted: true });
          return;
        }
        const entry = toEntry(e);
        if (entry) onChange(entry);
        else log("warn", "cluster", "an entry that is not ezipc's in the vars bucket", { key: e.key });
      },
    });
    return this.follower.start();
  }

  private follower: BucketFollower | null = null;
  /** The newest revision of a deadman token this watch went past (kv-tokens.ts checks its own watch on it). */
  newestToken = 0;

  /** The bucket's newest revision (its stream's last sequence). */
  private async lastRevision(): Promise<number> {
    const info = await this.jsm.streams.info(this.streamName);
    return info.state.last_seq;
  }

  /** Stops the watch. */
  stop(): void {
    this.follower?.stop();
    this.holds.stop();
  }
}
