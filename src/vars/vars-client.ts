/**
 * The client part of shared variables: pointers (`allocate`, `watch`, `config`), their key states, the
 * updates the hub pushes per sync policy, the release of collected pointers, and the re-registration of
 * every held key after a reconnect. Tools' reads (`list`, `peek`, `info`) too. The hub side is vars-hub.ts;
 * the connection it speaks through is a {@link ClientLink} (src/client/client.ts composes the parts).
 */
import type { Infer, SchemaCodec, SchemaType } from "../codec/schema.js";
import { EzipcError, isEzipcError } from "../errors.js";
import { allPages } from "../listing-pages.js";
import { log } from "../log.js";
import {
  type ClientLink,
  type ClientPart,
  type MessageHandlers,
  unexpected,
  type WireMessages,
} from "../protocol/client-link.js";
import type { coreMessages } from "../protocol/core-messages.js";
import { checkKey } from "../protocol/names.js";
import type { Connection } from "../transport/types.js";
import { ConfigVar } from "./config-var.js";
import {
  allocateShape,
  checkPolicyName,
  fixedCodec,
  IpcPtr,
  KeyState,
  POLICY_INDEX,
  type Versioned,
} from "./pointer.js";
import {
  KIND_BYTES,
  KIND_JSON,
  type keyInfoMessages,
  type keyPageMessages,
  type peekMessages,
  type SyncPolicy,
  type varsMessages,
} from "./vars-messages.js";

/** What the hub may send this part. */
export type VarsMessage = WireMessages<
  typeof coreMessages &
    typeof varsMessages &
    typeof peekMessages &
    typeof keyInfoMessages &
    typeof keyPageMessages
>;
type ListedKey = Infer<typeof varsMessages.listing>["keys"][number];
type Opened = Infer<typeof varsMessages.opened>;

/** Options of `allocate`. */
export interface AllocateOptions {
  /** Never disposed by the hub; with a store, survives a hub restart. Default false. */
  persistent?: boolean;
  /** Open the key if it exists (same kind and size) instead of failing with `EZIPC_KEY_EXISTS`. */
  openExisting?: boolean;
}

/** One key as `list()` reports it. */
export interface KeyInfo {
  key: string;
  kind: "bytes" | "json";
  size: number;
  version: number;
  refcount: number;
  persistent: boolean;
  /** `grace`: no pointer left, invalidated when the grace period ends. */
  state: "live" | "grace";
  /** Each client holding pointers, with its pointer counts per policy. */
  holders: { client: string; request: number; lazy: number; poll: number }[];
}

/** What `info()` reports of a key. */
export type KeyDescription =
  | { state: "none" | "disposed" }
  | {
      state: "live" | "grace";
      kind: "bytes" | "json";
      size: number;
      version: number;
      refcount: number;
      persistent: boolean;
    };

export class VarsClient implements ClientPart<VarsMessage> {
  private readonly byKey = new Map<string, KeyState>();
  private readonly byId = new Map<number, KeyState>();
  private readonly finalizer = new FinalizationRegistry<{ state: KeyState; policy: number }>((held) =>
    this.releaseHeld(held.state, held.policy),
  );
  private readonly host = {
    read: (s: KeyState) => this.readState(s),
    write: (s: KeyState, data: Uint8Array, offset: number, expect?: number) =>
      this.writeState(s, data, offset, expect),
    release: (ptr: IpcPtr<SyncPolicy, unknown>, s: KeyState, policy: number) => {
      this.finalizer.unregister(ptr);
      this.releaseHeld(s, policy);
    },
  };

  readonly handles: MessageHandlers<VarsMessage> = {
    update: (b) => {
      const s = this.byId.get(b.id);
      if (!s) return;
      const version = Number(b.version);
      if (version < s.version) return;
      s.version = version;
      if (s.policy >= 1) {
        s.data = Buffer.from(b.data.buffer, b.data.byteOffset, b.data.byteLength);
        s.size = s.data.length;
        s.fresh = true;
      }
      const change = { version, data: s.data ?? undefined };
      s.notify((p) => p.emit("change", change));
      return;
    },
    stale: (b) => {
      const s = this.byId.get(b.id);
      if (!s) return;
      const version = Number(b.version);
      if (version <= s.version && s.fresh) return;
      s.version = Math.max(s.version, version);
      s.fresh = false;
      s.notify((p) => p.emit("change", { version: s.version }));
      return;
    },
    invalidated: (b) => {
      const s = this.byId.get(b.id);
      if (s) this.invalidate(s);
      return;
    },
  };

