"""The Python client's conformance driver (conformance/README.md): JSON commands on stdin, answers on stdout."""

import asyncio
import json
import sys

import re
from urllib.parse import urlparse

import ezipc
from ezipc import EzipcError, schema
from ezipc.wire import CLOSE, Control, FrameDecoder, data_frame

client = None
ptrs = {}
configs = {}
subs = {}
tagged = {}  # ops started with a tag, awaited by "await"
called = {}  # calls received per served topic
call_event = asyncio.Event()
reconnects = 0
reconnects_seen = 0
reconnect_event = asyncio.Event()


def on_status(status):
    global reconnects
    if status == "connected":
        reconnects += 1
        reconnect_event.set()


async def raw_hello(url, protocol):
    """A raw connection: hello with `protocol`; returns the reader, writer, decoder and the hub's first message."""
    u = urlparse(url)
    reader, writer = await asyncio.open_connection(u.hostname, u.port)
    writer.write(data_frame(schema.encode("hello", {"protocol": protocol, "name": "raw", "resume": None, "features": []})))
    decoder = FrameDecoder()
    while True:
        chunk = await reader.read(65536)
        if not chunk:
            raise EzipcError("EZIPC_CONNECTION_CLOSED", "closed before answering")
        for f in decoder.feed(chunk):
            if not isinstance(f, Control):
                return reader, writer, decoder, schema.decode(f)


def ptr(key):
    if key not in ptrs:
        raise RuntimeError(f"no pointer on {key}")
    return ptrs[key]


async def run(op, a):
    global client
    if op == "connect":
        client = await ezipc.connect(a["url"], a["name"])
        client.on_status(on_status)
        return {}
    if op == "waitReconnect":
        global reconnects_seen
        while reconnects <= reconnects_seen:
            reconnect_event.clear()
            await reconnect_event.wait()
        reconnects_seen = reconnects
        return {}
    if op == "rawHello":
        _, writer, _, (name, body) = await raw_hello(a["url"], a["protocol"])
        writer.close()
        if name == "error":
            raise EzipcError(body["code"], body["message"])
        return {"protocol": body["protocol"]}
    if op == "rawFrame":
        reader, writer, decoder, (name, _) = await raw_hello(a["url"], 2)
        if name != "welcome":
            raise RuntimeError(f"expected welcome, got {name}")
        writer.write(data_frame(bytes.fromhex(a["hex"])))
        try:
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    return {"closed": ""}
                for f in decoder.feed(chunk):
                    if isinstance(f, Control):
                        if f.kind == CLOSE:
                            m = re.match(r"(EZIPC_[A-Z_]+)", f.argument.decode("utf-8", "replace"))
                            return {"closed": m.group(1) if m else ""}
                    else:
                        n, b = schema.decode(f)
                        if n == "error":
                            return {"error": b["code"]}
        except ConnectionError:
            return {"closed": ""}
        finally:
            writer.close()
    if op == "await":
        outcome = await tagged.pop(a["tag"])
        if outcome[0] == "err":
            raise _Failed(outcome[1], outcome[2])
        return outcome[1]
    if op == "casIncrement":
        p = ptr(a["key"])
        for _ in range(a["times"]):
            while True:
                data, version = await p.read_versioned()
                ok, _ = await p.compare_and_write(version, (int.from_bytes(data, "little") + 1).to_bytes(4, "little"))
                if ok:
                    break
        return {}
    if op == "take":
        await client.deadman(a["name"]).take()
        return {}
    if op == "waitCalled":
        while called.get(a["topic"], 0) < 1:
            call_event.clear()
            await call_event.wait()
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

        topic = a["topic"]

        async def handler(req):
            called[topic] = called.get(topic, 0) + 1
            call_event.set()
            if mode == "fail":
                raise EzipcError("EZIPC_BAD_REQUEST", "refused")
            if mode == "slow":
                await asyncio.sleep(2)
            if mode == "hang":
                await asyncio.sleep(60)
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


class _Failed(Exception):
    """A tagged op's failure, answered as it was (code and message)."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code, self.message = code, message


async def answer(cmd):
    try:
        out({"id": cmd["id"], "ok": True, "result": await run(cmd["op"], cmd.get("args") or {})})
    except _Failed as e:
        out({"id": cmd["id"], "ok": False, "code": e.code, "message": e.message})
    except EzipcError as e:
        out({"id": cmd["id"], "ok": False, "code": e.code, "message": e.message})
    except (ValueError, TypeError) as e:
        out({"id": cmd["id"], "ok": False, "code": "ARGUMENT", "message": str(e)})
    except Exception as e:
        out({"id": cmd["id"], "ok": False, "code": "ERROR", "message": f"{type(e).__name__}: {e}"})


async def settle(aw):
    """An op started with a tag: its outcome, as `await` answers it."""
    try:
        return ("ok", await aw)
    except EzipcError as e:
        return ("err", e.code, e.message)
    except (ValueError, TypeError) as e:
        return ("err", "ARGUMENT", str(e))
    except Exception as e:
        return ("err", "ERROR", f"{type(e).__name__}: {e}")


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
        if cmd.get("tag"):
            tagged[cmd["tag"]] = asyncio.ensure_future(settle(run(cmd["op"], cmd.get("args") or {})))
            out({"id": cmd["id"], "ok": True, "result": {"started": cmd["tag"]}})
            continue
        await answer(cmd)


asyncio.run(main())
