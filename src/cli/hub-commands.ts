/**
 * The hub's subcommands: `serve` runs a hub, `bridge` bridges shared memory to one, `keygen` makes a key;
 * `ls`, `get`, `set`, `watch` and `stats` talk to a hub (or shared memory) about shared variables and
 * topics; and the helpers every client subcommand uses. Messaging (`pub`, `sub`, `req`, `reply`):
 * messaging-commands.ts.
 */

import { existsSync } from "node:fs";
import path from "node:path";
import { type Command, InvalidArgumentError } from "commander";
import type { ClientSecurity, ConnectOptions, HubClient } from "../client/client.js";
import type { MessagingClient } from "../connect.js";
import { EzipcError } from "../errors.js";
import { escapeUnsafe } from "../protocol/names.js";
import { readAllowedClientsFile } from "../security/access.js";
import { generateKeyFile, loadOrCreateKeyFile, readKeyFile } from "../security/keys.js";
import type { BlockStore, SqliteStore } from "../store/store.js";
import { checkAllowOrigins } from "../transport/ws-origins.js";
import { globMatcher } from "../vars/glob.js";

export function nonNegativeInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError("expected a non-negative integer");
  return n;
}

export function positiveInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError("expected a positive integer");
  return n;
}

export type Format = "auto" | "hex" | "utf8" | "json" | "base64";

export function parseFormat(v: string): Format {
  if (!["auto", "hex", "utf8", "json", "base64"].includes(v)) {
    throw new InvalidArgumentError("expected auto, hex, utf8, json or base64");
  }
  return v as Format;
}

/** Renders a value for a terminal: JSON configs as JSON, printable bytes as text, others as hex. */
export function formatValue(kind: "bytes" | "json", data: Uint8Array, format: Format): string {
  const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (format === "hex") return buf.toString("hex");
  if (format === "base64") return buf.toString("base64");
  if (format === "utf8") return buf.toString("utf8");
  if (kind === "json" || format === "json") {
    return buf.length === 0 ? "(empty)" : escapeUnsafe(JSON.stringify(JSON.parse(buf.toString("utf8"))));
  }
  // auto for bytes: text when it is printable UTF-8 (trailing zero bytes ignored), else hex
  let end = buf.length;
  while (end > 0 && buf[end - 1] === 0) end--;
  const text = buf.toString("utf8", 0, end);
  // Text on one line, with nothing a terminal would act on: line breaks and C1 controls written as escapes.
  // biome-ignore lint/suspicious/noControlCharactersInRegex: deliberately detecting control characters
  if (end > 0 && !text.includes("\ufffd") && !/[\x00-\x08\x0e-\x1f\x7f]/.test(text))
    return escapeUnsafe(text);
  return buf.toString("hex");
}

/**
 * How the CLI reaches a secure hub, from the environment: EZIPC_HUB_KEY (the hub's public key, pinned) or
 * EZIPC_KNOWN_HOSTS (a known-hosts file; EZIPC_TOFU=1 to learn an unknown hub's key), EZIPC_KEY_FILE (this
 * client's key file) and EZIPC_TOKEN. None set: a plain connection.
 */
export function cliSecurity(): { secure?: ClientSecurity } {
  const e = process.env;
  if (!e.EZIPC_HUB_KEY && !e.EZIPC_KNOWN_HOSTS) return {};
  return {
    secure: {
      hubKey: e.EZIPC_HUB_KEY || undefined,
      knownHosts: e.EZIPC_KNOWN_HOSTS || undefined,
      trustOnFirstUse: e.EZIPC_TOFU === "1",
      staticKey: e.EZIPC_KEY_FILE ? readKeyFile(e.EZIPC_KEY_FILE) : undefined,
      token: e.EZIPC_TOKEN || undefined,
    },
  };
}

