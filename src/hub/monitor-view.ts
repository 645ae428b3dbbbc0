/**
 * The hub's `monitor` reply (docs/monitoring.md): one JSON snapshot of what the hub holds — its counters,
 * its clients, and the keys, topics, RPC topics and deadman tokens matching a pattern — for the dashboard
 * (src/monitor/dashboard/) and any client with the `monitor` permission. Each list is sorted and cut at
 * {@link VIEW_LIMIT} entries, so a reply stays bounded whatever the hub holds.
 */
import type { Deadmen } from "../deadman/deadman-hub.js";
import type { ClientView, HubStats, HubView } from "../protocol/core-messages.js";
import { topicMatcher } from "../protocol/names.js";
import type { PubSub } from "../pubsub/pubsub-hub.js";
import type { Rpc } from "../rpc/rpc-hub.js";
import type { Connection } from "../transport/types.js";
import type { VarsPeer } from "../vars/vars-holdings.js";
import type { VarsHub } from "../vars/vars-hub.js";

/** Most entries per list in one view. */
export const VIEW_LIMIT = 500;

/** A client as the hub keeps it, as much as the view needs. */
export interface ViewedClient extends VarsPeer {
  readonly label: string;
  /** When it connected, or lost its connection. */
  readonly since: number;
  readonly slowConsumerCuts: number;
}

/** What the view is made from. */
export interface ViewSource {
  stats(): HubStats;
  clients: Iterable<ViewedClient>;
  labelOf(conn: Connection): string;
  vars: VarsHub;
  pubsub: PubSub;
  rpc: Rpc;
  deadmen: Pick<Deadmen, "describe">;
}

/** The view of `source` for the pattern `pattern` (topic syntax, applied to keys as well; empty: all). */
export function hubView(source: ViewSource, pattern: string): HubView {
  const match = pattern === "" ? () => true : topicMatcher(pattern).match;
  const clients: ClientView[] = [];
  let moreClients = 0;
  for (const c of source.clients) {
    if (clients.length >= VIEW_LIMIT) {
      moreClients++;
      continue;
    }
    const pointers = { request: 0, lazy: 0, poll: 0 };
    for (const h of c.vars.holdings.values()) {
      pointers.request += h.counts[0];
      pointers.lazy += h.counts[1];
      pointers.poll += h.counts[2];
    }
    const conn = c.conn;
    clients.push({
      label: c.label,
      name: c.name,
      identity: conn?.peer?.name ?? "",
      remote: conn?.remoteUrl ?? "",
      since: c.since,
      connected: conn !== null,
      pointers,
      subscriptions: conn ? source.pubsub.subscriptionCount(conn) : 0,
      servedTopics: conn ? source.rpc.servedCount(conn) : 0,
      queuedBytes: conn?.queuedBytes ?? 0,
      slowConsumerCuts: c.slowConsumerCuts,
    });
  }
  clients.sort((a, b) => (a.label < b.label ? -1 : a.label > b.label ? 1 : 0));
  const { keys, more: moreKeys } = source.vars.describeKeys(null, match, VIEW_LIMIT);
  const { topics, more: moreTopics } = source.pubsub.describeTopics(null, match, VIEW_LIMIT);
  const { rpc, more: moreRpc } = source.rpc.describe(match, source.labelOf, VIEW_LIMIT);
  const { deadman, more: moreDeadman } = source.deadmen.describe(match, VIEW_LIMIT);
  return {
    stats: source.stats(),
    now: Date.now(),
    clients,
    keys,
    topics,
    rpc,
    deadman,
    truncated: {
      clients: moreClients,
      keys: moreKeys,
      topics: moreTopics,
      rpc: moreRpc,
      deadman: moreDeadman,
    },
  };
}

/** How long one view is reused for every client asking with the same pattern. */
const VIEW_REUSE_MS = 200;

/**
 * Views as JSON by pattern, each reused for {@link VIEW_REUSE_MS}: ten dashboards asking twice a second cost
 * the hub a few views a second, not twenty. At most 64 patterns are kept.
 */
export class ViewCache {
  private readonly views = new Map<string, { json: string; at: number }>();

  /** The JSON of `pattern`'s view made less than {@link VIEW_REUSE_MS} ago, else of `make()` (which may throw). */
  json(pattern: string, make: () => HubView): string {
    const now = Date.now();
    const last = this.views.get(pattern);
    if (last && now - last.at < VIEW_REUSE_MS) return last.json;
    const json = JSON.stringify(make());
    if (this.views.size >= 64) this.views.clear();
    this.views.set(pattern, { json, at: now });
    return json;
  }
}
