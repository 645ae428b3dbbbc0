/**
 * Resident memory of idle processes: an ezipc client (tcp:// to a hub, and shm://) and an idle hub, each
 * beside its peers measured in the same run — a bare Node process (the floor of any Node program), a raw
 * node:net client and server, a nats.js client and nats-server. Every client has done one subscribe, one
 * publish received and one request answered (so its code is loaded), then idles; VmRSS from /proc.
 */
import { fileURLToPath } from "node:url";
import { freeUrl, procUsage, runRole, stop, withNamespace, withServer } from "./procs.js";
import { withNats } from "./pubsub-bench.js";
import { median } from "./stats.js";

const script = fileURLToPath(new URL("./memory-child.js", import.meta.url));
let seq = 9000;

/** RSS (bytes) of an idle role, measured once it is ready. */
async function idle(args: string[]): Promise<number> {
  const { proc } = await runRole(script, args);
  try {
    return procUsage(proc.pid!).rssBytes;
  } finally {
    await stop(proc);
  }
}

/** RSS of a server role while one idle client of `client` is connected. */
async function idleServer(serverArgs: string[], client: string): Promise<{ server: number; client: number }> {
  return withServer(script, serverArgs, async (url, proc) => {
    const c = await runRole(script, [client, url]);
    try {
      return { server: procUsage(proc.pid!).rssBytes, client: procUsage(c.proc.pid!).rssBytes };
    } finally {
      await stop(c.proc);
    }
  });
}

const mib = (b: number): string => (b / 1048576).toFixed(1);

export async function memoryBench(quick: boolean): Promise<string[]> {
  const runs = quick ? 1 : 3;
  const rows = new Map<string, number[]>();
  const add = (name: string, bytes: number) => {
    if (!rows.has(name)) rows.set(name, []);
    rows.get(name)!.push(bytes);
  };
  for (let r = 0; r < runs; r++) {
    add("bare", await idle(["bare"]));
    const raw = await idleServer(["raw-server", freeUrl("tcp", seq++)], "raw");
    add("raw client", raw.client);
    add("raw server", raw.server);
    const ez = await idleServer(["hub", freeUrl("tcp", seq++)], "ez");
    add("ez client", ez.client);
    add("hub", ez.server);
    const full = await idleServer(["hub-entry", freeUrl("tcp", seq++)], "ez-full");
    add("ez full client", full.client);
    add("hub entry", full.server);
    add("cli", (await idleServer(["cli", freeUrl("tcp", seq++)], "ez")).server);
    add("shm client", await withNamespace((url) => idle(["ez", url])));
    const nats = await withNats(async (url, proc) => {
      const c = await runRole(script, ["nats", url]);
      try {
        return { server: procUsage(proc.pid!).rssBytes, client: procUsage(c.proc.pid!).rssBytes };
      } finally {
        await stop(c.proc);
      }
    }).catch(() => ({ server: Number.NaN, client: Number.NaN }));
    add("nats client", nats.client);
    add("nats-server", nats.server);
  }
  const m = (k: string) => median(rows.get(k)!);
  const bare = m("bare");
  const row = (name: string, k: string, floor = true) =>
    `| ${name} | ${mib(m(k))} | ${floor ? `+${mib(m(k) - bare)}` : ""} |`;
  const lines = [
    `### Idle processes: resident memory (MiB, VmRSS), medians of ${runs}`,
    "",
    "Each client subscribed, got one message and made one request, then idles; each server has that client connected.",
    "",
    "| process | RSS | above a bare Node process |",
    "|---|---:|---:|",
    row("bare Node process (the floor of any Node program)", "bare", false),
    row("raw node:net client", "raw client"),
    row("nats.js client", "nats client"),
    row('ezipc client, tcp:// to a hub (`import … from "ezipc/client"`)', "ez client"),
    row("the same client importing `ezipc` (hub, cluster, stores loaded too)", "ez full client"),
    row("ezipc client, shm:// (`ezipc/client`)", "shm client"),
    row("raw node:net echo server", "raw server"),
    row('ezipc hub (`Hub.listen`, defaults; `import … from "ezipc"`)', "hub"),
    row('the same hub importing `ezipc/hub` (`import { Hub } from "ezipc/hub"`)', "hub entry"),
    row("`ezipc serve` (`npm start`: the CLI, a WebSocket port with metrics and dashboard)", "cli"),
    `| nats-server (Go) | ${mib(m("nats-server"))} | |`,
  ];
  process.stderr.write(`${lines.slice(4).join("\n")}\n`);
  return lines;
}
