import { type ChildProcess, execFileSync, type StdioOptions, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

/** Resolves with `promise`, or rejects loudly after `ms` naming what was awaited. */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Resolves once `cond` holds, checking it on each turn of the event loop (it is a condition on state that
 * events change, not a sleep); rejects loudly naming `what` after `ms`. The loop ends either way.
 * `everyMs` spaces the checks of a condition that asks a server (each check a request), so that the test
 * does not flood the server it is waiting on.
 */
export async function until(
  cond: () => boolean | Promise<boolean>,
  what: string,
  ms = 5_000,
  everyMs = 0,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => (everyMs > 0 ? setTimeout(r, everyMs) : setImmediate(r)));
  }
}

/** Resolves with the arguments of the next `event` from `emitter`, failing after `ms`. */
export function nextEvent<A extends unknown[] = unknown[]>(
  emitter: { once(event: string, fn: (...args: never[]) => void): unknown },
  event: string,
  ms = 5_000,
): Promise<A> {
  return within(
    new Promise<A>((resolve) => {
      emitter.once(event, ((...args: A) => resolve(args)) as unknown as (...args: never[]) => void);
    }),
    ms,
    `event '${event}'`,
  );
}

/**
 * The first `event` of `emitter` whose arguments `accept` takes (others, e.g. about what an earlier test
 * left in a shared server, are passed over); rejects after `ms`.
 */
export function eventWhere<A extends unknown[] = unknown[]>(
  emitter: {
    on(event: string, fn: (...args: never[]) => void): unknown;
    off(event: string, fn: (...args: never[]) => void): unknown;
  },
  event: string,
  accept: (...args: A) => boolean,
  ms = 5_000,
): Promise<A> {
  let listener: ((...args: A) => void) | undefined;
  const p = new Promise<A>((resolve) => {
    listener = (...args: A) => {
      if (accept(...args)) resolve(args);
    };
    emitter.on(event, listener as unknown as (...args: never[]) => void);
  });
  return within(p, ms, `event '${event}'`).finally(() =>
    emitter.off(event, listener as unknown as (...args: never[]) => void),
  );
}

/** A fresh temporary directory, removed by the returned cleanup. */
export function tempDir(): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(path.join(os.tmpdir(), "ezipc-test-"));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Path of a compiled fixture script in dist/test/fixtures. */
export function fixture(name: string): string {
  return fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));
}

/**
 * Kills `child` when this process exits, however it ends (a failed test under `--test-force-exit`, a
 * benchmark's `process.exit`): no test leaves a process running on the machine. Returns `child`.
 */
export function killOnExit<T extends ChildProcess>(child: T): T {
  children.add(child);
  child.once("exit", () => children.delete(child));
  return child;
}
const children = new Set<ChildProcess>();
process.once("exit", () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
});

/**
 * Runs `command` (argv) in a mount namespace of its own where `mountPoint` is a fresh tmpfs of `size`
 * (`"20m"`), after the shell line `setup` if given: a full disk or /dev/shm for it alone, the machine's
 * untouched. Needs root (`unshare --mount`, `mount`). The child is killed when this process exits.
 */
export function spawnOnTmpfs(
  mountPoint: string,
  size: string,
  command: string[],
  options: { setup?: string; stdio?: StdioOptions } = {},
): ChildProcess {
  const quote = (a: string) => `'${a.replace(/'/g, "'\\''")}'`;
  const setup = options.setup ? ` && ${options.setup}` : "";
  const line = `mount -t tmpfs -o size=${size} tmpfs ${quote(mountPoint)}${setup} && exec ${command.map(quote).join(" ")}`;
  return killOnExit(
    spawn("unshare", ["--mount", "sh", "-c", line], {
      stdio: options.stdio ?? ["ignore", "pipe", "inherit"],
    }),
  );
}

/** Spawns a fixture as a child Node process; resolves once it printed a line matching `ready`. */
export async function spawnFixture(
  name: string,
  args: string[],
  ms = 10_000,
  ready = /^ready/,
  env?: Record<string, string>,
): Promise<{ child: ChildProcess; line: string }> {
  const child = killOnExit(
    spawn(process.execPath, [fixture(name), ...args], {
      stdio: ["ignore", "pipe", "inherit"],
      ...(env ? { env: { ...process.env, ...env } } : {}),
    }),
  );
  let out = "";
  const line = await within(
    new Promise<string>((resolve, reject) => {
      child.stdout!.on("data", (d: Buffer) => {
        out += d.toString();
        const line = out.split("\n").find((l) => ready.test(l));
        if (line !== undefined && out.includes("\n")) resolve(line);
      });
      // "close", not "exit": a fixture that prints its ready line and exits at once (a publisher's
      // "done") may have its exit reported before that line is read.
      child.once("close", (code) =>
        reject(new Error(`fixture ${name} exited with ${code} before ready: ${out}`)),
      );
    }),
    ms,
    `fixture ${name} to be ready`,
  );
  return { child, line };
}

