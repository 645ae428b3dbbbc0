import { EventEmitter } from "node:events";
import type { EzipcError } from "../errors.js";
import { isThenable } from "../thenable.js";

/** A message as a subscriber receives it. */
export interface TopicMessage {
  topic: string;
  /** Per-topic sequence number: 1, 2, … (a bigint: safe beyond 2^53). */
  seq: bigint;
  /** Publish time on the hub, milliseconds since the epoch. */
  time: number;
  /** `name#id` of the publisher (`hub` for hub announcements). */
  publisher: string;
  headers: Record<string, string>;
  payload: Uint8Array;
  /** The payload as UTF-8 text. */
  text(): string;
  /** The payload parsed as JSON. */
  json<T = unknown>(): T;
}

/** Messages first..last of `topic` were evicted from its history before this subscription got them. */
export interface Gap {
  topic: string;
  first: bigint;
  last: bigint;
}

/** Where a subscription starts (AlephZero's INIT). */
export type SubscribeInit = "oldest" | "mostRecent" | "awaitNew" | { fromSeq: bigint };
/** How it advances (AlephZero's ITER): every message in order, or the newest at each delivery. */
export type SubscribeIter = "next" | "newest";

export interface SubscribeOptions {
  /** Default `awaitNew`. Applies to each matching topic when subscribing; topics created later start at their first message. */
  init?: SubscribeInit;
  /** Default `next`. */
  iter?: SubscribeIter;
  /**
   * Messages the hub may send ahead of the consumer (`next` only; `newest` asks for one at a time, so it
   * gets the newest each time it is ready). Default 16384 ({@link DEFAULT_PREFETCH}). This is the only
   * buffer: a slow consumer makes the
   * hub wait, not queue.
   */
  prefetch?: number;
  /**
   * Bytes of payload the hub may send ahead of the consumer, estimated from the messages seen so far: the
   * window is `prefetch` messages or `prefetchBytes` / the average payload, whichever is less. Until the
   * first messages tell their size, at most 256 are asked for. Default 8 MiB.
   */
  prefetchBytes?: number;
  /**
   * Called with each gap (messages evicted before this subscription got them), from the first one on —
   * including a gap found while subscribing, before subscribe() resolves. Without it, gaps that arrive
   * before a `gap` listener is added are kept and emitted to the first one.
   */
  onGap?: (gap: Gap) => void;
}

/**
 * Default {@link SubscribeOptions.prefetch}. The window must cover what arrives while the consumer's credit
 * is on its way to the hub, and a busy machine can take a scheduler slice (milliseconds) to run the hub:
 * at 64 B, 16384 against 4096 carried 15–20% more from one publisher to one subscriber through the hub, and
 * 10% more to ten (2 cores). `prefetchBytes` still bounds the window in bytes.
 */
export const DEFAULT_PREFETCH = 16_384;

/** Default {@link SubscribeOptions.prefetchBytes}. */
export const DEFAULT_PREFETCH_BYTES = 8 * 1024 * 1024;

/** The options of a subscription with their defaults, checked (RangeError/TypeError on bad values). */
export function subscribeDefaults(options: SubscribeOptions): {
  init: SubscribeInit;
  iter: SubscribeIter;
  prefetch: number;
  prefetchBytes: number;
} {
  const init = options.init ?? "awaitNew";
  const iter = options.iter ?? "next";
  const prefetch = options.prefetch ?? DEFAULT_PREFETCH;
  if (!Number.isInteger(prefetch) || prefetch < 1 || prefetch > 65_536) {
    throw new RangeError("prefetch must be an integer 1..65536");
  }
  const prefetchBytes = options.prefetchBytes ?? DEFAULT_PREFETCH_BYTES;
  if (!Number.isInteger(prefetchBytes) || prefetchBytes < 1) {
    throw new RangeError("prefetchBytes must be a positive integer");
  }
  if (typeof init === "object" && init !== null) {
    if (typeof init.fromSeq !== "bigint") throw new TypeError("init.fromSeq must be a bigint");
    // (Seqs are u64 on the wire; shm:// went on with any bigint, a hub refused it only when encoding.)
    if (init.fromSeq < 0n || init.fromSeq >= 1n << 64n) {
      throw new RangeError(`init.fromSeq must be in 0..2^64-1, got ${init.fromSeq}`);
    }
  } else if (init !== "oldest" && init !== "mostRecent" && init !== "awaitNew") {
    throw new TypeError(
      `init must be "oldest", "mostRecent", "awaitNew" or { fromSeq: bigint }, got ${JSON.stringify(init)}`,
    );
  }
  if (iter !== "next" && iter !== "newest") {
    throw new TypeError(`iter must be "next" or "newest", got ${JSON.stringify(iter)}`);
  }
  return { init, iter, prefetch, prefetchBytes };
}
/** Messages asked for before any has told its size. */
const INITIAL_WINDOW = 256;
/** Counted per message on top of its payload (headers, framing) when sizing the window. */
const MESSAGE_COST_BYTES = 32;

