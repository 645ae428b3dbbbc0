/**
 * A NATS cluster for tests: `n` nats-server processes with JetStream, routed to each other on loopback,
 * each with its own store in a temp folder. Nodes can be stopped (SIGTERM, or SIGKILL) and started again
 * with their store, to rejoin.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { connect, type KV } from "nats";
import type { ClusterOptions } from "../../src/cluster/cluster.js";
import { keysWithin } from "../../src/cluster/kv-holds.js";
import { encodeKey } from "../../src/cluster/kv-vars.js";
import { Hub } from "../../src/hub/hub.js";
import { killOnExit, tempDir, until, within } from "../helpers.js";

/** Ports handed out by this process (never twice). */
const given = new Set<number>();

/**
 * A port free now, for a nats-server to listen on once it starts. Taken below Linux's ephemeral range
 * (32768 on): a port the kernel picked (`listen(0)`) can be taken again, before the server binds it, as the
 * local port of any outgoing connection of the tests running meanwhile; a port below that range only by an
 * explicit bind.
 */
async function freePort(): Promise<number> {
  for (let tries = 0; tries < 200; tries++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    if (given.has(port)) continue;
    const s = net.createServer();
    const ok = await new Promise<boolean>((r) => {
      s.once("error", () => r(false));
      s.listen(port, "127.0.0.1", () => r(true));
    });
    if (!ok) continue;
    await new Promise<void>((r) => s.close(() => r()));
    given.add(port);
    return port;
  }
  throw new Error("no free port found for nats-server");
}

export interface NatsCluster {
  /** `nats://127.0.0.1:PORT` of each node. */
  readonly urls: string[];
  /** Stops node `i` (SIGKILL with `kill9`); resolves once it exited. */
  stop(i: number, kill9?: boolean): Promise<void>;
  /** Freezes node `i` (SIGSTOP): its sockets stay open and nothing it is sent gets an answer. */
  freeze(i: number): void;
  /** Lets a frozen node `i` go on (SIGCONT). */
  thaw(i: number): void;
  /** Starts node `i` again, with its store; resolves once it serves clients. */
  start(i: number): Promise<void>;
  close(): Promise<void>;
}

