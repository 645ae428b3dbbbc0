/**
 * The hub as a bridge to a shared-memory namespace: topics and shared variables of `shm:///NAME` appear on
 * the hub for network clients, and what network clients publish or write on those names appears in shared
 * memory. One hub client and one shm:// client, and between them:
 *
 * - **Topics**, each way, one subscription per topic and side (`iter: next`, so a slow side holds the
 *   other's publishers as any subscriber does). A forwarded message keeps its payload and headers and gets
 *   `ezipc-bridged` (`shm` or `hub`: where it came from), `ezipc-bridged-seq` (its seq there) and
 *   `ezipc-origin` (its publisher there), as the limit of 64 headers allows, in that order. A message that
 *   carries `ezipc-bridged` is never forwarded: loops are impossible by construction. One that has no room
 *   for it, or that the other side cannot take, is left out (counted, logged). Order per topic is kept each
 *   way.
 * - **Outages**: a side that cannot take forwards now (the hub's connection is down; shared memory has no
 *   room) stops the followers of the other side; they follow again from their cursors (the last forward
 *   confirmed) once it can: at least once, nothing lost within the histories.
 * - **Resuming**: the last seq forwarded from each side of each topic is checkpointed (once the other side
 *   confirmed it: a hub request answered after it, or a shm:// drain) in the namespace, `.bridge.NAME.json`,
 *   every 100 ms; a bridge that restarts resumes from there (at least once: bridged headers tell duplicates).
 * - **Shared variables**: key-links.ts.
 *
 * Which names are bridged: those that exist in the namespace (matching `topics` / `keys`), found at start,
 * on every change of the namespace's directory and every `scanMs` (a topic whose link failed, the hub out of
 * reach, is linked by a later scan). Names that exist only on the hub are not bridged.
 */
import {
  closeSync,
  constants,
  type FSWatcher,
  fstatSync,
  openSync,
  readFileSync,
  renameSync,
  unlinkSync,
  watch as watchDir,
  writeFileSync,
} from "node:fs";
import path from "node:path";
import { type ConnectOptions, connect as connectHub, type HubClient } from "../client/client.js";
import { EzipcError, isEzipcError } from "../errors.js";
import type { HubBridge } from "../hub/hub.js";
import { log } from "../log.js";
import { MAX_HEADERS } from "../protocol/fields.js";
import type { SubscribeInit, Subscription, TopicMessage } from "../pubsub/subscription.js";
import { connectShm, type ShmClient } from "../shm-client/shm-client.js";
import { globMatcher } from "../vars/glob.js";
import { BRIDGED_HEADER, bridgedHeaders } from "./bridged-headers.js";
import { KeyLinks } from "./key-links.js";

export { BRIDGED_HEADER, BRIDGED_SEQ_HEADER, ORIGIN_HEADER } from "./bridged-headers.js";

const CHECKPOINT_MS = 100;

export interface BridgeOptions {
  /** Topics bridged (glob: `*`, `?`). Default all. */
  topics?: string;
  /** Keys bridged (glob). Default all. */
  keys?: string;
  /** How often the namespace is scanned for new topics and keys (besides directory change events). Default 1000. */
  scanMs?: number;
  /** Names this bridge's checkpoint file (`.bridge.NAME.json`). Default `bridge`. */
  name?: string;
  /** Options of the bridge's hub connection (a standalone bridge: security, reconnect…). */
  hub?: ConnectOptions;
}