/** Gaps kept for a `gap` listener not added yet. */
const MAX_HELD_GAPS = 1_000;

export interface SubscriptionEvents {
  gap: [gap: Gap];
  /** The subscription failed (e.g. rejected again after a reconnect); it is closed. */
  error: [error: EzipcError];
}

/** What the subscription needs from its client (kept internal). */
export interface SubscriptionHost {
  credit(sub: Subscription, n: number): void;
  unsubscribe(sub: Subscription): void;
}

/**
 * A live subscription: an async iterable of {@link TopicMessage}s (or a handler called one message at a
 * time). Survives reconnects: it resumes each topic after the last seq it received, so nothing is lost or
 * repeated while the messages are still in the topic's history (a `gap` event says when they were not).
 */
export class Subscription extends EventEmitter<SubscriptionEvents> implements AsyncIterable<TopicMessage> {
  /** Last message (or gap end) received per topic: where a resume continues from. */
  private readonly last = new Map<string, { readonly seq: bigint }>();
  /** The last message of a single-topic subscription (kept as is: its seq is read only when needed). */
  private lastOfPattern: { readonly seq: bigint } | undefined;
  private readonly wildcard: boolean;
  private readonly queue: TopicMessage[] = [];
  /** Gaps that arrived while nobody listened for `gap` (bounded: the oldest are kept). */
  private readonly heldGaps: Gap[] = [];
  private wake: (() => void) | null = null;
  private closedFlag = false;
  /** Credit the hub holds (messages it may still send). */
  outstanding = 0;
  /** Average payload bytes of the messages received (0: none yet), for the credit window. */
  private avgBytes = 0;
  private busy = false;
  /** A consumer is waiting for a message (pull mode for `newest`). */
  private wanting = false;

  /** @internal */
  constructor(
    readonly sid: number,
    readonly pattern: string,
    readonly init: SubscribeInit,
    readonly iter: SubscribeIter,
    readonly prefetch: number,
    private readonly host: SubscriptionHost,
    private readonly handler?: (m: TopicMessage) => unknown,
    private readonly onGap?: (gap: Gap) => void,
    readonly prefetchBytes = DEFAULT_PREFETCH_BYTES,
  ) {
    super();
    this.wildcard = /(^|\.)(\*|>)(\.|$)/.test(pattern);
    (this as EventEmitter).on("newListener", (event: string | symbol) => {
      if (event !== "gap" || this.heldGaps.length === 0) return;
      // Emitted once the listener is in place (newListener runs before it is added).
      process.nextTick(() => {
        const held = this.heldGaps.splice(0);
        for (const g of held) this.emit("gap", g);
      });
    });
  }

  /** The last seq received per topic (where a resume continues from). */
  get lastSeq(): Map<string, bigint> {
    const out = new Map<string, bigint>();
    if (this.lastOfPattern) out.set(this.pattern, this.lastOfPattern.seq);
    for (const [topic, m] of this.last) out.set(topic, m.seq);
    return out;
  }

  get closed(): boolean {
    return this.closedFlag;
  }

  /**
   * @internal The credit to give when (re)subscribing; the subscription's accounting starts over from it
   * (credit asked of a lost connection is gone with it).
   */
  resetCredit(): number {
    const credit = this.initialCredit();
    this.outstanding = credit;
    return credit;
  }

  /**
   * Messages the hub may have sent ahead of the consumer: `prefetch`, or fewer when `prefetchBytes` of
   * messages of the average size seen are fewer; {@link INITIAL_WINDOW} until a message has been seen.
   */
  private window(): number {
    const byBytes = this.avgBytes > 0 ? Math.floor(this.prefetchBytes / this.avgBytes) : INITIAL_WINDOW;
    return Math.max(1, Math.min(this.prefetch, byBytes));
  }

  /** @internal The credit to give when (re)subscribing. */
  initialCredit(): number {
    if (this.iter === "newest") return this.handler ? (this.busy ? 0 : 1) : this.wanting ? 1 : 0;
    return Math.max(0, this.window() - this.queue.length);
  }

