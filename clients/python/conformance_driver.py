"""The Python client's conformance driver (conformance/README.md): JSON commands on stdin, answers on stdout."""

import asyncio
import json
import sys

import ezipc
from ezipc import EzipcError

client = None
ptrs = {}
configs = {}
subs = {}


def ptr(key):
    if key not in ptrs:
        raise RuntimeError(f"no pointer on {key}")
    return ptrs[key]


async def run(op, a):
    global client
    if op == "connect":
        client = await ezipc.connect(a["url"], a["name"])
        return {}
    if op == "allocate":
        p = await client.allocate(a["key"], a["size"], a["policy"], persistent=a.get("persistent", False), open_existing=a.get("openExisting", False))
        ptrs[a["key"]] = p
        return {"version": p.version}
    if op == "watch":
        p = await client.watch(a["key"], a["policy"])
        if p is None:
            return None
        ptrs[a["key"]] = p
        return {"version": p.version}
    if op == "write":
        return {"version": await ptr(a["key"]).write(bytes.fromhex(a["hex"]), a.get("offset", 0))}
    if op == "cas":
        ok, version = await ptr(a["key"]).compare_and_write(a["expect"], bytes.fromhex(a["hex"]))
        return {"ok": ok, "version": version}
    if op == "read":
        data, version = await ptr(a["key"]).read_versioned()
        return {"hex": data.hex(), "version": version}
    if op == "waitVersion":
        p = ptr(a["key"])
        if p.version < a["version"]:
            async for version, _ in p.changes():
                if version >= a["version"]:
                    break
        return {"version": p.version}
    if op == "dispose":
        ptrs.pop(a["key"]).dispose()
        return {}
    if op == "config":
        configs[a["key"]] = await client.config(a["key"], "poll", persistent=False)
        return {}
    if op == "configWrite":
        return {"version": await configs[a["key"]].write(a["doc"])}
    if op == "configMerge":
        return {"version": await configs[a["key"]].merge_patch(a["doc"])}
    if op == "configRead":
        return {"doc": await configs[a["key"]].read()}
    if op == "info":
        return await client.info(a["key"])
    if op == "publish":
        seq, _ = await client.publish(a["topic"], a["text"], a.get("headers"))
        return {"seq": seq}
    if op == "subscribe":
        subs[a["sub"]] = await client.subscribe(a["topic"], init=a["init"], iter=a.get("iter", "next"))
        return {}
    if op == "next":
        m = await subs[a["sub"]].__anext__()
        return {"seq": m.seq, "text": m.text(), "headers": m.headers, "topic": m.topic}
    if op == "serve":
        mode = a["mode"]

        def handler(req):
            if mode == "fail":
                raise EzipcError("EZIPC_BAD_REQUEST", "refused")
            return req.text().upper() if mode == "upper" else req.payload

        await client.serve(a["topic"], handler)
        return {}
    if op == "request":
        return {"text": (await client.request(a["topic"], a["text"], timeout_ms=a.get("timeoutMs", 5000))).text()}
    if op == "tryTake":
        return {"mine": await client.deadman(a["name"]).try_take()}
    if op == "release":
        await client.deadman(a["name"]).release()
        return {}
    if op == "deadmanState":
        s = await client.deadman(a["name"]).state()
        return {"taken": s["taken"], "mine": s["mine"]}
    if op == "close":
        await client.close()
        return {}
    raise RuntimeError(f"unknown op {op}")


def out(v):
    sys.stdout.write(json.dumps(v) + "\n")
    sys.stdout.flush()


async def main():
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    out({"ready": True})
    while True:
        line = await reader.readline()
        if not line:
            return
        cmd = json.loads(line)
        try:
            out({"id": cmd["id"], "ok": True, "result": await run(cmd["op"], cmd.get("args") or {})})
        except EzipcError as e:
            out({"id": cmd["id"], "ok": False, "code": e.code, "message": e.message})
        except (ValueError, TypeError) as e:
            out({"id": cmd["id"], "ok": False, "code": "ARGUMENT", "message": str(e)})
        except Exception as e:
            out({"id": cmd["id"], "ok": False, "code": "ERROR", "message": f"{type(e).__name__}: {e}"})


asyncio.run(main())
