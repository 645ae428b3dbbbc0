/**
 * Idle processes for the resident-memory table (`memory-bench.ts`). Each role imports only what it uses
 * (dynamic imports), does one round of its work so that its code is loaded, settles, then prints "ready"
 * (servers: "ready URL") and stays idle until killed.
 *   bare                     a Node process that does nothing (the floor)
 *   raw-server URL           a node:net server that echoes length-prefixed frames
 *   raw URL                  a node:net client: one frame echoed
 *   hub URL                  an ezipc hub with its defaults (Hub.listen, as `ezipc serve` minus ws:// and the store)
 *   hub-entry URL            the same hub importing `ezipc/hub` (no shm:// client, bridge, services, monitoring)
 *   cli URL                  `ezipc serve URL --ws ws://127.0.0.1:0`: the CLI's hub, as `npm start` runs it
 *                            (its commands' modules, the WebSocket port with metrics and dashboard)
 *   ez URL                   an ezipc client importing `ezipc/client`: subscribe, one publish received, one
 *                            request answered by itself
 *   ez-full URL              the same client importing `ezipc` (the whole package: hub, cluster, stores too)
 *   nats URL                 a nats.js client: subscribe, one publish received, one request answered by itself
 */
const [role, url] = process.argv.slice(2) as [string, string?];

/** Lets the process settle (allocations of startup released, lazy pages touched) before it is measured. */
function settle(): Promise<void> {
  return new Promise((r) => setTimeout(r, 500));
}

switch (role) {
  case "bare":
    await settle();
    console.log("ready");
    break;
  case "raw-server": {
    const net = await import("node:net");
    const { listenOn, rawFrame, rawFrames } = await import("./raw.js");
    const server = net.createServer((s) => rawFrames(s, (f) => s.write(rawFrame(f))));
    const bound = await listenOn(server, url!);
    await settle();
    console.log(`ready ${bound}`);
    break;
  }
  case "raw": {
    const { rawConnect, rawFrame, rawFrames } = await import("./raw.js");
    const sock = await rawConnect(url!);
    await new Promise<void>((resolve) => {
      rawFrames(sock, () => resolve());
      sock.write(rawFrame(Buffer.alloc(64, 1)));
    });
    await settle();
    console.log("ready");
    break;
  }
  case "hub":
  case "hub-entry": {
    const { Hub } = role === "hub" ? await import("../src/index.js") : await import("../src/hub/index.js");
    const hub = await Hub.listen({ urls: [url!] });
    await settle();
    console.log(`ready ${hub.urls[0]}`);
    break;
  }
  case "cli": {
    const { buildProgram } = await import("../src/cli/main.js");
    // What the command prints ("hub listening on URL") is kept for the tcp:// URL it names.
    let said = "";
    const write = process.stdout.write;
    process.stdout.write = ((chunk: string | Uint8Array) => {
      said += chunk.toString();
      return true;
    }) as typeof process.stdout.write;
    await buildProgram().parseAsync(["serve", url!, "--ws", "ws://127.0.0.1:0"], { from: "user" });
    process.stdout.write = write;
    await settle();
    console.log(`ready ${/hub listening on (tcp:\/\/\S+)/.exec(said)![1]}`);
    break;
  }
  case "ez":
  case "ez-full": {
    const { connect } =
      role === "ez" ? await import("../src/client/index.js") : await import("../src/index.js");
    const c = await connect(url!, { name: "idle" });
    await new Promise<void>((resolve) => {
      void c.subscribe("mem.t", { init: "awaitNew" }, () => resolve()).then(() => c.publish("mem.t", "x"));
    });
    await c.serve("mem.rpc", (req) => req.payload);
    await c.request("mem.rpc", "x");
    await settle();
    console.log("ready");
    break;
  }
  case "nats": {
    const { connect } = await import("nats");
    const u = new URL(url!);
    const nc = await connect({ servers: `${u.hostname}:${u.port}` });
    await new Promise<void>((resolve) => {
      nc.subscribe("mem.t", { callback: () => resolve() });
      void nc.flush().then(() => nc.publish("mem.t", new Uint8Array([1])));
    });
    nc.subscribe("mem.rpc", { callback: (_e, m) => m.respond(m.data) });
    await nc.request("mem.rpc", new Uint8Array([1]), { timeout: 5_000 });
    await settle();
    console.log("ready");
    break;
  }
  default:
    throw new Error(`unknown role ${role}`);
}
