/** Spawning benchmark roles as child processes (each role prints "ready URL" or one JSON line). */
import { type ChildProcess, spawn } from "node:child_process";
import { rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const childScript = fileURLToPath(new URL("./child.js", import.meta.url));
export const hubChildScript = fileURLToPath(new URL("./hub-child.js", import.meta.url));

/** No role may run longer than this: a stuck benchmark fails loudly instead of hanging. */
const ROLE_LIMIT_MS = 180_000;

/**
 * Runs `script args…`; resolves at its "ready" line (still running) or when it exits 0 (its output). The
 * process is killed after ROLE_LIMIT_MS whatever it does.
 */
export function runRole(script: string, args: string[]): Promise<{ out: string; proc: ChildProcess }> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [script, ...args], { stdio: ["ignore", "pipe", "inherit"] });
    const limit = setTimeout(() => {
      proc.kill("SIGKILL");
      reject(new Error(`${args[0]} ran over ${ROLE_LIMIT_MS} ms`));
    }, ROLE_LIMIT_MS);
    limit.unref();
    proc.once("exit", () => clearTimeout(limit));
    let out = "";
    proc.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      if (out.startsWith("ready") && out.includes("\n")) resolve({ out, proc });
    });
    proc.once("exit", (code) =>
      code === 0 ? resolve({ out, proc }) : reject(new Error(`${args[0]} exited ${code}`)),
    );
  });
}

/** Starts a server role, runs `fn(url)`, then kills the server. */
export async function withServer<T>(
  script: string,
  args: string[],
  fn: (url: string) => Promise<T>,
): Promise<T> {
  const { out, proc } = await runRole(script, args);
  const url = out.split("\n")[0]!.slice("ready ".length);
  try {
    return await fn(url);
  } finally {
    await stop(proc);
  }
}

/**
 * A fresh address: TCP port 0 (the server role binds a port the kernel picks and prints it in its "ready"
 * line, so two runs never race for one port), or a Unix socket path in the temp directory.
 */
export function freeUrl(transport: string, i: number): string {
  if (transport === "tcp") return "tcp://127.0.0.1:0";
  const p = path.join(os.tmpdir(), `ezipc-bench-${process.pid}-${i}.sock`);
  rmSync(p, { force: true });
  return `unix://${p}`;
}

/** Kills a role and resolves once it has exited. */
export async function stop(proc: ChildProcess): Promise<void> {
  proc.kill("SIGKILL");
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  await new Promise((r) => proc.once("exit", r));
}

/** Everything a started role prints from now until it exits (rejects on a non-zero exit). */
export function collect(proc: ChildProcess): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    let out = "";
    proc.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
    });
    proc.once("exit", (code) => (code === 0 ? resolve(out) : reject(new Error(`role exited ${code}`))));
  });
}
