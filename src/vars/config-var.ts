import { EzipcError } from "../errors.js";
import { jsonDepth, MAX_JSON_DEPTH } from "./json-depth.js";
import type { IpcPtr, PointerStatus } from "./pointer.js";
import type { SyncPolicy } from "./vars-messages.js";

/** Config operations on the wire. */
export const CONFIG_WRITE = 0;
export const CONFIG_WRITE_IF_EMPTY = 1;
export const CONFIG_MERGE_PATCH = 2;

type ConfigOp = (op: number, json: string) => Promise<{ ok: boolean; version: number }>;

/**
 * The document in `data`. A hub only ever holds valid JSON within {@link MAX_JSON_DEPTH} levels; a shm://
 * variable holds what any process of the namespace wrote, so what cannot be read (or would overflow the
 * stack of the copy `read()` returns) is `EZIPC_DECODE`, not a SyntaxError or RangeError.
 */
function parse(key: string, data: Uint8Array | null | undefined): unknown {
  if (!data || data.length === 0) return undefined;
  const text = Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString("utf8");
  if (jsonDepth(text) > MAX_JSON_DEPTH) {
    throw new EzipcError("EZIPC_DECODE", `${key}: its value is nested deeper than ${MAX_JSON_DEPTH} levels`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new EzipcError("EZIPC_DECODE", `${key}: its value is not JSON (${(err as Error).message})`);
  }
}

function stringify(value: unknown): string {
  const json = JSON.stringify(value);
  if (json === undefined) throw new TypeError("a config value must be JSON-serialisable (not undefined)");
  return json;
}

/**
 * A JSON config variable (AlephZero's cfg): a key holding one JSON document, changed as a whole
 * ({@link write}, {@link writeIfEmpty}) or by an RFC 7396 merge patch applied atomically on the hub
 * ({@link mergePatch}). Watch it with the `change` events of {@link pointer} or {@link changes}.
 */
export class ConfigVar {
  private cachedVersion = -1;
  private cached: unknown;

  /** @internal */
  constructor(
    /** The underlying pointer (its events, status, version). */
    readonly pointer: IpcPtr<SyncPolicy>,
    private readonly op: ConfigOp,
  ) {}

  get key(): string {
    return this.pointer.key;
  }
  get version(): number {
    return this.pointer.version;
  }
  get status(): PointerStatus {
    return this.pointer.status;
  }

  /** The document (`undefined` while empty). Resolves from the local copy when fresh. */
  async read(): Promise<unknown> {
    const data = await this.pointer.read();
    const v = this.pointer.version;
    if (v !== this.cachedVersion) {
      this.cached = parse(this.key, data);
      this.cachedVersion = v;
    }
    return structuredClone(this.cached);
  }

  /** Replaces the document. Resolves with the new version once the hub applied it. */
  async write(value: unknown): Promise<number> {
    return (await this.op(CONFIG_WRITE, stringify(value))).version;
  }

  /** Writes only if the variable holds no document yet. Resolves with whether it wrote. */
  async writeIfEmpty(value: unknown): Promise<boolean> {
    return (await this.op(CONFIG_WRITE_IF_EMPTY, stringify(value))).ok;
  }

  /** Applies an RFC 7396 merge patch on the hub (atomic with other writers). Resolves with the new version. */
  async mergePatch(patch: unknown): Promise<number> {
    return (await this.op(CONFIG_MERGE_PATCH, stringify(patch))).version;
  }

  /** Each new document (latest wins when the consumer lags); ends when disposed or invalidated. */
  async *changes(): AsyncGenerator<{ version: number; value: unknown }> {
    for await (const c of this.pointer.changes()) {
      yield { version: c.version, value: c.data ? parse(this.key, c.data) : await this.read() };
    }
  }

  dispose(): void {
    this.pointer.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