  /** @internal Consecutive messages of one topic from the hub. */
  deliver(ms: readonly TopicMessage[]): void {
    if (this.closedFlag || ms.length === 0) return;
    this.outstanding = Math.max(0, this.outstanding - ms.length);
    // The average size from at most 8 of them, spread over the batch (a pass over every message was a
    // measurable part of a 64 B fan-out).
    const step = ms.length <= 8 ? 1 : ms.length >> 3;
    let bytes = 0;
    let seen = 0;
    for (let i = 0; i < ms.length; i += step, seen++) bytes += ms[i]!.payload.length + MESSAGE_COST_BYTES;
    const avg = bytes / seen;
    this.avgBytes = this.avgBytes === 0 ? avg : this.avgBytes + (avg - this.avgBytes) / 8;
    const m = ms[ms.length - 1]!;
    if (this.wildcard) this.last.set(m.topic, m);
    else this.lastOfPattern = m;
    if (this.handler && !this.busy && this.queue.length === 0) {
      this.handOver(ms);
      return;
    }
    for (let i = 0; i < ms.length; i++) this.queue.push(ms[i]!);
    if (this.handler) this.drainToHandler();
    else {
      this.wake?.();
    }
  }

  /**
   * {@link drainToHandler} for a batch that arrives while nothing waits: handed over from the batch itself,
   * not through the queue (a push and a shift per message were a measurable part of a 64 B subscriber).
   * The credit check runs once for the messages taken (nothing can be sent between them anyway).
   */
  private handOver(ms: readonly TopicMessage[]): void {
    this.busy = true;
    let taken = 0;
    for (let i = 0; i < ms.length && !this.closedFlag; i++) {
      const pending = this.callHandler(ms[i]!);
      taken++;
      if (pending) {
        // The rest waits in the queue, behind this handler's promise, as drainToHandler would have it.
        for (let j = i + 1; j < ms.length; j++) this.queue.push(ms[j]!);
        this.consumed(taken - 1);
        this.awaitHandler(pending);
        return;
      }
    }
    this.consumed(taken);
    this.busy = false;
    // What was delivered while the handler ran (it published to this topic, say), then newest's ask.
    this.drainToHandler();
  }

  /** @internal */
  gap(g: Gap): void {
    if (this.wildcard) this.last.set(g.topic, { seq: g.last });
    else this.lastOfPattern = { seq: g.last };
    this.onGap?.(g);
    // A gap can arrive before subscribe() resolved (a `fromSeq` older than the history): it is kept until a
    // `gap` listener exists, then emitted to it.
    if (this.listenerCount("gap") > 0) this.emit("gap", g);
    else if (this.heldGaps.length < MAX_HELD_GAPS) this.heldGaps.push(g);
  }

  /** @internal */
  fail(error: EzipcError): void {
    this.close();
    this.emit("error", error);
  }

  /** Stops the subscription; iterators end after the messages already received. */
  unsubscribe(): void {
    if (this.closedFlag) return;
    this.host.unsubscribe(this);
    this.close();
  }

  private close(): void {
    this.closedFlag = true;
    this.wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<TopicMessage> {
    if (this.handler) throw new TypeError("this subscription delivers to its handler");
    while (true) {
      const m = this.queue.shift();
      if (m) {
        this.consumedOne();
        yield m;
        continue;
      }
      if (this.closedFlag) return;
      if (this.iter === "newest" && this.outstanding === 0) this.ask(1);
      this.wanting = true;
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
      this.wake = null;
      this.wanting = false;
    }
  }

  /** A message was taken: once half the window is free, asks the hub for that much more. */
  private consumedOne(): void {
    this.consumed(1);
  }

  /** `n` messages were taken (0: none, nothing to do). */
  private consumed(n: number): void {
    if (n === 0 || this.iter === "newest") return; // newest asks per message
    const window = this.window();
    const room = window - this.outstanding - this.queue.length;
    if (room >= Math.max(1, window >> 1)) this.ask(room);
  }

  private ask(n: number): void {
    if (this.closedFlag) return;
    this.outstanding += n;
    this.host.credit(this, n);
  }

  private drainToHandler(): void {
    if (this.busy || !this.handler) return;
    this.busy = true;
    // Synchronous handlers run in a loop; a handler that returns a promise is awaited before the next.
    while (!this.closedFlag) {
      const m = this.queue.shift();
      if (!m) break;
      const pending = this.callHandler(m);
      if (pending) {
        this.awaitHandler(pending);
        return;
      }
      this.consumedOne();
    }
    this.busy = false;
    if (this.iter === "newest" && !this.closedFlag && this.outstanding === 0) this.ask(1);
  }

  /** Calls the handler with `m`; its promise if it returned one (the next message waits for it). */
  private callHandler(m: TopicMessage): PromiseLike<unknown> | undefined {
    let r: unknown;
    try {
      r = this.handler!(m);
    } catch {
      return undefined; // a throwing handler does not stop the subscription
    }
    return isThenable(r) ? r : undefined;
  }

  /** The next message goes to the handler once `pending` settles, however it settles. */
  private awaitHandler(pending: PromiseLike<unknown>): void {
    void pending.then(
      () => this.afterHandler(),
      () => this.afterHandler(),
    );
  }

  private afterHandler(): void {
    this.consumedOne();
    this.busy = false;
    this.drainToHandler();
  }
}