async function withClient<T>(url: string, fn: (c: HubClient) => Promise<T>): Promise<T> {
  if (url.startsWith("shm:")) {
    throw new EzipcError("EZIPC_NOT_SUPPORTED", `${url} has no hub to ask: this command needs a hub's URL`);
  }
  const { connect } = await import("../client/client.js");
  const client = await connect(url, { name: `ezipc-cli:${process.pid}`, reconnect: false, ...cliSecurity() });
  try {
    return await fn(client);
  } finally {
    await client.close();
  }
}

/**
 * A client for the commands both backends serve: a hub client, or a shared-memory client for `shm://` URLs
 * (ls, get, set, watch, pub, sub, req, reply).
 */
export async function messagingClient(
  url: string,
  name: string,
  hubOptions: ConnectOptions = {},
): Promise<MessagingClient> {
  const { connect: connectAny } = await import("../connect.js");
  if (url.startsWith("shm:")) return connectAny(url as `shm:${string}`, { name });
  return connectAny(url, { name, ...cliSecurity(), ...hubOptions });
}

/**
 * Runs `fn` with a client of `url`, closing it after. With `absent`, a command that only reads: a shm://
 * namespace that does not exist is not made for it (connecting makes one), and `absent()` answers instead.
 */
export async function withMessaging<T>(
  url: string,
  fn: (c: MessagingClient) => Promise<T>,
  absent?: () => T,
): Promise<T> {
  if (absent && url.startsWith("shm:")) {
    const [{ shmNamespaceOf }, { SHM_ROOT }] = await Promise.all([
      import("../shm-client/shm-client.js"),
      import("../shm/file-names.js"),
    ]);
    if (!existsSync(path.join(SHM_ROOT, `ezipc.${shmNamespaceOf(url)}`))) return absent();
  }
  const client = await messagingClient(url, `ezipc-cli:${process.pid}`, { reconnect: false });
  try {
    return await fn(client);
  } finally {
    await client.close();
  }
}

/** The `-u, --url` option every client subcommand takes: $EZIPC_URL, else the hub's TCP address. */
export function hubUrlOption(tcp: string): readonly [string, string, string] {
  return [
    "-u, --url <url>",
    "hub address, or shm:// / shm:///NAME for shared memory (or $EZIPC_URL)",
    process.env.EZIPC_URL ?? tcp,
  ];
}

