/**
 * Deadman tokens of a cluster in its key-value bucket (docs/cluster.md): entry `dm.ENCODED` (kv-vars.ts's
 * encoding; shared variables' entries have no dot, so the two never meet), value
 * `u8 format (1) · u8 held · u8 hub id length · hub id · holder (UTF-8)`. Takes and releases are
 * compare-and-writes made in turn with the other hubs' (write-serializer.ts), so two hubs never both take
 * one token; the entry's revision is the take's epoch.
 */
import type { JetStreamManager, KV, KvEntry } from "nats";
import type { TokenEntry, TokenReplica } from "../deadman/token-replica.js";
import { clusterError } from "./errors.js";
import { BucketFollower, type FollowedEntry } from "./kv-follow.js";
import type { KvHolds } from "./kv-holds.js";
import { decodeKey, encodeKey } from "./kv-vars.js";
import type { WriteSerializer } from "./write-serializer.js";

const FORMAT = 1;
const PREFIX = "dm.";

function encodeEntry(held: boolean, hub: string, holder: string): Buffer {
  const h = Buffer.from(hub, "latin1");
  return Buffer.concat([Buffer.from([FORMAT, held ? 1 : 0, h.length]), h, Buffer.from(holder, "utf8")]);
}

function decodeEntry(e: FollowedEntry): TokenEntry | null {
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
  private follower: BucketFollower | null = null;

  constructor(
    private readonly kv: KV,
    private readonly writes: WriteSerializer,
    private readonly holds: KvHolds,
    private readonly jsm: JetStreamManager,
    /** The bucket's stream. */
    private readonly streamName: string,
    /** The newest token revision the vars watch went past (kv-vars.ts). */
    private readonly newestToken: () => number,
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

  /**
   * Follows `dm.*` from the current entries on (kv-follow.ts: through failovers, each revision once, in
   * order). Its stalls are judged against the vars watch, which goes past the tokens' revisions too: behind
   * the newest token revision that watch saw, for two checks, this one is made again. Resolves once the
   * current tokens have been reported.
   */
  watch(onChange: (name: string, entry: TokenEntry) => void): Promise<void> {
    this.follower = new BucketFollower({
      kv: this.kv,
      jsm: this.jsm,
      streamName: this.streamName,
      key: `${PREFIX}*`,
      owns: (k) => k.startsWith(PREFIX),
      newest: () => Promise.resolve(this.newestToken()),
      what: "deadman",
      onEntry: (e) => {
        const name = decodeKey(e.key.slice(PREFIX.length));
        const entry = decodeEntry(e);
        if (name !== null && entry) onChange(name, entry);
      },
    });
    return this.follower.start();
  }

  running(hub: string): Promise<boolean> {
    return this.holds.running(hub);
  }

  stop(): void {
    this.follower?.stop();
  }
}
