/**
 * The dashboard's HTML and CSS (the script is dist/browser/dashboard.js, built from
 * src/monitor/dashboard/page.ts). Plain semantic HTML: a table per list, with captions and row headers;
 * the status line is a live region.
 */
/** The page; with `hubKey` (a secure hub), it carries the key to pin and asks for a token. */
export function dashboardHtml(hubKey: string | null): string {
  const key = hubKey
    ? `<meta name="ezipc-hub-key" content="${hubKey.replace(/[^A-Za-z0-9+/=]/g, "")}">\n`
    : "";
  return DASHBOARD_HTML.replace("<!--hub-key-->\n", key);
}

const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ezipc hub</title>
<!--hub-key-->
<link rel="stylesheet" href="/dashboard/uplot.css">
<link rel="stylesheet" href="/dashboard/dashboard.css">
<script type="module" src="/dashboard/dashboard.js"></script>
</head>
<body>
<header>
  <h1>ezipc hub <span id="hub-name"></span></h1>
  <p id="status" role="status" aria-live="polite">connecting…</p>
</header>
<form id="login" hidden>
  <p>This hub is secure: the dashboard connects with a token the hub admits (its <code>--clients</code> list).</p>
  <label for="token">Token</label> <input id="token" name="token" type="password" autocomplete="current-password" required>
  <button type="submit">Connect</button>
</form>
<main>
<section aria-labelledby="h-hub"><h2 id="h-hub" class="visually-hidden">Hub</h2><dl id="hub-figures" class="figures"></dl></section>
<section aria-labelledby="h-clients">
  <h2 id="h-clients">Clients <span id="clients-count"></span></h2>
  <table><caption class="visually-hidden">Clients</caption>
    <thead><tr><th scope="col">client</th><th scope="col">identity</th><th scope="col">transport</th><th scope="col">state</th><th scope="col">pointers request / lazy / poll</th><th scope="col">subscriptions</th><th scope="col">served</th><th scope="col">queued</th><th scope="col">slow-consumer cuts</th></tr></thead>
    <tbody id="clients-body"></tbody></table>
</section>
<section aria-labelledby="h-keys">
  <h2 id="h-keys">Keys <span id="keys-count"></span></h2>
  <p class="hint">Select a key to follow it live.</p>
  <table><caption class="visually-hidden">Keys</caption>
    <thead><tr><th scope="col">key</th><th scope="col">kind</th><th scope="col">size</th><th scope="col">version</th><th scope="col">refs</th><th scope="col">holders (request/lazy/poll)</th><th scope="col">state</th><th scope="col">value</th></tr></thead>
    <tbody id="keys-body"></tbody></table>
  <aside id="watch" hidden aria-live="polite">
    <h3>Watching <code id="watch-key"></code>, version <span id="watch-version"></span></h3>
    <h4>hex</h4><pre id="watch-hex"></pre>
    <h4>JSON</h4><pre id="watch-json"></pre>
  </aside>
</section>
<section aria-labelledby="h-topics">
  <h2 id="h-topics">Topics <span id="topics-count"></span></h2>
  <p class="hint"><span class="pub">published/s</span> and <span class="del">delivered/s</span>, last 30 s.</p>
  <div id="topics-list" class="topics"></div>
</section>
<section aria-labelledby="h-rpc">
  <h2 id="h-rpc">RPC topics</h2>
  <table><caption class="visually-hidden">RPC topics</caption>
    <thead><tr><th scope="col">topic</th><th scope="col">servers</th><th scope="col">calls in flight</th></tr></thead>
    <tbody id="rpc-body"></tbody></table>
  <h2>Deadman tokens</h2>
  <table><caption class="visually-hidden">Deadman tokens</caption>
    <thead><tr><th scope="col">token</th><th scope="col">holder</th><th scope="col">waiting</th></tr></thead>
    <tbody id="deadman-body"></tbody></table>
</section>
</main>
</body>
</html>
`;

export const DASHBOARD_CSS = `:root { color-scheme: light dark; font: 14px/1.4 system-ui, sans-serif; --muted: #6b7280; --line: #d1d5db; }
body { margin: 0 auto; max-width: 1400px; padding: 0 1rem 2rem; }
header { display: flex; align-items: baseline; gap: 1rem; flex-wrap: wrap; }
h1 { font-size: 1.3rem; } h2 { font-size: 1.1rem; margin-top: 1.5rem; } h3 { font-size: 1rem; margin: 0; }
#status.ok { color: #15803d; } #status.bad { color: #b91c1c; }
.figures { display: flex; flex-wrap: wrap; gap: .5rem 1.5rem; margin: 0; }
.figures dt { color: var(--muted); font-size: .8rem; } .figures dd { margin: 0; font-weight: 600; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .2rem .5rem; border-bottom: 1px solid var(--line); vertical-align: top; }
thead th { font-size: .8rem; color: var(--muted); font-weight: 500; }
tbody th { font-weight: 500; }
code { font: 12px ui-monospace, monospace; word-break: break-all; }
.hint { color: var(--muted); margin: 0 0 .5rem; }
#login { border: 1px solid var(--line); border-radius: 6px; padding: .5rem 1rem; max-width: 40rem; }
button.link { background: none; border: 0; padding: 0; font: inherit; color: #2563eb; cursor: pointer; text-align: left; }
button.link[aria-pressed="true"] { font-weight: 700; }
button.link:focus-visible { outline: 2px solid #2563eb; }
#watch { border: 1px solid var(--line); border-radius: 6px; padding: .5rem 1rem; margin-top: .75rem; }
#watch pre { white-space: pre-wrap; word-break: break-all; font-size: 12px; max-height: 16rem; overflow: auto; }
.topics { display: grid; grid-template-columns: repeat(auto-fill, minmax(280px, 1fr)); gap: .75rem; }
.topic { border: 1px solid var(--line); border-radius: 6px; padding: .5rem; }
.topic .figures { display: block; font-size: .8rem; color: var(--muted); margin: .25rem 0; }
.pub { color: #2563eb; } .del { color: #16a34a; }
.visually-hidden { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); }
`;