  constructor(private readonly link: ClientLink<VarsMessage>) {}

  /** See HubClient.allocate. */
  async allocate<P extends SyncPolicy>(
    key: string,
    sizeOrSchema: number | SchemaType<unknown>,
    policy: P,
    options: AllocateOptions = {},
  ): Promise<IpcPtr<P, unknown>> {
    checkKey(key);
    const { size, codec } = allocateShape(sizeOrSchema, policy);
    const opened = this.opener(key, policy);
    await this.link.request(
      "allocate",
      {
        key,
        kind: KIND_BYTES,
        size,
        policy: POLICY_INDEX[policy],
        persistent: options.persistent ?? false,
        ifExists: options.openExisting ? 1 : 0,
      },
      opened.onReply,
    );
    return this.pointerFor(opened.state(), policy, codec);
  }

  /** See HubClient.watch. */
  async watch<P extends SyncPolicy>(
    key: string,
    policy: P,
    options: { schema?: SchemaType<unknown> } = {},
  ): Promise<IpcPtr<P, unknown> | null> {
    checkKey(key);
    checkPolicyName(policy);
    const codec = options.schema ? fixedCodec(options.schema) : undefined;
    const opened = this.opener(key, policy);
    try {
      await this.link.request("watch", { key, policy: POLICY_INDEX[policy] }, opened.onReply);
    } catch (err) {
      if (isEzipcError(err, "EZIPC_KEY_NOT_FOUND")) return null;
      throw err;
    }
    const state = opened.state();
    if (codec && state.size !== codec.fixedSize) {
      this.releaseHeld(state, POLICY_INDEX[policy]);
      throw new EzipcError(
        "EZIPC_BAD_REQUEST",
        `${key} has ${state.size} bytes; the schema needs ${codec.fixedSize}`,
      );
    }
    return this.pointerFor(state, policy, codec);
  }

  /** See HubClient.config. */
  async config(key: string, options: { policy?: SyncPolicy; persistent?: boolean } = {}): Promise<ConfigVar> {
    checkKey(key);
    const policy = options.policy ?? "poll";
    checkPolicyName(policy);
    const opened = this.opener(key, policy);
    await this.link.request(
      "allocate",
      {
        key,
        kind: KIND_JSON,
        size: 0,
        policy: POLICY_INDEX[policy],
        persistent: options.persistent ?? true,
        ifExists: 1,
      },
      opened.onReply,
    );
    const ptr = this.pointerFor(opened.state(), policy, undefined);
    return new ConfigVar(ptr as IpcPtr<SyncPolicy>, (op, json) => this.configOp(ptr.state, op, json));
  }

  /** See HubClient.list. */
  async list(pattern = ""): Promise<KeyInfo[]> {
    if (!this.link.hubFeatures.has("pages")) {
      const reply = await this.link.request("list", { pattern });
      if (reply.type !== "listing") throw unexpected(reply);
      return reply.body.keys.map(keyInfo);
    }
    // A page at a time (each answer a bounded frame), at the rate the hub's listing budget allows.
    return allPages(
      async (after) => {
        const r = await this.link.request("listPage", { pattern, after, maxBytes: this.link.forwardLimit });
        if (r.type !== "listingPage") throw unexpected(r);
        return { entries: r.body.keys.map(keyInfo), more: r.body.more };
      },
      (k) => k.key,
    );
  }

  /** See HubClient.peek. */
  async peek(key: string): Promise<{ kind: "bytes" | "json"; version: number; data: Uint8Array } | null> {
    checkKey(key);
    try {
      const r = await this.link.request("peek", { key });
      if (r.type !== "opened") throw unexpected(r);
      return {
        kind: r.body.kind === KIND_JSON ? "json" : "bytes",
        version: Number(r.body.version),
        data: r.body.data!,
      };
    } catch (err) {
      if (isEzipcError(err, "EZIPC_KEY_NOT_FOUND") || isEzipcError(err, "EZIPC_KEY_DISPOSED")) return null;
      throw err;
    }
  }

  /** See HubClient.info. */
  async info(key: string): Promise<KeyDescription> {
    checkKey(key);
    const r = await this.link.request("info", { key });
    if (r.type !== "keyInfo") throw unexpected(r);
    const b = r.body;
    const state = (["none", "live", "grace", "disposed"] as const)[b.state] ?? "none";
    if (state === "none" || state === "disposed") return { state };
    return {
      state,
      kind: b.kind === KIND_JSON ? "json" : "bytes",
      size: b.size,
      version: Number(b.version),
      refcount: b.refcount,
      persistent: b.persistent,
    };
  }

