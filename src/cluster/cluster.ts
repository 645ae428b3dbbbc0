/**
 * A hub's link to the cluster it is part of (docs/cluster.md): a NATS connection to any of the cluster's
 * servers (the client fails over between them) and the JetStream resources every hub of the cluster shares.
 * Each capability's cluster side lives beside this file; the hub composes them.
 */
import { connect, type JetStreamManager, type NatsConnection } from "nats";
import { EzipcError } from "../errors.js";
import { log } from "../log.js";
import type { Protocol } from "../service/protocol.js";
import { clusterError } from "./errors.js";
import { JsTopics } from "./js-topics.js";
import { KvHolds } from "./kv-holds.js";
import { KvTokens } from "./kv-tokens.js";
import { KvVars } from "./kv-vars.js";
import { NatsRpc } from "./nats-rpc.js";
import { WriteSerializer } from "./write-serializer.js";

/** `Hub.listen({ cluster })`. */
export interface ClusterOptions {
  /** NATS servers, e.g. `"nats://127.0.0.1:4222,nats://127.0.0.1:4223"` or a list. */
  servers: string | readonly string[];
  /** Copies JetStream keeps of each bucket and stream. Default 3 (a three-node cluster); 1 for one server. */
  replicas?: number;
  /** Prefix of the JetStream resources, so that several clusters can share NATS. Default `ezipc`. */
  prefix?: string;
  /** Give up connecting (or an operation) after this long. Default 5 s. */
  timeoutMs?: number;
  /** How often a hub tells the cluster it is alive. Default 1 s. */
  heartbeatMs?: number;
  /**
   * A hub silent this long, plus its reconnect window, is gone: its clients' pointers are released. Default
   * 3 s. The hubs' clocks must agree to well within it.
   */
  hubTimeoutMs?: number;
}

/** The parsed server list: `nats://host:port` entries (comma-separated in one string). */
export function clusterServers(servers: string | readonly string[]): string[] {
  const list = (typeof servers === "string" ? servers.split(",") : [...servers])
    .map((s) => s.trim())
    .filter(Boolean);
  if (list.length === 0)
    throw new EzipcError("EZIPC_INVALID_URL", "a cluster needs at least one NATS server URL");
  for (const s of list) {
    let u: URL;
    try {
      u = new URL(s);
    } catch {
      throw new EzipcError("EZIPC_INVALID_URL", `${s}: not a URL (expected nats://HOST:PORT)`);
    }
    if (u.protocol !== "nats:" || !u.hostname || !u.port) {
      throw new EzipcError("EZIPC_INVALID_URL", `${s}: expected nats://HOST:PORT`);
    }
  }
  return list;
}

/**
 * Longest wait for one answer to a request that is made again when it fails: a topic's stream management
 * (js-topics.ts), and the reference counts' heartbeats, holds and sweeps (kv-holds.ts).
 */
export const ATTEMPT_MS = 2_000;

/**
 * The stream manager of the topics: each request waits {@link ATTEMPT_MS} at most, and js-topics.ts
 * makes it again until the cluster timeout. A request lost while a stream or the cluster elects a leader
 * gets no answer; with the whole timeout for one attempt, it used the bound up and the publish failed
 * ("making the stream of topic …: TIMEOUT"), where the next attempt would have been answered.
 */
function topicsManager(nc: NatsConnection, timeout: number): Promise<JetStreamManager> {
  return nc.jetstreamManager({ timeout: Math.min(ATTEMPT_MS, timeout), checkAPI: false });
}

export class ClusterLink {
  private rpcLink: NatsRpc | null = null;

  private constructor(
    readonly nc: NatsConnection,
    readonly vars: KvVars,
    readonly topics: JsTopics,
    readonly tokens: KvTokens,
    private readonly writes: WriteSerializer,
    readonly o: { prefix: string; heartbeatMs: number },
  ) {}

  /** RPC between the hubs, for a hub speaking `protocol` (made once). */
  rpc(protocol: Protocol): NatsRpc {
    this.rpcLink ??= new NatsRpc(this.nc, protocol, this.vars.holds, this.o);
    return this.rpcLink;
  }