/** What the bridge moved so far. */
export interface BridgeCounters {
  toHub: number;
  toShm: number;
  varsToHub: number;
  varsToShm: number;
  gaps: number;
  /**
   * Messages too large for the other side (`EZIPC_SHM_TOO_LARGE`: over a quarter of the ring;
   * `EZIPC_MESSAGE_TOO_LARGE`: over the hub's frame), left out with a warning.
   */
  tooLarge: number;
  /**
   * Messages the other side refuses for their headers, left out with a warning: 64 headers already (no room
   * for `ezipc-bridged`, which keeps it from coming back), or headers over the limits (more than 64, a key
   * over 256 bytes, a value over 4096), which only a program writing shared memory without ezipc's checks
   * can give.
   */
  refused: number;
  /**
   * Times forwarding to a side stopped because it could not take messages then (the hub's connection was
   * down, shared memory had no room), to go on from the last confirmed forward once it can.
   */
  interrupted: number;
}

/** For `Hub.listen({ bridge: shmBridge("shm:///NAME") })`: the hub runs the bridge in its process. */
export function shmBridge(shmUrl: string, options: BridgeOptions = {}): HubBridge {
  return { start: (hubUrl) => Bridge.start(hubUrl, shmUrl, options) };
}

type Side = "shm" | "hub";

/** How long the bridge waits before it follows a side again after the other could not take its forwards. */
const RETRY_MS = 1_000;

/** A topic's subscription on one side and its forwarder (dead: stopped, its forwards no longer count). */
interface Follower {
  sub: Subscription | null;
  dead: boolean;
}

interface Cursor {
  /** Last seq forwarded from shared memory to the hub, and from the hub to shared memory (0: none yet). */
  shm: bigint;
  hub: bigint;
}

export class Bridge {
  readonly counters: BridgeCounters = {
    toHub: 0,
    toShm: 0,
    varsToHub: 0,
    varsToShm: 0,
    gaps: 0,
    tooLarge: 0,
    refused: 0,
    interrupted: 0,
  };
  private readonly cursors = new Map<string, Cursor>();
  /** Topics found but not linked yet (the hub out of reach): shared memory's last seq when first found. */
  private readonly discovered = new Map<string, bigint>();
  /** Each topic's follower on each side (the side it reads). */
  private readonly followers: Record<Side, Map<string, Follower>> = { shm: new Map(), hub: new Map() };
  /** Sides whose followers {@link lost} stopped, to follow again. */
  private readonly stale: Record<Side, boolean> = { shm: false, hub: false };
  private readonly retrying: Record<Side, NodeJS.Timeout | null> = { shm: null, hub: null };
  private readonly topics = new Set<string>();
  private readonly keys: KeyLinks;
  private readonly file: string;
  private readonly matchTopic: (n: string) => boolean;
  private readonly matchKey: (n: string) => boolean;
  private dirty = false;
  private closed = false;
  private scanning: Promise<void> | null = null;
  private rescan = false;
  private readonly timers: NodeJS.Timeout[] = [];
  private watcher: FSWatcher | null = null;

  private constructor(
    readonly hub: HubClient,
    readonly shm: ShmClient,
    options: BridgeOptions,
  ) {
    this.file = path.join(shm.dir, `.bridge.${options.name ?? "bridge"}.json`);
    this.matchTopic = globMatcher(options.topics ?? "*");
    this.matchKey = globMatcher(options.keys ?? "*");
    this.keys = new KeyLinks(hub, shm, this.counters);
    this.load();
    // The hub's connection: down, forwards to it may be lost; back, the shm:// side is followed again.
    hub.on("status", (status) => {
      if (status === "reconnecting") this.lost("hub");
      else if (status === "connected") {
        void this.refollow("shm");
        this.keys.retry();
      }
    });
  }