/** Starts `n` clustered nodes (one: a node of its own); resolves once JetStream answers through every node. */
export async function natsCluster(n = 3): Promise<NatsCluster> {
  const dir = tempDir().dir;
  const clientPorts: number[] = [];
  const routePorts: number[] = [];
  for (let i = 0; i < n; i++) {
    clientPorts.push(await freePort());
    routePorts.push(await freePort());
  }
  const procs: (ChildProcess | null)[] = new Array(n).fill(null);
  const logs: string[] = new Array(n).fill("");
  for (let i = 0; i < n; i++) {
    const conf = [
      `server_name: n${i}`,
      `listen: 127.0.0.1:${clientPorts[i]}`,
      `jetstream { store_dir: "${path.join(dir, `js${i}`)}" }`,
      // One node alone runs JetStream without a cluster (a cluster of one waits for peers).
      ...(n === 1
        ? []
        : [
            "cluster {",
            "  name: ezipc-test",
            `  listen: 127.0.0.1:${routePorts[i]}`,
            `  routes: [ ${routePorts.map((p) => `nats-route://127.0.0.1:${p}`).join(", ")} ]`,
            "}",
          ]),
    ].join("\n");
    writeFileSync(path.join(dir, `n${i}.conf`), conf);
  }
  const urls = clientPorts.map((p) => `nats://127.0.0.1:${p}`);

  async function start(i: number): Promise<void> {
    const proc = killOnExit(
      spawn("nats-server", ["-c", path.join(dir, `n${i}.conf`)], {
        stdio: ["ignore", "ignore", "pipe"],
      }),
    );
    procs[i] = proc;
    proc.stderr!.on("data", (d: Buffer) => {
      logs[i] = (logs[i]! + d.toString()).slice(-20_000);
    });
    const spawned = new Promise<void>((resolve, reject) => {
      proc.once("error", (e) =>
        reject(new Error(`nats-server (install it: scripts/setup-services.sh): ${e.message}`)),
      );
      const onData = () => {
        if (/Server is ready/.test(logs[i]!)) {
          proc.stderr!.off("data", onData);
          resolve();
        }
      };
      proc.stderr!.on("data", onData);
      proc.once("exit", (code) => reject(new Error(`nats-server n${i} exited ${code}:\n${logs[i]}`)));
    });
    await within(spawned, 15_000, `nats-server n${i} ready`);
  }

  async function stop(i: number, kill9 = false): Promise<void> {
    const p = procs[i];
    if (!p || p.exitCode !== null) return;
    const gone = new Promise<void>((r) => p.once("exit", () => r()));
    p.kill(kill9 ? "SIGKILL" : "SIGTERM");
    await within(gone, 15_000, `nats-server n${i} exits`);
    procs[i] = null;
  }

  await Promise.all(Array.from({ length: n }, (_, i) => start(i)));
  // JetStream is usable once the cluster elected its meta leader: ask through each node until it answers.
  for (const url of urls) {
    const nc = await connect({ servers: new URL(url).host });
    try {
      const deadline = Date.now() + 20_000;
      for (;;) {
        try {
          await (await nc.jetstreamManager({ timeout: 2_000 })).getAccountInfo();
          break;
        } catch (err) {
          if (Date.now() > deadline) throw new Error(`JetStream not ready through ${url}: ${String(err)}`);
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    } finally {
      await nc.close();
    }
  }
  return {
    urls,
    stop,
    freeze(i: number) {
      procs[i]?.kill("SIGSTOP");
    },
    thaw(i: number) {
      procs[i]?.kill("SIGCONT");
    },
    start,
    async close() {
      await Promise.all(procs.map((_, i) => stop(i, true)));
    },
  };
}

/**
 * A hub in its own process (the CLI), on the cluster through `natsUrl`, with more `serve` options; resolves
 * with the process and its URL once it listens.
 */
export async function hubProcess(
  natsUrl: string,
  args: string[] = [],
): Promise<{ child: ChildProcess; url: string }> {
  const child: ChildProcess = killOnExit(
    spawn(
      process.execPath,
      [
        new URL("../../src/cli/main.js", import.meta.url).pathname,
        "serve",
        "tcp://127.0.0.1:0",
        "--no-ws",
        "--cluster",
        natsUrl,
        ...args,
      ],
      { stdio: ["ignore", "pipe", "inherit"] },
    ),
  );
  const url = await within(
    new Promise<string>((resolve) => {
      let out = "";
      child.stdout!.on("data", (d: Buffer) => {
        out += d.toString();
        const m = /hub listening on (tcp:\/\/\S+)/.exec(out);
        if (m) resolve(m[1]!);
      });
    }),
    20_000,
    "the hub process listening",
  );
  return { child, url };
}

/**
 * `n` hubs in this process on `nats`, started together (they race to make the same streams while a fresh
 * cluster elects their leaders); hub i talks first to node i. `cluster` adds options (heartbeats…).
 *
 * Their cluster timeout defaults to 20 s, not the hubs' 5: a fresh three-replica stream electing its leader
 * while the whole suite loads two cores took over 5 s once, and over 10 s in another run on a busy host
 * ("making the stream of topic cl.order: TIMEOUT"). Clients of these hubs wait longer than that.
 */
export function hubsOn(
  nats: NatsCluster,
  n: number,
  cluster: Omit<ClusterOptions, "servers"> = {},
): Promise<Hub[]> {
  return Promise.all(
    Array.from({ length: n }, (_, i) =>
      Hub.listen({
        urls: ["tcp://127.0.0.1:0"],
        name: `hub${i}`,
        cluster: {
          servers: [nats.urls[i]!, ...nats.urls.filter((_, j) => j !== i)],
          timeoutMs: 20_000,
          ...cluster,
        },
      }),
    ),
  );
}

/**
 * The hubs' hold entries under `filter` in the holds bucket, read as a hub reads them; null when the listing
 * failed (a loaded machine, a node electing): a poll asks again.
 */
export async function holdEntries(holds: KV, filter: string): Promise<string[] | null> {
  return keysWithin(holds, filter, 5_000).catch(() => null);
}

/**
 * Resolves once `n` hubs' holds on `key` are in the cluster's holds bucket (read through node 0 as a hub
 * reads them, every 50 ms); rejects after 20 s naming `what`.
 */
export async function untilHolds(nats: NatsCluster, key: string, n: number, what: string): Promise<void> {
  const nc = await connect({ servers: new URL(nats.urls[0]!).host });
  try {
    const holds = await nc.jetstream().views.kv("ezipc_holds");
    await until(
      async () => (await holdEntries(holds, `${encodeKey(key)}.*`))?.length === n,
      what,
      20_000,
      50,
    );
  } finally {
    await nc.close();
  }
}
