"""The Python side of the client-language benchmark (bench/clients-bench.ts): the roles of
bench/clients-child.ts, with the same output.

    python3 bench.py sub URL TOPIC N | pub URL TOPIC N SIZE | prop URL KEY COUNT
"""

import asyncio
import json
import sys
import time

import ezipc


async def main(role, url, name, a, b=None):
    if role == "sub":
        n = int(a)
        client = await ezipc.connect(url, "sub", reconnect=False)
        done = asyncio.get_running_loop().create_future()
        state = {"seen": 0, "first": 0}

        def on_message(_m):
            if state["seen"] == 0:
                state["first"] = time.perf_counter_ns()
            state["seen"] += 1
            if state["seen"] == n and not done.done():
                done.set_result((time.perf_counter_ns() - state["first"]) / 1e9)

        await client.subscribe(name, handler=on_message)
        print("ready", flush=True)
        seconds = await done
        print(json.dumps({"deliveries": n, "seconds": seconds}), flush=True)
        await client.close()
    elif role == "pub":
        n, payload = int(a), b"\x07" * int(b)
        client = await ezipc.connect(url, "pub", reconnect=False)
        for i in range(n):
            client.publish_and_forget(name, payload)
            if i % 256 == 255:
                await client.drain()
        await client.publish(name + ".done", "x")
        await client.close()
    elif role == "prop":
        count = int(a)
        writer = await ezipc.connect(url, "writer", reconnect=False)
        watcher = await ezipc.connect(url, "watcher", reconnect=False)
        w = await writer.allocate(name, 64, "request")
        p = await watcher.watch(name, "poll")
        waiting = []
        p.on_change(lambda v, d: waiting and not waiting[0].done() and waiting[0].set_result(v))
        data = bytes(64)
        lat = []
        for _ in range(count):
            seen = asyncio.get_running_loop().create_future()
            waiting[:] = [seen]
            t0 = time.perf_counter_ns()
            await w.write(data)
            await seen
            lat.append((time.perf_counter_ns() - t0) / 1000)
        lat.sort()
        print(json.dumps({"propP50": lat[len(lat) // 2], "propP99": lat[min(len(lat) - 1, int(len(lat) * 0.99))]}), flush=True)
        await writer.close()
        await watcher.close()
    else:
        raise SystemExit(f"unknown role {role}")


asyncio.run(main(*sys.argv[1:]))