  /** Every held key is stale until the next resync. */
  connectionClosed(_conn: Connection, _error: EzipcError, current: boolean): void {
    if (current) for (const s of this.byKey.values()) this.setKeyStatus(s, "stale");
  }

  close(): void {
    for (const s of this.byKey.values()) this.setKeyStatus(s, "stale");
  }

  /** After a welcome: re-registers every held key with its counts and version. */
  async resync(conn: Connection): Promise<{ settled: Promise<unknown>; held: number }> {
    const states = [...this.byKey.values()].filter((s) => s.total > 0 && s.status !== "invalidated");
    const replies = states.map((s) => {
      const sent = [...s.counts];
      // Applied synchronously on arrival (updates for the new id may follow in the same chunk).
      const onReply = (r: VarsMessage) => {
        if (r.type !== "opened") return;
        if (this.byId.get(s.id) === s) this.byId.delete(s.id);
        s.id = r.body.id;
        // Pointers disposed while the resync was in flight: release them now, with the new id.
        for (let p = 0; p < 3; p++) {
          for (let n = sent[p]! - s.counts[p]!; n > 0; n--)
            this.link.send("release", { id: s.id, policy: p });
        }
        if (s.total === 0) return;
        this.byKey.set(s.key, s);
        this.byId.set(s.id, s);
        this.applyOpened(s, r.body);
        this.setKeyStatus(s, "live");
      };
      return this.link.requestOn(
        conn,
        "resync",
        { key: s.key, id: s.id, counts: sent, version: BigInt(s.version) },
        onReply,
      );
    });
    const settled = (async () => {
      for (let i = 0; i < states.length; i++) {
        const s = states[i]!;
        try {
          const r = await replies[i]!;
          if (r.type !== "opened") throw unexpected(r);
        } catch (err) {
          if (isEzipcError(err, "EZIPC_KEY_DISPOSED") || isEzipcError(err, "EZIPC_KEY_NOT_FOUND"))
            this.invalidate(s);
          else if (conn !== this.link.conn)
            return; // lost again: the next welcome resyncs
          else log("warn", "client", "resync failed", { key: s.key, error: err });
        }
      }
    })();
    return { settled, held: states.length };
  }

  private applyOpened(s: KeyState, o: Opened): void {
    s.size = o.size;
    s.persistent = o.persistent;
    const version = Number(o.version);
    if (o.data) {
      s.data = Buffer.from(o.data.buffer, o.data.byteOffset, o.data.byteLength);
      s.fresh = true;
      const changed = version !== s.version;
      s.version = version;
      if (changed) s.notify((p) => p.emit("change", { version, data: s.data ?? undefined }));
    } else if (version !== s.version) {
      s.version = version;
      s.fresh = false;
      s.notify((p) => p.emit("change", { version }));
    }
  }

  private setKeyStatus(s: KeyState, status: "live" | "stale"): void {
    if (s.status === "invalidated" || s.status === status) return;
    s.status = status;
    s.notify((p) => p.emit("status", status));
  }

  private invalidate(s: KeyState): void {
    if (s.status === "invalidated") return;
    s.status = "invalidated";
    s.listened.clear();
    s.counts.fill(0);
    s.data = null;
    if (this.byKey.get(s.key) === s) this.byKey.delete(s.key);
    if (this.byId.get(s.id) === s) this.byId.delete(s.id);
    s.notify((p) => p.emit("status", "invalidated"));
  }

  /**
   * The synchronous half of opening a pointer: when the `opened` reply arrives, the key's state is
   * registered (and its count raised) before any later frame is handled, so an `update` right behind the
   * reply is never missed.
   */
  private opener(
    key: string,
    policy: SyncPolicy,
  ): { onReply: (m: VarsMessage) => void; state: () => KeyState } {
    let state: KeyState | undefined;
    return {
      onReply: (m) => {
        if (m.type === "opened") state = this.openState(key, m.body, POLICY_INDEX[policy]);
      },
      state: () => {
        if (!state) throw new EzipcError("EZIPC_PROTOCOL", `no opened reply for ${key}`);
        return state;
      },
    };
  }

  private openState(key: string, o: Opened, policy: number): KeyState {
    let s = this.byKey.get(key);
    if (s && s.id !== o.id) {
      // The key was recreated on the hub since: the old state is gone.
      this.invalidate(s);
      s = undefined;
    }
    if (!s) {
      s = new KeyState(key, o.kind, o.id, o.size, Number(o.version), o.persistent);
      this.byKey.set(key, s);
      this.byId.set(o.id, s);
    }
    s.counts[policy]!++;
    this.applyOpened(s, o);
    return s;
  }