  /**
   * Connects to the hub at `hubUrl` and opens `shmUrl`, then bridges. Resolves once the names found at
   * start are bridged; rejects with the connection's error.
   */
  static async start(hubUrl: string, shmUrl: string, options: BridgeOptions = {}): Promise<Bridge> {
    const shm = await connectShm(shmUrl, { name: "bridge" });
    let hub: HubClient;
    try {
      hub = await connectHub(hubUrl, { name: "bridge", ...options.hub });
    } catch (err) {
      await shm.close();
      throw err;
    }
    const b = new Bridge(hub, shm, options);
    try {
      await b.scan();
    } catch (err) {
      await b.close();
      throw err;
    }
    b.timers.push(setInterval(() => void b.scan().catch(b.scanFailed), options.scanMs ?? 1_000));
    b.timers.push(setInterval(() => b.checkpoint(), CHECKPOINT_MS));
    for (const t of b.timers) t.unref();
    try {
      b.watcher = watchDir(shm.dir, () => void b.scan().catch(b.scanFailed));
      b.watcher.on("error", () => {}); // the periodic scan goes on
    } catch {}
    return b;
  }

  private readonly scanFailed = (err: unknown): void => {
    if (!this.closed) log("warn", "bridge", "scanning the namespace failed", { error: err });
  };