  /**
   * Connects to the cluster and makes (or binds) its buckets. Rejects with `EZIPC_INVALID_URL` or
   * `EZIPC_CLUSTER` (no server reachable within `timeoutMs`, JetStream not enabled, too few nodes for
   * `replicas`).
   */
  static async open(
    o: ClusterOptions,
    hub: { name: string; reconnectWindowMs: number },
  ): Promise<ClusterLink> {
    const hubName = hub.name;
    const servers = clusterServers(o.servers);
    const timeout = o.timeoutMs ?? 5_000;
    const replicas = o.replicas ?? 3;
    const prefix = o.prefix ?? "ezipc";
    if (!/^[A-Za-z0-9_-]+$/.test(prefix))
      throw new TypeError("cluster.prefix: letters, digits, _ and - only");
    let nc: NatsConnection;
    try {
      nc = await connect({
        servers: servers.map((s) => new URL(s).host),
        name: `ezipc hub ${hubName}`,
        timeout,
        maxReconnectAttempts: -1,
        reconnectTimeWait: 250,
      });
    } catch (err) {
      throw clusterError(`connecting to the cluster (${servers.join(", ")})`, err);
    }
    try {
      const js = nc.jetstream({ timeout });
      // Reads from the stream's leader, never from a replica that may lag (allow_direct off).
      const bucket = (name: string, ctx = js) =>
        ctx.views.kv(`${prefix}_${name}`, { replicas, history: 1, timeout, allow_direct: false });
      // The reference counts' buckets: every request to them is made again when it fails (kv-holds.ts), so
      // one waits {@link ATTEMPT_MS} at most rather than the whole bound.
      const attemptMs = Math.min(ATTEMPT_MS, timeout);
      const jsHolds = nc.jetstream({ timeout: attemptMs });
      // Hubs starting together race to make the same streams; a fresh cluster may still be electing its
      // leaders (503, timeouts). Every step is idempotent: made again until it holds, within the bound.
      const setup = async () => {
        const jsm = await nc.jetstreamManager({ timeout });
        const kv = await bucket("vars");
        const writes = new WriteSerializer(nc, js, kv, {
          prefix,
          bucket: `${prefix}_vars`,
          replicas,
          timeoutMs: timeout,
        });
        await writes.ensure(jsm);
        const consumers = await writes.consumers();
        return {
          jsm,
          kv,
          writes,
          consumers,
          holds: await bucket("holds", jsHolds),
          hubs: await bucket("hubs", jsHolds),
        };
      };
      const deadline = Date.now() + Math.max(3 * timeout, 15_000);
      let made: Awaited<ReturnType<typeof setup>>;
      for (;;) {
        try {
          made = await setup();
          break;
        } catch (err) {
          if (Date.now() > deadline) throw err;
          log("debug", "cluster", "setting up JetStream: again", { error: err });
          await new Promise((r) => setTimeout(r, 250));
        }
      }
      made.writes.start(made.consumers);
      const holds = new KvHolds(made.holds, made.hubs, {
        hubName,
        reconnectWindowMs: hub.reconnectWindowMs,
        heartbeatMs: o.heartbeatMs,
        hubTimeoutMs: o.hubTimeoutMs,
        attemptMs,
      });
      await holds.start();
      log("info", "cluster", "connected", { server: nc.getServer(), replicas, hub: holds.hubId });
      const vars = new KvVars(made.kv, made.writes, holds, made.jsm, `KV_${prefix}_vars`);
      return new ClusterLink(
        nc,
        vars,
        new JsTopics(nc, js, await topicsManager(nc, timeout), { prefix, replicas, timeoutMs: timeout }),
        new KvTokens(made.kv, made.writes, holds, made.jsm, `KV_${prefix}_vars`, () => vars.newestToken),
        made.writes,
        { prefix, heartbeatMs: o.heartbeatMs ?? 1_000 },
      );
    } catch (err) {
      await nc.close().catch(() => {});
      throw clusterError("setting up the cluster's JetStream buckets", err);
    }
  }

  /** Stops watching and closes the NATS connection. */
  async close(): Promise<void> {
    this.vars.stop();
    this.topics.stop();
    this.tokens.stop();
    this.rpcLink?.stop();
    this.writes.stop();
    await this.nc.drain().catch(() => this.nc.close());
  }
}
