"""A TCP relay that delays every byte by a fixed time each way: a distant region's link,
rehearsed on one machine (the kernel here has no `netem` qdisc, so `tc` cannot add delay).

Run as `python -m hastack.runtime.wan_link --listen HOST:PORT --to HOST:PORT --delay-ms N`.
Order is kept and nothing is dropped: each chunk read is written on after `delay-ms`, so
a round trip through the relay takes twice the delay, as a link of that one-way latency.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal

log = logging.getLogger("hastack.wan_link")

CHUNK = 65536
QUEUED_CHUNKS = 256
"""At most 16 MiB in flight each way."""


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay_s: float) -> None:
    """Copy `reader` to `writer`, each chunk `delay_s` after it arrived; then half-close."""
    loop = asyncio.get_running_loop()
    # Bounded: a fast sender (a pg_basebackup) waits instead of filling memory.
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(maxsize=QUEUED_CHUNKS)

    async def feed() -> None:
        try:
            while data := await reader.read(CHUNK):
                await queue.put((loop.time() + delay_s, data))
        except (ConnectionError, OSError):
            pass
        await queue.put((loop.time() + delay_s, b""))

    feeder = asyncio.create_task(feed())
    try:
        while True:
            due, data = await queue.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        return
    finally:
        feeder.cancel()


async def _relay(
    client_r: asyncio.StreamReader,
    client_w: asyncio.StreamWriter,
    target: tuple[str, int],
    delay_s: float,
) -> None:
    try:
        server_r, server_w = await asyncio.wait_for(asyncio.open_connection(*target), 10)
    except (OSError, TimeoutError) as exc:
        log.warning("cannot reach %s:%d: %s", *target, exc)
        client_w.close()
        return
    try:
        await asyncio.gather(_pipe(client_r, server_w, delay_s), _pipe(server_r, client_w, delay_s))
    finally:
        for w in (client_w, server_w):
            w.close()
            with contextlib.suppress(ConnectionError, OSError):
                await w.wait_closed()


async def serve(listen: tuple[str, int], target: tuple[str, int], delay_s: float) -> None:
    server = await asyncio.start_server(
        lambda r, w: _relay(r, w, target, delay_s), listen[0], listen[1], reuse_address=True
    )
    log.info("relaying %s:%d -> %s:%d, %.0f ms each way", *listen, *target, delay_s * 1000)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="hastack.runtime.wan_link")
    parser.add_argument("--listen", type=_address, required=True)
    parser.add_argument("--to", type=_address, required=True)
    parser.add_argument("--delay-ms", type=float, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    asyncio.run(serve(args.listen, args.to, args.delay_ms / 1000))


if __name__ == "__main__":
    main()
