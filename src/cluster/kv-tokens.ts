/**
 * Deadman tokens of a cluster in its key-value bucket (docs/cluster.md): entry `dm.ENCODED` (kv-vars.ts's
 * encoding; shared variables' entries have no dot, so the two never meet), value
 * `u8 format (1) · u8 held · u8 hub id length · hub id · holder (UTF-8)`. Takes and releases are
 * compare-and-writes made in turn with the other hubs' (write-serializer.ts), so two hubs never both take
 * one token; the entry's revision is the take's epoch.
 */
import type { KV, KvEntry } from "nats";
import type { TokenEntry, TokenReplica } from "../deadman/token-replica.js";
import { log } from "../log.js";
import { clusterError } from "./errors.js";
import type { KvHolds } from "./kv-holds.js";
import { decodeKey, encodeKey } from "./kv-vars.js";
import type { WriteSerializer } from "./write-serializer.js";

const FORMAT = 1;
const PREFIX = "dm.";

function encodeEntry(held: boolean, hub: string, holder: string): Buffer {
  const h = Buffer.from(hub, "latin1");
  return Buffer.concat([Buffer.from([FORMAT, held ? 1 : 0, h.length]), h, Buffer.from(holder, "utf8")]);
}

function decodeEntry(e: KvEntry): TokenEntry | null {
  if (e.operation !== "PUT") return null;
  const v = Buffer.from(e.value.buffer, e.value.byteOffset, e.value.length);
  if (v.length < 3 || v[0] !== FORMAT || v.length < 3 + v[2]!) return null;
  return {
    held: v[1] === 1,
    hub: v.subarray(3, 3 + v[2]!).toString("latin1"),
    holder: v.subarray(3 + v[2]!).toString("utf8"),
    epoch: e.revision,
  };
}

export class KvTokens implements TokenReplica {
  private stopped = false;
  private current: { stop(): void } | null = null;

  constructor(
    private readonly kv: KV,
    private readonly writes: WriteSerializer,
    private readonly holds: KvHolds,
  ) {}

  get hubId(): string {
    return this.holds.hubId;
  }

  async get(name: string): Promise<TokenEntry | null> {
    let e: KvEntry | null;
    try {
      e = await this.kv.get(PREFIX + encodeKey(name));
    } catch (err) {
      throw clusterError(`reading deadman token ${name}`, err);
    }
    return e ? decodeEntry(e) : null;
  }

  async take(
    name: string,
    holder: string,
    current: TokenEntry | null,
  ): Promise<{ epoch: number } | { lost: true }> {
    const r = await this.writes.write({
      op: current ? "update" : "create",
      bucketKey: PREFIX + encodeKey(name),
      expect: current?.epoch ?? 0,
      value: encodeEntry(true, this.hubId, holder),
    });
    return "version" in r ? { epoch: r.version } : { lost: true };
  }

  async release(name: string, epoch: number): Promise<boolean> {
    const r = await this.writes.write({
      op: "update",
      bucketKey: PREFIX + encodeKey(name),
      expect: epoch,
      value: encodeEntry(false, "", ""),
    });
    return "version" in r;
  }

  /** Watches `dm.*` from the current entries on; a watch that ends is started again after the last revision. */
  async watch(onChange: (name: string, entry: TokenEntry) => void): Promise<void> {
    let last = 0;
    let initialized!: () => void;
    const ready = new Promise<void>((r) => (initialized = r));
    const run = async (): Promise<void> => {
      while (!this.stopped) {
        try {
          const it = await this.kv.watch({
            key: `${PREFIX}*`,
            ...(last > 0 ? { resumeFromRevision: last + 1 } : {}),
            initializedFn: () => initialized(),
          });
          this.current = it;
          if (last > 0) initialized();
          for await (const e of it) {
            if (this.stopped) break;
            if (e.revision <= last) continue;
            last = e.revision;
            const name = decodeKey(e.key.slice(PREFIX.length));
            const entry = decodeEntry(e);
            if (name !== null && entry) onChange(name, entry);
          }
        } catch (err) {
          if (this.stopped) return;
          log("warn", "cluster", "deadman watch ended; watching again", { error: err });
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    };
    void run();
    await ready;
  }

  running(hub: string): Promise<boolean> {
    return this.holds.running(hub);
  }

  stop(): void {
    this.stopped = true;
    this.current?.stop();
  }
}
