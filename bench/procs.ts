/** Spawning benchmark roles as child processes (each role prints "ready URL" or one JSON line). */
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const childScript = fileURLToPath(new URL("./child.js", import.meta.url));
export const hubChildScript = fileURLToPath(new URL("./hub-child.js", import.meta.url));

/** No role may run longer than this: a stuck benchmark fails loudly instead of hanging. */
const ROLE_LIMIT_MS = 180_000;

/**
 * The Node flags `npm start` runs the hub with (package.json's start script: `node FLAGS… main.js serve`).
 * Every server role (the hub, and the raw relays and echo servers it is compared with) runs with them, so
 * the bench measures the hub as the main job runs it, beside baselines on the same runtime.
 */
export const SERVER_NODE_FLAGS: readonly string[] = (() => {
  const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as {
    scripts: { start: string };
  };
  const words = pkg.scripts.start.split(/\s+/);
  return words.slice(words.indexOf("node") + 1).filter((w) => w.startsWith("--"));
})();

/**
 * Runs `node [nodeFlags…] script args…`; resolves at its "ready" line (still running) or when it exits 0
 * (its output). The process is killed after ROLE_LIMIT_MS whatever it does.
 */
export function runRole(
  script: string,
  args: string[],
  nodeFlags: readonly string[] = [],
): Promise<{ out: string; proc: ChildProcess }> {
  return runProgram(process.execPath, [...nodeFlags, script, ...args], nodeFlags.length + 1);
}

/**
 * {@link runRole} for any program (`python3 bench.py …`, `mono Bench.exe …`): `argv[roleAt]` names the role
 * (the word after the script).
 */
export function runProgram(
  command: string,
  argv: string[],
  roleAt = 1,
): Promise<{ out: string; proc: ChildProcess }> {
  const args = argv.slice(roleAt);
  return new Promise((resolve, reject) => {
    const proc = spawn(command, argv, { stdio: ["ignore", "pipe", "inherit"] });
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
    // "close", not "exit": a role's last line may still be in the pipe when the process has exited.
    proc.once("close", (code) =>
      code === 0 ? resolve({ out, proc }) : reject(new Error(`${args[0]} exited ${code}`)),
    );
  });
}

/** Starts a server role (with {@link SERVER_NODE_FLAGS}), runs `fn(url, proc)`, then kills the server. */
export async function withServer<T>(
  script: string,
  args: string[],
  fn: (url: string, proc: ChildProcess) => Promise<T>,
): Promise<T> {
  const { out, proc } = await runRole(script, args, SERVER_NODE_FLAGS);
  const url = out.split("\n")[0]!.slice("ready ".length);
  try {
    return await fn(url, proc);
  } finally {
    await stop(proc);
  }
}

/** Clock ticks per second of /proc/PID/stat's CPU times (USER_HZ: 100 on Linux). */
const USER_HZ = 100;

/**
 * CPU time used so far (user + system, ms) and resident memory (now, and the peak since it started) of a
 * process, from /proc (Linux); zeros elsewhere.
 */
export function procUsage(pid: number): { cpuMs: number; rssBytes: number; peakRssBytes: number } {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const cpuMs = ((Number(fields[11]) + Number(fields[12])) * 1000) / USER_HZ;
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const kib = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? 0);
    return { cpuMs, rssBytes: kib("VmRSS") * 1024, peakRssBytes: kib("VmHWM") * 1024 };
  } catch {
    return { cpuMs: 0, rssBytes: 0, peakRssBytes: 0 };
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

/** The next line a started role prints (after its "ready" line). */
export function nextLine(proc: ChildProcess): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    let out = "";
    const onData = (d: Buffer) => {
      out += d.toString();
      const i = out.indexOf("\n");
      if (i < 0) return;
      proc.stdout!.off("data", onData);
      resolve(out.slice(0, i));
    };
    proc.stdout!.on("data", onData);
    proc.once("close", (code) => reject(new Error(`role exited ${code} before printing`)));
  });
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
    // "close", not "exit": the output may still be in the pipe when the process has exited.
    proc.once("close", (code) => (code === 0 ? resolve(out) : reject(new Error(`role exited ${code}`))));
  });
}

let namespaces = 0;

/** Runs `fn` with the URL of a fresh shm:// namespace, and removes the namespace's files after it. */
export async function withNamespace<T>(fn: (url: `shm:${string}`) => Promise<T>): Promise<T> {
  const name = `bench-${process.pid}-${namespaces++}`;
  try {
    return await fn(`shm:///${name}`);
  } finally {
    rmSync(`/dev/shm/ezipc.${name}`, { recursive: true, force: true });
  }
}