  /**
   * Reads the checkpoint. The namespace may be shared with other users: the file is opened without
   * following a link, must be a regular file, and each entry must be two seqs (u64, in decimal). What is not
   * is left out, with a warning: those topics resume as new ones do.
   */
  private load(): void {
    let saved: unknown;
    try {
      const fd = openSync(this.file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
      try {
        if (!fstatSync(fd).isFile()) throw new Error("not a regular file");
        saved = JSON.parse(readFileSync(fd, "utf8"));
      } finally {
        closeSync(fd);
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") {
        log("warn", "bridge", "the checkpoint could not be read: every topic resumes as a new one", {
          file: this.file,
          error: err,
        });
      }
      return;
    }
    const entries = typeof saved === "object" && saved !== null && !Array.isArray(saved) ? saved : {};
    for (const [t, c] of Object.entries(entries)) {
      const shm = u64Of((c as { shm?: unknown } | null)?.shm);
      const hub = u64Of((c as { hub?: unknown } | null)?.hub);
      if (shm === null || hub === null) {
        log("warn", "bridge", "a checkpoint entry is not two seqs: that topic resumes as a new one", {
          file: this.file,
          topic: t,
        });
        continue;
      }
      this.cursors.set(t, { shm, hub });
    }
  }

  /** Writes the cursors (atomically: a new file renamed over the old one) if they moved. */
  private checkpoint(): void {
    if (!this.dirty) return;
    this.dirty = false;
    const out: Record<string, { shm: string; hub: string }> = {};
    for (const [t, c] of this.cursors) out[t] = { shm: String(c.shm), hub: String(c.hub) };
    const tmp = `${this.file}.${process.pid}.tmp`;
    try {
      // A new file (O_EXCL: never through a link or into a file someone put under that name), renamed
      // over the old one.
      try {
        unlinkSync(tmp); // (one this process left behind)
      } catch {}
      const fd = openSync(
        tmp,
        constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
        0o600,
      );
      try {
        writeFileSync(fd, JSON.stringify(out));
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, this.file);
    } catch (err) {
      this.dirty = true;
      log("warn", "bridge", "the checkpoint could not be written", { file: this.file, error: err });
    }
  }

  /** Finds new topics and keys, and keys that went away (one scan at a time; a request meanwhile reruns it). */
  scan(): Promise<void> {
    if (this.scanning) {
      this.rescan = true;
      return this.scanning;
    }
    this.scanning = (async () => {
      try {
        do {
          this.rescan = false;
          if (this.closed) return;
          for (const t of await this.shm.topics()) {
            if (!this.topics.has(t.name) && this.matchTopic(t.name)) await this.linkTopic(t.name, t.lastSeq);
          }
          const live = new Set<string>();
          for (const k of await this.shm.list()) {
            if (!this.matchKey(k.key)) continue;
            live.add(k.key);
            if (!this.keys.has(k.key)) await this.keys.link(k.key, k.persistent);
          }
          this.keys.unlinkAllBut(live);
          this.keys.retry();
        } while (this.rescan);
      } finally {
        this.scanning = null;
      }
    })();
    return this.scanning;
  }

  private cursor(topic: string): Cursor {
    let c = this.cursors.get(topic);
    if (!c) {
      c = { shm: 0n, hub: 0n };
      this.cursors.set(topic, c);
    }
    return c;
  }

  /** Where to start reading a side: after its cursor. */
  private static initOf(last: bigint, lastSeq: bigint): SubscribeInit {
    if (last > lastSeq) return "oldest"; // that side's topic started over (a hub restarted without --data)
    return { fromSeq: last + 1n };
  }

  private async linkTopic(topic: string, shmLast: bigint): Promise<void> {
    this.topics.add(topic);
    const known = this.cursors.get(topic);
    // First seen now, or in a scan whose link failed (the hub out of reach): what shared memory held then.
    const shmFirst = this.discovered.get(topic) ?? shmLast;
    if (!known) this.discovered.set(topic, shmFirst);
    try {
      const hubLast = (await this.hub.topics(topic)).find((t) => t.name === topic)?.lastSeq ?? 0n;
      const c = this.cursor(topic);
      if (!known) {
        // First time: what each side held when the bridge found the topic is not bridged, the rest is.
        // Checkpointed at once, so that a bridge killed before its first checkpoint still resumes from here.
        c.shm = shmFirst;
        c.hub = hubLast;
        this.dirty = true;
        this.checkpoint();
        this.discovered.delete(topic);
      }
      await this.follow(topic, "shm", Bridge.initOf(c.shm, shmLast));
      await this.follow(topic, "hub", Bridge.initOf(c.hub, hubLast));
    } catch (err) {
      // Not linked (the next scan tries again): no follower of it goes on meanwhile.
      this.topics.delete(topic);
      for (const side of ["shm", "hub"] as const) {
        const f = this.followers[side].get(topic);
        if (f) Bridge.stop(f);
        this.followers[side].delete(topic);
      }
      throw err;
    }
  }

  private readonly onGap = (): void => {
    this.counters.gaps++;
  };

  /**
   * Follows `topic` on side `from`, forwarding to the other side: a subscription whose handler publishes
   * fire-and-forget. Once the event loop turns, the other side confirms what was forwarded — the hub, with a
   * request on the same connection (answered after the hub applied everything sent before it); shared
   * memory, with a drain — and the cursor moves past it. Replaces the topic's earlier follower on that side.
   */
  private async follow(topic: string, from: Side, init: SubscribeInit): Promise<void> {
    const followers = this.followers[from];
    const old = followers.get(topic);
    if (old) Bridge.stop(old);
    const f: Follower = { sub: null, dead: false };
    followers.set(topic, f);
    const handler =
      from === "shm"
        ? this.forwarder(topic, f, "shm", this.hub, async () => {
            await this.hub.topics(topic);
          })
        : this.forwarder(topic, f, "hub", this.shm, () => this.shm.drain());
    const source: Pick<HubClient, "subscribe"> = from === "shm" ? this.shm : this.hub;
    f.sub = await source.subscribe(topic, { init, onGap: this.onGap }, handler);
    if (f.dead || this.closed) f.sub.unsubscribe();
  }

  private static stop(f: Follower): void {
    f.dead = true;
    f.sub?.unsubscribe();
  }

  /**
   * Forwards to side `to` may have been lost (the hub's connection dropped; shared memory had no room for a
   * batch): the followers of the other side stop, and what they forwarded since their cursors is not taken
   * as confirmed. {@link refollow} reads it again from there (at least once: what had arrived comes twice).
   */
  private lost(to: Side): void {
    const from: Side = to === "hub" ? "shm" : "hub";
    for (const f of this.followers[from].values()) Bridge.stop(f);
    if (!this.stale[from]) this.counters.interrupted++;
    this.stale[from] = true;
  }

  /** Follows again, from their cursors, the topics of side `from` that {@link lost} stopped. */
  private async refollow(from: Side): Promise<void> {
    if (!this.stale[from] || this.closed) return;
    this.stale[from] = false;
    // The side's last seqs, listed once (a listing per topic would read the namespace once per topic).
    let lasts: Map<string, bigint>;
    try {
      const source = from === "shm" ? this.shm : this.hub;
      lasts = new Map((await source.topics()).map((t) => [t.name, t.lastSeq]));
    } catch (err) {
      this.stale[from] = true;
      if (!this.closed)
        log("warn", "bridge", "topics could not be listed; trying again", { from, error: err });
      this.retry(from);
      return;
    }
    for (const topic of [...this.followers[from].keys()]) {
      if (this.closed || this.stale[from]) return; // lost again meanwhile: the next refollow does it
      try {
        await this.follow(topic, from, Bridge.initOf(this.cursor(topic)[from], lasts.get(topic) ?? 0n));
      } catch (err) {
        this.stale[from] = true;
        if (!this.closed) {
          log("warn", "bridge", "a topic could not be followed again; trying again", {
            topic,
            from,
            error: err,
          });
        }
        this.retry(from);
      }
    }
  }

  /** Follows side `from` again in {@link RETRY_MS} (and so on, while it cannot). */
  private retry(from: Side): void {
    if (this.retrying[from] !== null || this.closed) return;
    const t = setTimeout(() => {
      this.retrying[from] = null;
      void this.refollow(from);
    }, RETRY_MS);
    t.unref();
    this.retrying[from] = t;
  }

  /** A forward to the side other than `from` failed with `err`: not now, or never. */
  private failed(topic: string, from: Side, err: unknown): void {
    if (this.closed) return;
    // Not now: the hub's connection is down (followed again once it is back), or shared memory has no room
    // (tried again). This message and the next are read again from the cursor.
    if (from === "shm" && isEzipcError(err, "EZIPC_CONNECTION_CLOSED")) this.lost("hub");
    else if (from === "hub" && isEzipcError(err, "EZIPC_SHM_FULL")) {
      this.lost("shm");
      this.retry("hub");
    } else log("warn", "bridge", `${topic}: forwarding failed`, { from, error: err });
  }

  /** The handler of a follower on side `from`: forwards to `to` what did not come through a bridge. */
  private forwarder(
    topic: string,
    f: Follower,
    from: Side,
    to: Pick<HubClient, "publishAndForget" | "drain">,
    confirm: () => Promise<unknown>,
  ): (m: TopicMessage) => Promise<void> | undefined {
    const sent = this.barrier(topic, f, from, confirm);
    return (m) => {
      if (this.closed || f.dead) return;
      // The bridge's own forwards coming back from the hub are known by their publisher (the bridge's hub
      // client) without reading their headers; others by the header.
      if ((from === "hub" && m.publisher === this.hub.label) || m.headers[BRIDGED_HEADER] !== undefined) {
        sent(m.seq); // never forwarded back: only the cursor moves
        return;
      }
      const headers = bridgedHeaders(m, from);
      if (headers === null) {
        this.leaveOut(topic, from, m, `with ${MAX_HEADERS} headers (no room for ${BRIDGED_HEADER})`);
        sent(m.seq);
        return;
      }
      let accepted: boolean;
      try {
        accepted = to.publishAndForget(topic, m.payload, { headers });
      } catch (err) {
        if (isEzipcError(err, "EZIPC_SHM_TOO_LARGE") || isEzipcError(err, "EZIPC_MESSAGE_TOO_LARGE")) {
          this.leaveOut(topic, from, m, "too large for the other side", err);
          sent(m.seq);
        } else if (isEzipcError(err, "EZIPC_ENCODE")) {
          this.leaveOut(topic, from, m, "with headers the other side refuses", err);
          sent(m.seq);
        } else this.failed(topic, from, err);
        return;
      }
      if (from === "shm") this.counters.toHub++;
      else this.counters.toShm++;
      sent(m.seq);
      if (!accepted) return to.drain().catch((err) => this.failed(topic, from, err));
    };
  }

  /**
   * A message that can never go to the other side: counted (too large, or refused for its headers) and
   * logged; the caller moves the cursor past it, and the next ones go on.
   */
  private leaveOut(topic: string, from: Side, m: TopicMessage, why: string, err?: EzipcError): void {
    if (err === undefined || isEzipcError(err, "EZIPC_ENCODE")) this.counters.refused++;
    else this.counters.tooLarge++;
    log("warn", "bridge", `${topic}: a message ${why} was not forwarded`, {
      from,
      seq: m.seq,
      bytes: m.payload.length,
      headers: Object.keys(m.headers).length,
      ...(err ? { error: err } : {}),
    });
  }

  /**
   * Returns `sent(seq)`: records that messages up to `seq` from `side` were handed on; once the event loop
   * turns, `confirm()` proves they arrived and the cursor moves to the last of them.
   */
  private barrier(
    topic: string,
    f: Follower,
    side: Side,
    confirm: () => Promise<unknown>,
  ): (seq: bigint) => void {
    const c = this.cursor(topic);
    let upTo = 0n;
    let scheduled = false;
    // A seq not above the last one seen: that side's topic started over (a hub restarted without keeping
    // it), and the cursor must follow it down, or a later restart of the bridge would skip as many.
    let lastSeen = c[side];
    let startedOver = false;
    const run = async () => {
      const seq = upTo;
      const reset = startedOver;
      startedOver = false;
      try {
        await confirm();
        if (f.dead) return; // forwards may have been lost since: read again from the cursor
        if (reset) {
          c[side] = seq;
          this.dirty = true;
        } else this.advance(c, side, seq);
      } catch (err) {
        if (reset) startedOver = true;
        if (!f.dead) this.failed(topic, side, err);
      } finally {
        scheduled = false;
        if ((startedOver || upTo > c[side]) && !this.closed && !f.dead) schedule();
      }
    };
    const schedule = () => {
      scheduled = true;
      setImmediate(() => void run());
    };
    return (seq) => {
      if (seq <= lastSeen) {
        startedOver = true;
        upTo = seq;
      } else if (seq > upTo) upTo = seq;
      lastSeen = seq;
      if (!scheduled) schedule();
    };
  }

  private advance(c: Cursor, side: "shm" | "hub", seq: bigint): void {
    if (seq > c[side]) {
      c[side] = seq;
      this.dirty = true;
    }
  }

  /** Stops bridging: checkpoints, closes both clients. */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.scanning?.catch(() => {});
    this.closed = true;
    for (const t of this.timers) clearInterval(t);
    this.watcher?.close();
    for (const t of Object.values(this.retrying)) if (t !== null) clearTimeout(t);
    for (const side of ["shm", "hub"] as const) for (const f of this.followers[side].values()) Bridge.stop(f);
    this.keys.close();
    await this.hub.drain().catch(() => {});
    await this.shm.drain().catch(() => {});
    this.checkpoint();
    await this.hub.close();
    await this.shm.close();
  }
}

/** Throws `EZIPC_INVALID_URL` unless `url` is a shm:// URL. */
export function checkBridgeUrl(url: string): void {
  if (!url.startsWith("shm:")) {
    throw new EzipcError(
      "EZIPC_INVALID_URL",
      `${url}: a bridge connects a shm:// namespace (shm:// or shm:///NAME)`,
    );
  }
}

/** A seq as the checkpoint writes it (decimal text, 0 to 2^64 - 1), or null. */
function u64Of(v: unknown): bigint | null {
  if (typeof v !== "string" || !/^[0-9]{1,20}$/.test(v)) return null;
  const n = BigInt(v);
  return n < 2n ** 64n - 1n ? n : null; // (the bridge resumes after it)
}