/** Adds serve, ls, get, set, watch and stats to `program`. */
export function addHubCommands(program: Command, defaults: { tcp: string; unix: string; ws: string }): void {
  const urlOption = hubUrlOption(defaults.tcp);

  program
    .command("serve")
    .description("run a hub: shared variables for every process that connects")
    .argument("[urls...]", "addresses to listen on", [defaults.tcp, defaults.unix])
    .option("--ws <url>", "also listen for WebSocket clients (browsers) here", defaults.ws)
    .option("--no-ws", "do not listen for WebSocket clients")
    .option("--no-metrics", "do not serve GET /metrics (Prometheus) on the WebSocket port")
    .option("--no-dashboard", "do not serve the live dashboard (GET /) on the WebSocket port")
    .option(
      "--allow-origin <origin>",
      "let web pages of this origin connect over WebSocket (repeatable; * for any). Pages of this machine (localhost, 127.0.0.1) are always let in, other sites' pages refused",
      (v: string, prev: string[] = []) => {
        try {
          checkAllowOrigins([v]);
        } catch (err) {
          throw new InvalidArgumentError((err as Error).message.replace(/^allowOrigins: /, ""));
        }
        return [...prev, v];
      },
    )
    .option("-d, --data <dir>", "keep persistent keys in SQLite in this directory (default: memory only)")
    .option("--name <name>", "hub name shown to clients", "ezipc-hub")
    .option("--grace-ms <ms>", "how long a key with no pointer stays revivable", nonNegativeInt, 5_000)
    .option("--reconnect-window-ms <ms>", "how long a lost client's pointers are kept", nonNegativeInt, 5_000)
    .option("--max-keys <n>", "most keys", nonNegativeInt, 100_000)
    .option("--max-connections <n>", "most connections open at once", nonNegativeInt, 10_000)
    .option("--max-subscriptions <n>", "most subscriptions over all clients", nonNegativeInt, 250_000)
    .option("--max-pointers <n>", "most pointers over all clients", nonNegativeInt, 500_000)
    .option("--max-block-bytes <n>", "largest block", nonNegativeInt, 1024 * 1024)
    .option("--max-total-bytes <n>", "most bytes over all blocks", nonNegativeInt, 256 * 1024 * 1024)
    .option("--no-client-persistent", "refuse persistent keys from clients")
    .option(
      "--heartbeat-interval-ms <ms>",
      "ping a connection silent this long (0: no heartbeats)",
      nonNegativeInt,
      5_000,
    )
    .option("--heartbeat-timeout-ms <ms>", "close a connection silent this long", nonNegativeInt, 15_000)
    .option(
      "--handshake-timeout-ms <ms>",
      "close a connection that has not said hello by then",
      nonNegativeInt,
      5_000,
    )
    .option(
      "--key <file>",
      "encrypt and authenticate every connection with this key file (created if missing)",
    )
    .option("--clients <file>", "with --key: admit only these clients (JSON: [{ name, publicKey?, token? }])")
    .option(
      "--hold-publishers-ms <ms>",
      "how long publishers may wait for a lagging subscriber before it gets a gap (0: never wait, lossy)",
      nonNegativeInt,
      5_000,
    )
    .option(
      "--cluster <nats-urls>",
      "form one system with every hub started with the same NATS JetStream cluster (nats://HOST:PORT[,…]; docs/cluster.md): shared variables, topics, RPC servers and deadman tokens are shared",
    )
    .option(
      "--cluster-replicas <n>",
      "with --cluster: copies JetStream keeps (1 for a single NATS server)",
      positiveInt,
      3,
    )
    .option(
      "--cluster-heartbeat-ms <ms>",
      "with --cluster: how often this hub tells the others it is alive",
      positiveInt,
      1_000,
    )
    .option(
      "--cluster-hub-timeout-ms <ms>",
      "with --cluster: a hub silent this long is dead (its calls end; plus its reconnect window, its clients' pointers and tokens are released)",
      positiveInt,
      3_000,
    )
    .option(
      "--bridge <shm-url>",
      "bridge this shared-memory namespace (shm:// or shm:///NAME): its topics and keys appear on the hub, and network clients' publishes and writes on those names appear in shared memory",
    )
    .action(
      async (
        urls: string[],
        o: {
          data?: string;
          name: string;
          graceMs: number;
          reconnectWindowMs: number;
          maxKeys: number;
          maxConnections: number;
          maxSubscriptions: number;
          maxPointers: number;
          maxBlockBytes: number;
          maxTotalBytes: number;
          clientPersistent: boolean;
          heartbeatIntervalMs: number;
          heartbeatTimeoutMs: number;
          handshakeTimeoutMs: number;
          key?: string;
          clients?: string;
          holdPublishersMs: number;
          bridge?: string;
          cluster?: string;
          clusterReplicas: number;
          clusterHeartbeatMs: number;
          clusterHubTimeoutMs: number;
          ws: string | false;
          allowOrigin?: string[];
          metrics: boolean;
          dashboard: boolean;
        },
      ) => {
        // The WebSocket listener comes on top of the given URLs, unless one of them is ws:// or wss:// already.
        if (o.ws && !urls.some((u) => /^wss?:/.test(u))) urls = [...urls, o.ws];
        if (o.clients && !o.key) throw new Error("--clients needs --key");
        // What a hub started this way does not use is not loaded: the bridge (and shm://), monitoring.
        const bridging = o.bridge ? await import("../bridge/bridge.js") : undefined;
        if (o.bridge) bridging!.checkBridgeUrl(o.bridge);
        const { Hub } = await import("../hub/hub.js");
        const { MemoryStore, SqliteStore } = await import("../store/store.js");
        const security = o.key
          ? {
              staticKey: loadOrCreateKeyFile(o.key),
              clients: o.clients ? readAllowedClientsFile(o.clients) : [],
            }
          : undefined;
        const store: BlockStore = o.data ? SqliteStore.inDir(o.data) : new MemoryStore();
        const hub = await Hub.listen({
          urls,
          name: o.name,
          store,
          disposeGraceMs: o.graceMs,
          reconnectWindowMs: o.reconnectWindowMs,
          maxKeys: o.maxKeys,
          maxConnections: o.maxConnections,
          maxSubscriptions: o.maxSubscriptions,
          maxPointers: o.maxPointers,
          maxBlockBytes: o.maxBlockBytes,
          maxTotalBytes: o.maxTotalBytes,
          allowClientPersistent: o.clientPersistent,
          heartbeatIntervalMs: o.heartbeatIntervalMs,
          heartbeatTimeoutMs: o.heartbeatTimeoutMs,
          handshakeTimeoutMs: o.handshakeTimeoutMs,
          holdPublishersMs: o.holdPublishersMs,
          allowOrigins: o.allowOrigin,
          security,
          bridge: o.bridge ? bridging!.shmBridge(o.bridge) : undefined,
          cluster: o.cluster
            ? {
                servers: o.cluster,
                replicas: o.clusterReplicas,
                heartbeatMs: o.clusterHeartbeatMs,
                hubTimeoutMs: o.clusterHubTimeoutMs,
              }
            : undefined,
        });
        // (Served on the WebSocket port: none, nothing to serve them on.)
        if ((o.metrics || o.dashboard) && urls.some((u) => /^wss?:/.test(u))) {
          const { serveMonitoring } = await import("../monitor/serve.js");
          serveMonitoring(hub, { metrics: o.metrics, dashboard: o.dashboard });
        }
        const s = hub.stats();
        if (security) {
          process.stdout.write(
            `secure: hub key ${security.staticKey.publicKey.toString("base64")} (${security.clients.length ? `${security.clients.length} allowed clients` : "any client with a key"})\n`,
          );
        }
        for (const url of hub.urls) {
          if (!url.startsWith("memory:")) process.stdout.write(`hub listening on ${url}\n`);
        }
        if (o.bridge) process.stdout.write(`bridging ${o.bridge}\n`);
        process.stdout.write(
          o.data
            ? `store: sqlite ${(store as SqliteStore).file} (${s.persistentKeys} persistent ${s.persistentKeys === 1 ? "key" : "keys"})\n`
            : "store: memory (nothing survives a restart: --data DIR keeps persistent keys and topics)\n",
        );
        const stop = async (signal: string) => {
          process.stdout.write(`${signal}: closing\n`);
          await hub.close();
          process.exit(0);
        };
        process.once("SIGINT", () => void stop("SIGINT"));
        process.once("SIGTERM", () => void stop("SIGTERM"));
      },
    );

  program
    .command("bridge")
    .description(
      "bridge a shared-memory namespace to a running hub (as `serve --bridge`, in its own process): topics and keys both ways, resuming where it stopped",
    )
    .argument("<shm-url>", "the namespace: shm:// or shm:///NAME")
    .option(...urlOption)
    .option("--topics <glob>", "topics to bridge", "*")
    .option("--keys <glob>", "keys to bridge", "*")
    .option("--name <name>", "names its checkpoint file in the namespace", "bridge")
    .action(async (shmUrl: string, o: { url: string; topics: string; keys: string; name: string }) => {
      const { Bridge, checkBridgeUrl } = await import("../bridge/bridge.js");
      checkBridgeUrl(shmUrl);
      const bridge = await Bridge.start(o.url, shmUrl, {
        topics: o.topics,
        keys: o.keys,
        name: o.name,
        hub: { ...cliSecurity() },
      });
      process.stdout.write(`bridging ${shmUrl} to ${o.url}\n`);
      const stop = async (signal: string) => {
        process.stdout.write(`${signal}: closing\n`);
        await bridge.close();
        process.exit(0);
      };
      process.once("SIGINT", () => void stop("SIGINT"));
      process.once("SIGTERM", () => void stop("SIGTERM"));
    });

  program
    .command("keygen")
    .description("write a new Curve25519 key pair to a file (mode 0600) and print its public key")
    .argument("<file>", "where to write the key (refuses to overwrite)")
    .action((file: string) => {
      process.stdout.write(`${generateKeyFile(file).publicKey.toString("base64")}\n`);
    });

  program
    .command("ls")
    .description("list keys (size, version, refcount, state, holders and their policies), then topics")
    .argument("[glob]", "name pattern (* and ?)", "")
    .option(...urlOption)
    .option("--json", "print JSON: { keys, topics }")
    .option("--all", "include the hub's own $hub.… topics")
    .action(async (glob: string, o: { url: string; json?: boolean; all?: boolean }) => {
      const match = globMatcher(glob);
      const { keys, topics } = await withMessaging(
        o.url,
        async (c) => ({
          keys: await c.list(glob),
          topics: (await c.topics()).filter((t) => match(t.name) && (o.all || !t.name.startsWith("$hub."))),
        }),
        () => ({ keys: [], topics: [] }),
      );
      if (o.json) {
        const bigints = (_: string, v: unknown) => (typeof v === "bigint" ? v.toString() : v);
        process.stdout.write(`${JSON.stringify({ keys, topics }, bigints, 2)}\n`);
        return;
      }
      const keyRows = [["KEY", "KIND", "SIZE", "VERSION", "REFS", "STATE", "HOLDERS (request/lazy/poll)"]];
      for (const k of keys) {
        keyRows.push([
          k.key,
          k.kind,
          String(k.size),
          String(k.version),
          String(k.refcount),
          k.persistent ? "persistent" : k.state,
          k.holders.map((h) => `${h.client}(${h.request}/${h.lazy}/${h.poll})`).join(" ") || "-",
        ]);
      }
      if (keys.length > 0 || topics.length === 0) printTable(keyRows);
      if (topics.length === 0) return;
      const topicRows = [["TOPIC", "MESSAGES", "BYTES", "FIRST", "LAST", "SUBSCRIBERS", "PERSIST"]];
      for (const t of topics) {
        topicRows.push([
          t.name,
          String(t.count),
          String(t.bytes),
          String(t.firstSeq),
          String(t.lastSeq),
          String(t.subscribers),
          t.persist ? "yes" : "no",
        ]);
      }
      if (keys.length > 0) process.stdout.write("\n");
      printTable(topicRows);
    });

  program
    .command("get")
    .description("print a key's value")
    .argument("<key>")
    .option(...urlOption)
    .option("-f, --format <format>", "auto, hex, utf8, json or base64", parseFormat, "auto" as Format)
    .action(async (key: string, o: { url: string; format: Format }) => {
      const v = await withMessaging(
        o.url,
        (c) => c.peek(key),
        () => null,
      );
      if (!v) throw new EzipcError("EZIPC_KEY_NOT_FOUND", `no key ${key}`);
      process.stdout.write(`${formatValue(v.kind, v.data, o.format)}\n`);
    });

  program
    .command("set")
    .description(
      "write a key: text (or --hex) into a bytes key, or a JSON document into a config key; a missing key is created persistent, of the value's size. Bytes keys have a fixed size: without --offset the value replaces the whole key (a shorter one is zero-filled; a longer one is refused with EZIPC_BAD_REQUEST); with --offset only those bytes change",
    )
    .argument("<key>")
    .argument("<value>")
    .option(...urlOption)
    .option("--hex", "the value is hex bytes")
    .option("--json", "the key is a JSON config and the value a JSON document")
    .option("--offset <n>", "write only these bytes, from this offset (bytes keys)", nonNegativeInt)
    .action(
      async (
        key: string,
        value: string,
        o: { url: string; hex?: boolean; json?: boolean; offset?: number },
      ) => {
        const version = await withMessaging(o.url, async (c) => {
          const existing = await c.peek(key);
          if (o.json || existing?.kind === "json") {
            let doc: unknown;
            try {
              doc = JSON.parse(value);
            } catch (err) {
              throw new InvalidArgumentError(`not JSON: ${(err as Error).message}`);
            }
            const cfg = await c.config(key, { policy: "request" });
            try {
              return await cfg.write(doc);
            } finally {
              cfg.dispose();
            }
          }
          let bytes = o.hex ? Buffer.from(value, "hex") : Buffer.from(value, "utf8");
          if (o.hex && bytes.length * 2 !== value.length) throw new InvalidArgumentError("not valid hex");
          const offset = o.offset ?? 0;
          if (existing) {
            const size = existing.data.length;
            if (offset + bytes.length > size) {
              throw new EzipcError(
                "EZIPC_BAD_REQUEST",
                `${key} holds ${size} bytes (keys have a fixed size): ${bytes.length} bytes at offset ${offset} do not fit`,
              );
            }
            // The whole key is replaced: the rest of a shorter value is zeros, not the old tail.
            if (o.offset === undefined && bytes.length < size)
              bytes = Buffer.concat([bytes, Buffer.alloc(size - bytes.length)]);
          }
          const ptr = existing
            ? await c.watch(key, "request")
            : await c.allocate(key, offset + bytes.length, "request", {
                persistent: true,
                openExisting: true,
              });
          if (!ptr) throw new EzipcError("EZIPC_KEY_NOT_FOUND", `no key ${key}`);
          try {
            return await ptr.write(bytes, offset);
          } finally {
            ptr.dispose();
          }
        });
        process.stdout.write(`${key} version ${version}\n`);
      },
    );

  program
    .command("watch")
    .description("print a key's value, then every change, until interrupted")
    .argument("<key>")
    .option(...urlOption)
    .option("-f, --format <format>", "auto, hex, utf8, json or base64", parseFormat, "auto" as Format)
    .action(async (key: string, o: { url: string; format: Format }) => {
      const client = await messagingClient(o.url, `ezipc-watch:${process.pid}`);
      const ptr = await client.watch(key, "poll");
      if (!ptr) {
        await client.close();
        throw new EzipcError("EZIPC_KEY_NOT_FOUND", `no key ${key}`);
      }
      const kind = (await client.peek(key))?.kind ?? "bytes";
      const print = () =>
        process.stdout.write(`v${ptr.version} ${formatValue(kind, ptr.read(), o.format)}\n`);
      print();
      let stopping = false;
      ptr.on("status", (s) => {
        if (!stopping) process.stderr.write(`(${key}: ${s})\n`); // stopping disposes the pointer: not news
      });
      const stop = async () => {
        stopping = true;
        ptr.dispose();
        await client.close();
        process.exit(0);
      };
      process.once("SIGINT", () => void stop());
      process.once("SIGTERM", () => void stop());
      for await (const _ of ptr.changes()) print();
      if (stopping) return;
      await client.close();
      throw new EzipcError("EZIPC_KEY_DISPOSED", `${key} was invalidated`);
    });

  program
    .command("stats")
    .description("print the hub's statistics")
    .option(...urlOption)
    .option("--json", "print JSON")
    .action(async (o: { url: string; json?: boolean }) => {
      const s = await withClient(o.url, (c) => c.stats());
      if (o.json) {
        process.stdout.write(`${JSON.stringify(s, null, 2)}\n`);
        return;
      }
      const shown = (v: unknown): string =>
        Array.isArray(v)
          ? v.join(" ")
          : v !== null && typeof v === "object"
            ? Object.entries(v)
                .map(([k, n]) => `${k}=${n}`)
                .join(" ") || "-"
            : String(v);
      const width = Math.max(...Object.keys(s).map((k) => k.length));
      for (const [k, v] of Object.entries(s))
        process.stdout.write(`${k.padEnd(width)}  ${escapeUnsafe(shown(v))}\n`);
    });
}

function printTable(rows: string[][]): void {
  rows = rows.map((r) => r.map(escapeUnsafe)); // names other clients chose
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const r of rows) {
    process.stdout.write(
      `${r
        .map((c, i) => c.padEnd(widths[i]!))
        .join("  ")
        .trimEnd()}\n`,
    );
  }
}
