"""Serves one file's bytes from memory as a gzip /metrics body: the floor a scrape can reach.

`python -m bench.static --port P --body FILE`: the same aiohttp server and the same bytes the
exporter served, with nothing to assemble, so that the exporter's scrape latency can be given
as a ratio of it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from aiohttp import web


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--body", required=True)
    args = parser.parse_args()
    body = Path(args.body).read_bytes()
    headers = {
        "Content-Encoding": "gzip",
        "Content-Type": "text/plain; version=0.0.4; charset=utf-8",
    }

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=body, headers=headers)

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    web.run_app(app, host="127.0.0.1", port=args.port, print=lambda *_: print("ready", flush=True))


if __name__ == "__main__":
    main()
