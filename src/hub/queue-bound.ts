/**
 * The hub's bound on the bytes queued to its peers over all connections (`maxTotalQueuedBytes`). Each
 * connection's queue is bounded (`maxQueuedBytes`; pub/sub stops at its high-water mark), but many
 * connections that stop reading multiply that bound: a hundred servers that take calls without reading them
 * would hold a hundred times 64 MiB. Every 100 ms the queues are summed; over the bound, the largest are cut
 * as slow consumers (`EZIPC_SLOW_CONSUMER`) until the rest fit. Between two looks the total can pass the
 * bound by what the hub sends in 100 ms.
 */
import { EzipcError } from "../errors.js";
import { log } from "../log.js";
import type { Connection } from "../transport/types.js";

const EVERY_MS = 100;

export class QueueBound {
  private readonly timer: NodeJS.Timeout;

  constructor(
    readonly maxBytes: number,
    private readonly connections: () => Iterable<Connection>,
  ) {
    this.timer = setInterval(() => this.check(), EVERY_MS);
    this.timer.unref();
  }

  /** Sums the queues; cuts the largest while over the bound. Returns how many were cut. */
  check(): number {
    let total = 0;
    for (const c of this.connections()) total += c.queuedBytes;
    if (total <= this.maxBytes) return 0;
    const largest = [...this.connections()]
      .map((conn) => ({ conn, queued: conn.queuedBytes }))
      .sort((a, b) => b.queued - a.queued);
    let cut = 0;
    for (const { conn, queued } of largest) {
      if (total <= this.maxBytes || queued === 0) break;
      const message = `cut with ${queued} bytes queued: the hub's connections had ${total} bytes queued, over maxTotalQueuedBytes (${this.maxBytes})`;
      log("warn", "hub", "slow consumer cut (all queues over the bound)", { conn: conn.id, queued, total });
      conn.destroy(new EzipcError("EZIPC_SLOW_CONSUMER", message));
      total -= queued;
      cut++;
    }
    return cut;
  }

  close(): void {
    clearInterval(this.timer);
  }
}
