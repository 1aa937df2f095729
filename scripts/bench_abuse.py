#!/usr/bin/env python3
"""The attacker and the scraper of `make bench-abuse` (scripts/bench-abuse.sh), on loopback only.

Strangers: IDLE connections that send nothing, and SLOW ones that send a request head one byte
every SLOW_EVERY seconds and never finish it; both reconnect as soon as the server closes them.
Meanwhile one scraper GETs /metrics on a new connection every second, with a 10 s timeout (the
default scrape_timeout of Prometheus), and reads the whole answer.

Prints one `key value` line per figure, then `scrape ...` lines, for the shell script to check.
Standard library only; stops by itself after DURATION seconds.
"""

import argparse
import asyncio
import resource
import time


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--idle", type=int, default=2000)
    p.add_argument("--slow", type=int, default=1000)
    p.add_argument("--slow-every", type=float, default=3.0)
    p.add_argument("--duration", type=float, default=30.0)
    p.add_argument("--scrape-every", type=float, default=1.0)
    p.add_argument("--scrape-timeout", type=float, default=10.0)
    p.add_argument("--pid", type=int, required=True, help="the server's pid, for its RSS")
    return p.parse_args()


class Stats:
    def __init__(self):
        self.connects = {"idle": 0, "slow": 0}
        self.closed_by_server = {"idle": 0, "slow": 0}
        self.connect_errors = 0
        self.open = {"idle": 0, "slow": 0}
        self.peak_open = 0
        self.rss_kb = []


async def stranger(kind, args, stats, stop):
    """One attacker connection, reopened whenever the server closes it."""
    while not stop.is_set():
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(args.host, args.port), timeout=5
            )
        except (OSError, asyncio.TimeoutError):
            stats.connect_errors += 1
            await asyncio.sleep(0.1)  # pacing the attack, not synchronising
            continue
        stats.connects[kind] += 1
        stats.open[kind] += 1
        stats.peak_open = max(stats.peak_open, sum(stats.open.values()))
        try:
            if kind == "slow":
                writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                await writer.drain()
            while not stop.is_set():
                # The server closing the connection ends this read at once.
                timeout = args.slow_every if kind == "slow" else 1.0
                try:
                    data = await asyncio.wait_for(reader.read(1024), timeout=timeout)
                except asyncio.TimeoutError:
                    if kind == "slow":
                        writer.write(b"a")
                        await writer.drain()
                    continue
                if not data:
                    stats.closed_by_server[kind] += 1
                    break
        except OSError:
            stats.closed_by_server[kind] += 1
        finally:
            stats.open[kind] -= 1
            writer.close()


async def scrape_once(args):
    """Seconds to a whole 200 answer, or an error string."""
    started = time.monotonic()

    async def go():
        reader, writer = await asyncio.open_connection(args.host, args.port)
        try:
            writer.write(
                b"GET /metrics HTTP/1.1\r\nHost: scraper\r\nConnection: close\r\n"
                b"Accept: text/plain;version=0.0.4\r\n\r\n"
            )
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            status = head.split(b" ", 2)[1]
            if status != b"200":
                return f"status {status.decode()}"
            length = None
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            body = await (reader.readexactly(length) if length else reader.read())
            if not body:
                return "empty body"
            return time.monotonic() - started
        finally:
            writer.close()

    try:
        return await asyncio.wait_for(go(), timeout=args.scrape_timeout)
    except asyncio.TimeoutError:
        return f"timeout after {args.scrape_timeout:.0f} s"
    except (OSError, asyncio.IncompleteReadError, ValueError, IndexError) as e:
        return f"{type(e).__name__}: {e}"


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


async def main():
    args = parse_args()
    # Each stranger is one file descriptor here.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < args.idle + args.slow + 100:
        raise SystemExit(f"the file descriptor limit {hard} is too low for the strangers")
    stats = Stats()
    stop = asyncio.Event()
    print(f"rss_before_kb {rss_kb(args.pid)}", flush=True)
    tasks = [asyncio.create_task(stranger("idle", args, stats, stop)) for _ in range(args.idle)]
    tasks += [asyncio.create_task(stranger("slow", args, stats, stop)) for _ in range(args.slow)]

    async def watch_rss():
        while not stop.is_set():
            stats.rss_kb.append(rss_kb(args.pid))
            await asyncio.sleep(0.25)  # sampling period

    tasks.append(asyncio.create_task(watch_rss()))
    # The strangers connect first, as an attack in progress would be: the first scrape waits
    # until they are all in (or 15 s).
    deadline = time.monotonic() + 15
    while stats.peak_open < args.idle + args.slow and time.monotonic() < deadline:
        await asyncio.sleep(0.05)  # polling, with the deadline above
    print(f"strangers_connected {stats.peak_open}", flush=True)
    results = []
    end = time.monotonic() + args.duration
    while time.monotonic() < end:
        tick = time.monotonic()
        result = await scrape_once(args)
        results.append(result)
        print(f"scrape {result if isinstance(result, str) else f'{result:.3f}'}"
              f" open_strangers {sum(stats.open.values())}", flush=True)
        await asyncio.sleep(max(0.0, args.scrape_every - (time.monotonic() - tick)))
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)

    ok = sorted(r for r in results if not isinstance(r, str))
    failed = [r for r in results if isinstance(r, str)]
    pct = lambda p: ok[min(len(ok) - 1, int(p * len(ok)))] if ok else float("nan")
    print(f"scrapes {len(results)}")
    print(f"failed {len(failed)}")
    for f in sorted(set(failed)):
        print(f"failure {failed.count(f)} x {f}")
    print(f"p50_s {pct(0.50):.3f}")
    print(f"p99_s {pct(0.99):.3f}")
    print(f"max_s {ok[-1] if ok else float('nan'):.3f}")
    print(f"peak_rss_kb {max(stats.rss_kb, default=0)}")
    print(f"peak_open_strangers {stats.peak_open}")
    for kind in ("idle", "slow"):
        print(f"connects_{kind} {stats.connects[kind]}")
        print(f"closed_by_server_{kind} {stats.closed_by_server[kind]}")
    print(f"connect_errors {stats.connect_errors}")


if __name__ == "__main__":
    asyncio.run(main())
