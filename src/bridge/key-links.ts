/**
 * The bridge's shared variables (bridge.ts): each live key of the namespace gets a hub key of the same name,
 * kind (bytes or JSON config), size and persistence, held with a poll pointer. In shared memory the bridge
 * only observes (it holds no reference: keys there live and die by their own holders, and the hub key is
 * released when the shm key goes). A change on either side is written to the other unless it is the
 * bridge's own write (the version it produced is remembered) or the value there is already the same.
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
    const link: KeyLink = { shm, hub, config, produced: { shm: -1, hub: -1 }, chain: Promise.resolve() };
    this.keys.set(key, link);
    const enqueue = (from: "shm" | "hub") => {
      link.chain = link.chain
        .then(() => this.sync(link, from))
        .catch((err) => {
          if (!this.closed) log("warn", "bridge", "a value could not be bridged", { key, from, error: err });
        });
    };
    shm.on("change", () => enqueue("shm"));
    hub.on("change", () => enqueue("hub"));
    enqueue("shm"); // shared memory is where the key lives: its value goes to the hub first
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
