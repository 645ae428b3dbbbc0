/**
 * The hub's dashboard (docs/monitoring.md), as it runs in the page: an `ezipc/browser` client of the hub
 * that serves it, asking `monitor` every {@link PERIOD_MS} and drawing what comes back — hub counters,
 * clients, keys, topics (with publish and delivery rates as uPlot charts), RPC topics and deadman tokens.
 * Clicking a key watches it (`poll`) and shows each new value as it comes. Nothing but the hub's own
 * protocol: the page needs the `monitor` permission (and `watch` to follow a key live). On a secure hub
 * (the page then carries the hub's public key) it asks for a token and connects through the Noise
 * handshake, pinning that key.
 *
 * Built by scripts/build-browser.mjs into dist/browser/dashboard.js; type-checked with DOM types by
 * tsconfig.dashboard.json. Rows carry data attributes (`data-client`, `data-key`, `data-version`) that
 * the Chromium tests read.
 */
import uPlot from "uplot";
import {
  connect,
  type HubClient,
  type HubView,
  type IpcPtr,
  isEzipcError,
  type KeyView,
  type TopicView,
} from "../../browser/index.js";

const PERIOD_MS = 500;
/** Rate samples kept per topic (one per period: 30 s). */
const SAMPLES = 60;

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;
const esc = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const num = (n: number): string => n.toLocaleString("en");
const bytes = (n: number): string =>
  n < 1024 ? `${n} B` : n < 1 << 20 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / (1 << 20)).toFixed(1)} MiB`;
const ago = (ms: number): string => {
  const s = Math.max(0, Math.round(ms / 1000));
  return s < 120 ? `${s} s` : s < 7200 ? `${Math.round(s / 60)} min` : `${Math.round(s / 3600)} h`;
};

/** A topic's card: its row of figures and its chart, kept across refreshes. */
interface TopicCard {
  el: HTMLElement;
  figures: HTMLElement;
  plot: uPlot;
  times: number[];
  publish: number[];
  deliver: number[];
  last: { at: number; seq: number; delivered: number } | null;
}

const cards = new Map<string, TopicCard>();
let client: HubClient | null = null;
let watched: { key: string; ptr: IpcPtr<"poll"> } | null = null;
let lastView: HubView | null = null;

function setStatus(text: string, ok: boolean): void {
  const el = $("status");
  el.textContent = text;
  el.className = ok ? "ok" : "bad";
}

function renderHub(v: HubView): void {
  const s = v.stats;
  $("hub-name").textContent = s.name;
  const figures: [string, string][] = [
    ["uptime", ago(s.uptimeMs)],
    ["clients", `${s.connectedClients} / ${s.clients}`],
    ["keys", num(s.keys)],
    ["pointers", num(s.pointers)],
    ["topics", num(s.topics)],
    ["history", bytes(s.historyBytes)],
    ["published", num(s.published)],
    ["delivered", num(s.delivered)],
    ["calls in flight", num(s.callsInFlight)],
    ["queued", bytes(s.queuedBytes)],
    ["slow-consumer cuts", num(s.slowConsumerCuts)],
    ["protocol errors", num(s.protocolErrors)],
    ["RSS", bytes(s.rssBytes)],
  ];
  $("hub-figures").innerHTML = figures
    .map(([k, val]) => `<div><dt>${esc(k)}</dt><dd>${esc(val)}</dd></div>`)
    .join("");
}

function renderClients(v: HubView): void {
  $("clients-count").textContent = `(${v.clients.length + v.truncated.clients})`;
  $("clients-body").innerHTML = v.clients
    .map((c) => {
      const transport = c.remote ? c.remote.slice(0, c.remote.indexOf(":")) : "—";
      const state = c.connected ? `connected ${ago(v.now - c.since)} ago` : `away ${ago(v.now - c.since)}`;
      return `<tr data-client="${esc(c.label)}"><th scope="row">${esc(c.label)}</th><td>${esc(c.identity || "—")}</td><td>${esc(transport)}</td><td>${esc(state)}</td><td>${c.pointers.request} / ${c.pointers.lazy} / ${c.pointers.poll}</td><td>${c.subscriptions}</td><td>${c.servedTopics}</td><td>${bytes(c.queuedBytes)}</td><td>${c.slowConsumerCuts}</td></tr>`;
    })
    .join("");
}

function keyValue(k: KeyView): string {
  return k.json !== null
    ? `<code>${esc(k.json.length > 80 ? `${k.json.slice(0, 80)}…` : k.json)}</code>`
    : `<code class="hex">${esc(k.hex)}${k.size > 64 ? "…" : ""}</code>`;
}

function renderKeys(v: HubView): void {
  $("keys-count").textContent = `(${v.keys.length + v.truncated.keys})`;
  $("keys-body").innerHTML = v.keys
    .map((k) => {
      const state = k.persistent
        ? "persistent"
        : k.graceLeftMs !== null
          ? `disposed in ${(k.graceLeftMs / 1000).toFixed(1)} s`
          : "live";
      const holders =
        k.holders.map((h) => `${h.client} (${h.request}/${h.lazy}/${h.poll})`).join(", ") +
        (k.moreHolders > 0 ? ` and ${k.moreHolders} more` : "");
      const selected = watched?.key === k.key ? ' aria-pressed="true"' : ' aria-pressed="false"';
      return `<tr data-key="${esc(k.key)}" data-version="${k.version}"><th scope="row"><button type="button" class="link" data-watch="${esc(k.key)}"${selected}>${esc(k.key)}</button></th><td>${k.kind}</td><td>${num(k.size)}</td><td>${k.version}</td><td>${k.refcount}</td><td>${esc(holders || "—")}</td><td>${esc(state)}</td><td>${keyValue(k)}</td></tr>`;
    })
    .join("");
}

function topicCard(name: string): TopicCard {
  let card = cards.get(name);
  if (card) return card;
  const el = document.createElement("article");
  el.className = "topic";
  el.dataset.topic = name;
  el.innerHTML = `<h3>${esc(name)}</h3><p class="figures"></p><div class="chart" role="img" aria-label="publish and delivery rates of ${esc(name)}"></div>`;
  const times: number[] = [];
  const publish: number[] = [];
  const deliver: number[] = [];
  const plot = new uPlot(
    {
      width: 260,
      height: 70,
      legend: { show: false },
      cursor: { show: false },
      axes: [{ show: false }, { size: 40, font: "10px system-ui" }],
      scales: { x: { time: true } },
      series: [
        {},
        { label: "published/s", stroke: "#2563eb", width: 1.5 },
        { label: "delivered/s", stroke: "#16a34a", width: 1.5 },
      ],
    },
    [times, publish, deliver],
    el.querySelector<HTMLElement>(".chart")!,
  );
  card = {
    el,
    figures: el.querySelector<HTMLElement>(".figures")!,
    plot,
    times,
    publish,
    deliver,
    last: null,
  };
  cards.set(name, card);
  return card;
}

function renderTopics(v: HubView): void {
  $("topics-count").textContent = `(${v.topics.length + v.truncated.topics})`;
  const list = $("topics-list");
  const seen = new Set<string>();
  for (const t of v.topics) {
    seen.add(t.name);
    const card = topicCard(t.name);
    sample(card, t, v.now);
    const pubRate = card.publish.at(-1) ?? 0;
    const delRate = card.deliver.at(-1) ?? 0;
    card.figures.innerHTML = `seq ${t.firstSeq}–${t.lastSeq} · ${num(t.count)} kept · ${bytes(t.historyBytes)} · ${t.subscribers} subscribers${t.persist ? " · persisted" : ""}<br><span class="pub">${num(Math.round(pubRate))}/s published</span> · <span class="del">${num(Math.round(delRate))}/s delivered</span>`;
    card.el.dataset.lastSeq = String(t.lastSeq);
    if (card.el.parentElement !== list) list.append(card.el);
  }
  for (const [name, card] of cards) {
    if (seen.has(name)) continue;
    card.plot.destroy();
    card.el.remove();
    cards.delete(name);
  }
}

/** Adds the rates since the last view to a topic's chart. */
function sample(card: TopicCard, t: TopicView, now: number): void {
  const last = card.last;
  card.last = { at: now, seq: t.lastSeq, delivered: t.delivered };
  if (!last || now <= last.at) return;
  const dt = (now - last.at) / 1000;
  card.times.push(now / 1000);
  card.publish.push(Math.max(0, t.lastSeq - last.seq) / dt);
  card.deliver.push(Math.max(0, t.delivered - last.delivered) / dt);
  if (card.times.length > SAMPLES) {
    card.times.shift();
    card.publish.shift();
    card.deliver.shift();
  }
  card.plot.setData([card.times, card.publish, card.deliver]);
}

function renderRpc(v: HubView): void {
  $("rpc-body").innerHTML =
    v.rpc
      .map(
        (r) =>
          `<tr data-rpc="${esc(r.topic)}"><th scope="row">${esc(r.topic)}</th><td>${esc(r.servers.join(", "))}</td><td>${r.inFlight}</td></tr>`,
      )
      .join("") || '<tr><td colspan="3">none</td></tr>';
  $("deadman-body").innerHTML =
    v.deadman
      .map(
        (d) =>
          `<tr data-deadman="${esc(d.name)}"><th scope="row">${esc(d.name)}</th><td>${esc(d.holder || "—")}</td><td>${d.waiting}</td></tr>`,
      )
      .join("") || '<tr><td colspan="3">none</td></tr>';
}

function render(v: HubView): void {
  lastView = v;
  renderHub(v);
  renderClients(v);
  renderKeys(v);
  renderTopics(v);
  renderRpc(v);
}

/** Shows the watched key's value, as the pointer last received it. */
function showWatched(): void {
  const panel = $("watch");
  if (!watched) {
    panel.hidden = true;
    return;
  }
  panel.hidden = false;
  const { key, ptr } = watched;
  $("watch-key").textContent = key;
  if (ptr.disposed) {
    $("watch-version").textContent = "gone";
    return;
  }
  const data = ptr.read() as Uint8Array;
  $("watch-version").textContent = String(ptr.version);
  $("watch").dataset.version = String(ptr.version);
  const hex = [...data.subarray(0, 256)].map((b) => b.toString(16).padStart(2, "0")).join(" ");
  $("watch-hex").textContent = hex + (data.length > 256 ? " …" : "");
  let json = "";
  try {
    json = JSON.stringify(JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(data)), null, 2);
  } catch {
    json = "(not JSON)";
  }
  $("watch-json").textContent = json;
}

async function watchKey(key: string): Promise<void> {
  if (!client) return;
  const previous = watched;
  watched = null;
  previous?.ptr.dispose();
  if (previous?.key === key) {
    showWatched();
    return;
  }
  try {
    const ptr = await client.watch(key, "poll");
    if (!ptr) throw new Error(`${key} is gone`);
    watched = { key, ptr };
    ptr.on("change", showWatched);
    ptr.on("status", showWatched);
    showWatched();
  } catch (err) {
    $("watch").hidden = false;
    $("watch-key").textContent = key;
    $("watch-version").textContent = isEzipcError(err) ? err.code : String(err);
  }
  if (lastView) renderKeys(lastView);
}

async function refresh(): Promise<void> {
  if (!client) return;
  try {
    render(await client.monitor(""));
    setStatus(`live · ${new Date().toLocaleTimeString()}`, true);
  } catch (err) {
    setStatus(isEzipcError(err) ? `${err.code}: ${err.message}` : String(err), false);
  }
}

/** The hub's key when it is secure (the page carries it): then the page needs a token. */
function hubKey(): string | null {
  return document.querySelector<HTMLMetaElement>('meta[name="ezipc-hub-key"]')?.content || null;
}

/** The token: from the address's fragment (`#token=…`, never sent to a server), the session, or the form. */
function askToken(refused: string | null): Promise<string> {
  const fromHash = new URLSearchParams(location.hash.slice(1)).get("token");
  if (fromHash && !refused) {
    history.replaceState(null, "", location.pathname + location.search);
    return Promise.resolve(fromHash);
  }
  const saved = sessionStorage.getItem("ezipc-token");
  if (saved && !refused) return Promise.resolve(saved);
  const form = $<HTMLFormElement>("login");
  form.hidden = false;
  if (refused) setStatus(refused, false);
  else setStatus("a token is needed", false);
  $<HTMLInputElement>("token").focus();
  return new Promise((resolve) => {
    form.onsubmit = (e) => {
      e.preventDefault();
      const token = $<HTMLInputElement>("token").value;
      form.hidden = true;
      resolve(token);
    };
  });
}

