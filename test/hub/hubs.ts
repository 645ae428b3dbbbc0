// Hubs for tests: in this process (withHub) or as the CLI in its own process (startCliHub).
import { type ChildProcess, type StdioOptions, spawn } from "node:child_process";
import { renameSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Hub, type HubOptions } from "../../src/index.js";
import { spawnOnTmpfs, within } from "../helpers.js";

const cli = fileURLToPath(new URL("../../src/cli/main.js", import.meta.url));

/** Runs `fn` with a hub on tcp://127.0.0.1:0 (plus `options`), closing it afterwards. */
export async function withHub(
  options: Partial<HubOptions>,
  fn: (hub: Hub, url: string) => Promise<void>,
): Promise<void> {
  const hub = await Hub.listen({ urls: ["tcp://127.0.0.1:0"], ...options });
  try {
    await fn(hub, hub.urls[0]!);
  } finally {
    await hub.close();
  }
}

/**
 * A hub restarted at `unix://sock` (the hub there is closed) that its old clients cannot reach before
 * `prepare` has run against it: it listens on a socket beside `sock`, and that socket is moved to `sock`
 * once `prepare(url)` resolves. Clients of the old hub then reconnect to it.
 */
export async function restartedHub(
  sock: string,
  options: Partial<HubOptions>,
  prepare: (url: string) => Promise<void>,
): Promise<Hub> {
  const aside = path.join(path.dirname(sock), `${path.basename(sock)}.next`);
  const hub = await Hub.listen({ ...options, urls: [`unix://${aside}`] });
  try {
    await prepare(`unix://${aside}`);
    renameSync(aside, sock);
  } catch (err) {
    await hub.close();
    throw err;
  }
  return hub;
}

/**
 * `ezipc serve unix://SOCK --data DATA ARGS…` in a child process; resolves once it listens. `quiet` drops its
 * log (tests that make its store fail on purpose). With `tmpfs`, DATA is a tmpfs of that size in the hub's
 * own mount namespace (a small disk that fills up), after the shell line `setup` (spawnOnTmpfs). With
 * `under`, the hub runs under that command (e.g. strace injecting slow syncs); the child is that command.
 */
export function startCliHub(
  sock: string,
  data: string,
  args: string[] = [],
  quiet = false,
  tmpfs?: { size: string; setup?: string },
  under: string[] = [],
): Promise<ChildProcess> {
  const argv = [cli, "serve", `unix://${sock}`, "--no-ws", "--data", data, ...args];
  const stdio: StdioOptions = ["ignore", "pipe", quiet ? "ignore" : "inherit"];
  const child = tmpfs
    ? spawnOnTmpfs(data, tmpfs.size, [process.execPath, ...argv], { setup: tmpfs.setup, stdio })
    : under.length > 0
      ? spawn(under[0]!, [...under.slice(1), process.execPath, ...argv], { stdio })
      : spawn(process.execPath, argv, { stdio });
  return within(
    new Promise((resolve, reject) => {
      let out = "";
      child.stdout!.on("data", (d: Buffer) => {
        out += d.toString();
        if (out.includes("store:")) resolve(child);
      });
      child.once("close", (code) => reject(new Error(`hub exited with ${code}: ${out}`)));
    }),
    15_000,
    "hub to start",
  );
}