/** A seeded pseudo-random generator (mulberry32), so failures replay. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

/** Encodes frames in the wire format, by hand (independent of FrameWriter). */
export function wireFrames(payloads: Uint8Array[]): Buffer {
  const parts: Buffer[] = [];
  for (const p of payloads) {
    const h = Buffer.alloc(4);
    h.writeUInt32BE(p.length);
    parts.push(h, Buffer.from(p));
  }
  return Buffer.concat(parts);
}

/**
 * A test CA and a server certificate it signed for localhost, 127.0.0.1 and ::1 (P-256), made with the
 * openssl command in `dir`.
 */
export function testCertificates(dir: string): {
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
  caFile: string;
  certFile: string;
  keyFile: string;
} {
  const f = (name: string) => path.join(dir, name);
  const ossl = (...args: string[]) => execFileSync("openssl", args, { stdio: "ignore" });
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
  ossl(
    "req",
    "-x509",
    ...ec,
    "-keyout",
    f("ca.key"),
    "-out",
    f("ca.crt"),
    "-subj",
    "/CN=ezipc test CA",
    "-days",
    "2",
  );
  ossl("req", ...ec, "-keyout", f("server.key"), "-out", f("server.csr"), "-subj", "/CN=localhost");
  writeFileSync(f("san.ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\n");
  ossl(
    "x509",
    "-req",
    "-in",
    f("server.csr"),
    "-CA",
    f("ca.crt"),
    "-CAkey",
    f("ca.key"),
    "-CAcreateserial",
    "-out",
    f("server.crt"),
    "-days",
    "2",
    "-extfile",
    f("san.ext"),
  );
  return {
    ca: readFileSync(f("ca.crt")),
    cert: readFileSync(f("server.crt")),
    key: readFileSync(f("server.key")),
    caFile: f("ca.crt"),
    certFile: f("server.crt"),
    keyFile: f("server.key"),
  };
}

/** The lines a child process prints, collected as they come (the array fills in place). */
export function outputLines(child: ChildProcess): string[] {
  const out: string[] = [];
  let buf = "";
  child.stdout!.on("data", (d: Buffer) => {
    buf += d.toString();
    const parts = buf.split("\n");
    buf = parts.pop()!;
    out.push(...parts);
  });
  return out;
}

/**
 * Resolves once `child` has exited and its output pipes are drained and closed, with its exit code. Use
 * it, not "exit", before reading what the child printed: "exit" can come before the last of its output.
 */
export function ended(child: ChildProcess): Promise<number | null> {
  const exited = child.exitCode !== null || child.signalCode !== null;
  // Node counts the pipes after stdin (stdout, stderr, any others) before it emits "close".
  const open = child.stdio.slice(1).some((s) => s != null && !s.closed);
  if (exited && !open) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once("close", (code) => resolve(code)));
}

/** Resolves once `child` has exited (at once if it has), with its exit code. */
export function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once("exit", (code) => resolve(code)));
}

/**
 * Runs a program to its end with stdout and stderr captured together (another language's test runner):
 * resolves with its exit code and output. Bound it with {@link within}.
 */
export function runToEnd(
  command: string,
  args: string[],
  options: { cwd: string; env?: Record<string, string> },
): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = killOnExit(
      spawn(command, args, {
        cwd: options.cwd,
        env: { ...process.env, ...options.env },
        stdio: ["ignore", "pipe", "pipe"],
      }),
    );
    let out = "";
    child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr!.on("data", (d: Buffer) => (out += d.toString()));
    // "close", not "exit": the output may still be in the pipes when the process has exited.
    child.once("close", (code) => resolve({ code, out }));
  });
}

/**
 * The command prefix that runs a program under strace with its fsync and fdatasync calls changed by
 * `injections` (values of `-e inject=`, e.g. `fsync,fdatasync:delay_enter=1000000`): a slow or failing disk.
 * `detachable`: a SIGTERM to strace lets the program go on untraced (-I1, and no seccomp filter, which would
 * stay behind and fail those calls with ENOSYS).
 */
export function underStrace(injections: string[], detachable = false): string[] {
  return [
    "strace",
    "-f",
    "-qq",
    ...(detachable ? ["-I1"] : ["--seccomp-bpf"]),
    ...["-o", "/dev/null", "-e", "trace=fsync,fdatasync"],
    ...injections.flatMap((i) => ["-e", `inject=${i}`]),
  ];
}

/** The pid of `parent`'s (first) child process: the program a wrapper such as strace runs. */
export function childPid(parent: ChildProcess): number {
  return Number(
    execFileSync("pgrep", ["-P", String(parent.pid)])
      .toString()
      .trim()
      .split("\n")[0],
  );
}