/** Connects as the hub asks: plain, or secure with a token (asked again while the hub refuses it). */
async function connectToHub(url: string): Promise<HubClient> {
  const key = hubKey();
  if (!key) return connect(url, { name: "dashboard", waitOnFirstConnect: true });
  let refused: string | null = null;
  for (;;) {
    const token = await askToken(refused);
    try {
      const c = await connect(url, { name: "dashboard", secure: { hubKey: key, token } });
      sessionStorage.setItem("ezipc-token", token);
      return c;
    } catch (err) {
      if (!isEzipcError(err) || (err.code !== "EZIPC_AUTH" && err.code !== "EZIPC_HANDSHAKE")) throw err;
      sessionStorage.removeItem("ezipc-token");
      refused = `${err.code}: ${err.message}`;
    }
  }
}

async function start(): Promise<void> {
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/`;
  $("keys-body").addEventListener("click", (e) => {
    const button = (e.target as HTMLElement).closest<HTMLElement>("[data-watch]");
    if (button?.dataset.watch) void watchKey(button.dataset.watch);
  });
  try {
    client = await connectToHub(url);
  } catch (err) {
    setStatus(isEzipcError(err) ? `${err.code}: ${err.message}` : String(err), false);
    return;
  }
  client.on("status", (s) => setStatus(s, s === "connected"));
  let busy = false;
  const tick = async () => {
    if (busy) return;
    busy = true;
    await refresh();
    busy = false;
  };
  await tick();
  setInterval(tick, PERIOD_MS);
}

void start();
