/**
 * The bridge's shared variables (bridge.ts): each live key of the namespace gets a hub key of the same name,
 * kind (bytes or JSON config), size and persistence, held with a poll pointer. In shared memory the bridge
 * only observes (it holds no reference: keys there live and die by their own holders, and the hub key is
 * released when the shm key goes). A change on either side is written to the other unless it is the
 * bridge's own write (the version it produced is remembered) or the value there is already the same. Each
 * side keeps its own versions; the value converges to the last write the bridge applied (concurrent writes
 * on both sides: the last wins).
 *
 * A change that could not be written (the hub's connection was down, shared memory had no room) is written
 * again by {@link KeyLinks.retry} (the bridge calls it on every scan and once the hub is back); a hub key
 * that is gone (a hub restarted without it) is made again from the shared-memory value.
 */
import type { HubClient } from "../client/client.js";
import { log } from "../log.js";
import type { ShmClient } from "../shm-client/shm-client.js";
import type { ConfigVar } from "../vars/config-var.js";
import type { IpcPtr } from "../vars/pointer.js";
import type { SyncPolicy } from "../vars/vars-messages.js";

interface KeyLink {
  shm: IpcPtr<"poll", unknown>;
  hub: IpcPtr<SyncPolicy, unknown>;
  config: ConfigVar | null;
  /** The versions the bridge's own writes produced on each side. */
  produced: { shm: number; hub: number };
  chain: Promise<void>;
  persistent: boolean;
  /** Sides whose last change could not be written to the other (tried again: {@link KeyLinks.retry}). */
  failed: { shm: boolean; hub: boolean };
  enqueue: (from: "shm" | "hub") => void;
}

export class KeyLinks {
  private readonly keys = new Map<string, KeyLink>();
  private closed = false;

  constructor(
    private readonly hub: HubClient,
    private readonly shm: ShmClient,
    private readonly counters: { varsToHub: number; varsToShm: number },
  ) {}

  has(key: string): boolean {
    return this.keys.has(key);
  }

  /** Starts bridging `key` (nothing if it is gone; logged if the hub refuses it). */
  async link(key: string, persistent: boolean): Promise<void> {
    const shm = await this.shm.observe(key);
    if (!shm) return;
    const json = (await this.shm.info(key)) as { kind?: string };
    let hub: IpcPtr<SyncPolicy, unknown>;
    let config: ConfigVar | null = null;
    try {
      if (json.kind === "json") {
        config = await this.hub.config(key, { policy: "poll", persistent });
        hub = config.pointer as IpcPtr<SyncPolicy, unknown>;
      } else {
        hub = await this.hub.allocate(key, shm.size, "poll", { openExisting: true, persistent });
      }
    } catch (err) {
      shm.dispose();
      log("warn", "bridge", "a key cannot be bridged", { key, error: err });
      return;
    }
    const link: KeyLink = {
      shm,
      hub,
      config,
      produced: { shm: -1, hub: -1 },
      chain: Promise.resolve(),
      persistent,
      failed: { shm: false, hub: false },
      enqueue: (from) => {
        link.chain = link.chain
          .then(() => this.sync(link, from))
          .then(
            () => {
              link.failed[from] = false; // (a sync writes the side's value of now: earlier failures are moot)
            },
            (err) => {
              if (this.closed || this.keys.get(key) !== link) return;
              link.failed[from] = true;
              log("warn", "bridge", "a value could not be bridged (tried again)", { key, from, error: err });
            },
          );
      },
    };
    this.keys.set(key, link);
    shm.on("change", () => link.enqueue("shm"));
    hub.on("change", () => link.enqueue("hub"));
    // The hub key went away under the bridge (a hub restarted without it): made again from shared memory.
    hub.on("status", (status) => {
      if (status !== "invalidated" || this.closed || this.keys.get(key) !== link) return;
      this.unlink(key);
      void this.link(key, persistent).catch((err) => {
        if (!this.closed) log("warn", "bridge", "a key could not be bridged again", { key, error: err });
      });
    });
    link.enqueue("shm"); // shared memory is where the key lives: its value goes to the hub first
  }

  /** Writes again the changes that could not be written (see {@link KeyLink.failed}). */
  retry(): void {
    if (this.closed) return;
    for (const link of this.keys.values()) {
      for (const from of ["shm", "hub"] as const) {
        if (!link.failed[from]) continue;
        link.failed[from] = false;
        link.enqueue(from);
      }
    }
  }

  /** Writes `from`'s value to the other side, unless it is the bridge's own write or already there. */
  private async sync(link: KeyLink, from: "shm" | "hub"): Promise<void> {
    if (this.closed) return;
    const to = from === "shm" ? "hub" : "shm";
    const src = (from === "shm" ? link.shm : link.hub).readVersioned() as {
      data: Uint8Array;
      version: number;
    };
    if (src.version === link.produced[from]) return;
    const dst = (to === "shm" ? link.shm : link.hub).readVersioned() as { data: Uint8Array; version: number };
    if (Buffer.compare(src.data, dst.data) === 0) return;
    if (to === "hub") {
      if (link.config) {
        if (src.data.length === 0) return;
        link.produced.hub = await link.config.write(JSON.parse(Buffer.from(src.data).toString("utf8")));
      } else link.produced.hub = await link.hub.write(src.data, 0);
      this.counters.varsToHub++;
    } else {
      link.produced.shm = await this.shm.replaceValue(link.shm as IpcPtr<SyncPolicy, unknown>, src.data);
      this.counters.varsToShm++;
    }
  }

  /** Stops bridging the keys not in `live` (gone from the namespace). */
  unlinkAllBut(live: ReadonlySet<string>): void {
    for (const key of [...this.keys.keys()]) if (!live.has(key)) this.unlink(key);
  }

  /** Stops bridging every key. */
  close(): void {
    this.closed = true;
    for (const key of [...this.keys.keys()]) this.unlink(key);
  }

  private unlink(key: string): void {
    const link = this.keys.get(key);
    if (!link) return;
    this.keys.delete(key);
    link.shm.dispose();
    link.hub.dispose();
  }
}
