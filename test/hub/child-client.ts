import { type ChildProcess, spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { fixture, killOnExit, within } from "../helpers.js";

type Reply = {
  id?: number;
  ok?: boolean;
  result?: unknown;
  error?: string;
  event?: string;
  [k: string]: unknown;
};

/** A hub client running in a child process (test/fixtures/hub-client.ts), driven by commands. */
export class ChildClient {
  readonly events: Reply[] = [];
  private nextId = 1;
  private readonly waiting = new Map<number, (r: Reply) => void>();
  private readonly eventWaiters: { match: (r: Reply) => boolean; resolve: (r: Reply) => void }[] = [];
  readonly exited: Promise<number | null>;

  private constructor(readonly child: ChildProcess) {
    createInterface({ input: child.stdout! }).on("line", (line) => {
      const r = JSON.parse(line) as Reply;
      if (r.id !== undefined) {
        this.waiting.get(r.id)?.(r);
        this.waiting.delete(r.id);
        return;
      }
      this.events.push(r);
      for (const w of [...this.eventWaiters]) {
        if (w.match(r)) {
          this.eventWaiters.splice(this.eventWaiters.indexOf(w), 1);
          w.resolve(r);
        }
      }
    });
    this.exited = new Promise((resolve) => child.once("exit", (code) => resolve(code)));
  }

  static async start(url: string, name: string, options?: object): Promise<ChildClient> {
    const args = [fixture("hub-client.js"), url, name, ...(options ? [JSON.stringify(options)] : [])];
    const child = killOnExit(spawn(process.execPath, args, { stdio: ["pipe", "pipe", "inherit"] }));
    const c = new ChildClient(child);
    await c.event((r) => r.event === "ready", 10_000, `${name} ready`);
    return c;
  }

  /** Resolves with the first event (already seen or future) matching `match`. */
  event(match: (r: Reply) => boolean, ms = 10_000, what = "event"): Promise<Reply> {
    const seen = this.events.find(match);
    if (seen) return Promise.resolve(seen);
    return within(new Promise<Reply>((resolve) => this.eventWaiters.push({ match, resolve })), ms, what);
  }

  /** Runs one command; resolves with its result, rejects with its error code. */
  async cmd<T = unknown>(op: string, args: Record<string, unknown> = {}, ms = 20_000): Promise<T> {
    const id = this.nextId++;
    const reply = within(
      new Promise<Reply>((resolve) => this.waiting.set(id, resolve)),
      ms,
      `${op} ${JSON.stringify(args)}`,
    );
    this.child.stdin!.write(`${JSON.stringify({ id, op, ...args })}\n`);
    const r = await reply;
    if (!r.ok) throw Object.assign(new Error(`${op}: ${r.error}`), { code: r.error });
    return r.result as T;
  }

  kill(signal: NodeJS.Signals = "SIGKILL"): Promise<number | null> {
    this.child.kill(signal);
    return this.exited;
  }

  /** Resolves once the process has exited (after a kill). */
  async exitedQuietly(): Promise<void> {
    await within(this.exited, 5_000, "child exit");
  }

  async exit(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    await this.cmd("exit").catch(() => {});
    await within(this.exited, 5_000, "child exit");
  }
}