  private pointerFor<P extends SyncPolicy>(
    s: KeyState,
    policy: P,
    codec: SchemaCodec<unknown> | undefined,
  ): IpcPtr<P, unknown> {
    const ptr = new IpcPtr<P, unknown>(s, policy, this.host, codec);
    s.pointers.add(new WeakRef(ptr as IpcPtr<SyncPolicy, unknown>));
    this.finalizer.register(ptr, { state: s, policy: POLICY_INDEX[policy] }, ptr);
    return ptr;
  }

  private releaseHeld(s: KeyState, policy: number): void {
    if (s.status === "invalidated" || s.counts[policy]! === 0) return;
    s.counts[policy]!--;
    if (s.policy < 1) {
      s.data = null;
      s.fresh = false;
    }
    if (s.total === 0) {
      if (this.byKey.get(s.key) === s) this.byKey.delete(s.key);
      if (this.byId.get(s.id) === s) this.byId.delete(s.id);
    }
    // While disconnected there is nothing to send: the resync tells the hub the new counts.
    if (this.link.ready) this.link.send("release", { id: s.id, policy });
  }

  /**
   * A request on a held key, sent at once when ready (no promise hop on the hot path), else once ready;
   * rejects with `EZIPC_KEY_DISPOSED` once the key was invalidated.
   */
  private keyRequest(s: KeyState, type: string, body: Record<string, unknown>): Promise<VarsMessage> {
    const send = (): Promise<VarsMessage> => {
      if (s.status === "invalidated")
        return Promise.reject(new EzipcError("EZIPC_KEY_DISPOSED", `key ${s.key} has been invalidated`));
      body.id = s.id;
      return this.link.requestOn(this.link.conn!, type, body);
    };
    return this.link.ready ? send() : this.link.readyWithin(type).then(send);
  }

  private async readState(s: KeyState): Promise<Versioned> {
    const r = await this.keyRequest(s, "read", { id: s.id });
    if (r.type !== "value") throw unexpected(r);
    const data = Buffer.from(r.body.data.buffer, r.body.data.byteOffset, r.body.data.byteLength);
    const version = Number(r.body.version);
    if (version >= s.version) {
      s.version = version;
      if (s.policy >= 1) {
        s.data = data;
        s.fresh = true;
      }
    }
    return { data, version };
  }

  private async writeState(
    s: KeyState,
    data: Uint8Array,
    offset: number,
    expect?: number,
  ): Promise<{ ok: boolean; version: number }> {
    const r = await this.keyRequest(s, "write", {
      id: s.id,
      offset,
      expect: expect === undefined ? undefined : BigInt(expect),
      data,
    });
    if (r.type === "conflict") return { ok: false, version: learnt(s, Number(r.body.version)) };
    if (r.type !== "ok") throw unexpected(r);
    return { ok: true, version: learnt(s, Number(r.body.version)) };
  }

  private async configOp(s: KeyState, op: number, json: string): Promise<{ ok: boolean; version: number }> {
    const r = await this.keyRequest(s, "config", { id: s.id, op, json });
    if (r.type === "conflict") return { ok: false, version: learnt(s, Number(r.body.version)) };
    if (r.type !== "ok") throw unexpected(r);
    return { ok: true, version: learnt(s, Number(r.body.version)) };
  }
}

/**
 * A version the hub named in an answer (a write's, a conflict's) is known from then on: by a `request`
 * pointer, which keeps no copy for the hub to update (its `version` said 1 after writes of its own), and by
 * a `lazy` one whose copy went stale earlier (the hub says so once, not at every later write): as a `stale`
 * push would, it moves the version on and marks the copy stale. A `poll` copy is brought there by the hub's
 * pushes, which come before the answer (its version and bytes move together).
 */
function learnt(s: KeyState, version: number): number {
  if (version <= s.version || s.policy === 2) return version;
  s.version = version;
  s.fresh = false;
  return version;
}

/** A listed key as `list()` reports it. */
function keyInfo(k: ListedKey): KeyInfo {
  return {
    key: k.key,
    kind: k.kind === KIND_JSON ? "json" : "bytes",
    size: k.size,
    version: Number(k.version),
    refcount: k.refcount,
    persistent: k.persistent,
    state: k.state === 1 ? "grace" : "live",
    holders: k.holders.map((h) => ({
      client: h.client,
      request: h.counts[0]!,
      lazy: h.counts[1]!,
      poll: h.counts[2]!,
    })),
  };
}
