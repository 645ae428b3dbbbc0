/**
 * What an RPC call carries: payloads, bodies with their helpers, and the request a server's handler
 * receives (with its abort signal, made only when read).
 */

export type Payload = Uint8Array | string;

/** A reply, a chunk or a request body, with helpers. */
export interface Body {
  payload: Uint8Array;
  text(): string;
  json<T = unknown>(): T;
}

/** What a server's handler receives. */
export interface RpcRequest extends Body {
  topic: string;
  headers: Record<string, string>;
  /** `name#id` of the calling client. */
  caller: string;
  /** Aborted when the caller cancels, its deadline passes, or it disconnects. */
  signal: AbortSignal;
}

/** A handler: return the reply (or nothing); return an async iterable to stream chunks. */
export type RpcHandler = (
  req: RpcRequest,
) => Payload | undefined | Promise<Payload | undefined> | AsyncIterable<Payload> | Iterable<Payload>;

export function toBytes(p: Payload | undefined): Uint8Array {
  if (p === undefined) return new Uint8Array(0);
  if (typeof p === "string") return Buffer.from(p, "utf8");
  if (p instanceof Uint8Array) return p;
  throw new TypeError("a payload is a Uint8Array or a string");
}

/** A body: the payload, with its helpers on the prototype (no closures per message). */
export class PayloadBody implements Body {
  constructor(readonly payload: Uint8Array) {}

  text(): string {
    const p = this.payload;
    return Buffer.from(p.buffer, p.byteOffset, p.byteLength).toString("utf8");
  }

  json<T = unknown>(): T {
    return JSON.parse(this.text()) as T;
  }
}

export function body(payload: Uint8Array): Body {
  return new PayloadBody(payload);
}

/**
 * A call's abort switch. Most handlers never read `req.signal`, so the AbortController (the dearest object
 * of a call) is made only when one does; an abort before that is remembered and applied on creation.
 */
export class CallAbort {
  private controller: AbortController | null = null;
  private reason: unknown;
  aborted = false;

  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.aborted) this.controller.abort(this.reason);
    }
    return this.controller.signal;
  }

  abort(reason: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    this.controller?.abort(reason);
  }
}

/** What a handler receives: the body, where it came from, and the call's abort signal. */
export class CallRequest extends PayloadBody implements RpcRequest {
  constructor(
    payload: Uint8Array,
    readonly topic: string,
    readonly headers: Record<string, string>,
    readonly caller: string,
    private readonly abort: CallAbort,
  ) {
    super(payload);
  }

  get signal(): AbortSignal {
    return this.abort.signal;
  }
}
