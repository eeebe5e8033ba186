"""Command line (SPEC §1): run, demo, simulate, check-config."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from exporter import __version__, logs
from exporter.config import (
    DEFAULT_LISTEN_ADDRESS,
    ENV_CONFIG,
    Config,
    ConfigError,
    load_config,
    parse_listen_address,
)
from exporter.shard import Shard, parse_shard

EXIT_INVALID_CONFIG = 2
DEFAULT_SIMULATOR_PORT = 9900
# A demo value: the simulators are local fakes, and the key is printed in the config they write.
DEFAULT_SIMULATOR_WEBHOOK_SECRET = "sim-webhook-secret"  # noqa: S105


def _load(path: str | None) -> Config | int:
    if not path:
        print(f"error: no config file: pass --config FILE or set {ENV_CONFIG}", file=sys.stderr)
        return EXIT_INVALID_CONFIG
    try:
        return load_config(path)
    except ConfigError as err:
        count = len(err.problems)
        noun = "problem" if count == 1 else "problems"
        print(f"{path}: invalid configuration ({count} {noun}):", file=sys.stderr)
        for problem in err.problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_INVALID_CONFIG


def cmd_check_config(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if isinstance(config, int):
        return config
    print(f"{args.config}: valid, {len(config.accounts)} accounts")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from exporter.daemon import Daemon

    config = _load(args.config)
    if isinstance(config, int):
        return config
    shard: Shard | None = None
    if args.shard:
        try:
            shard = parse_shard(args.shard)
        except ValueError as err:
            print(f"error: --shard: {err}", file=sys.stderr)
            return EXIT_INVALID_CONFIG
    logs.configure(args.log_level or config.log_level, config.log_format)
    try:
        daemon = Daemon(
            config,
            listen_address=args.listen_address,
            webhook_listen_address=args.webhook_listen_address,
            shard=shard,
            config_path=args.config,
            web_config_path=args.web_config,
        )
    except ConfigError as err:  # the web config
        print(f"{args.web_config}: invalid web configuration:", file=sys.stderr)
        for problem in err.problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_INVALID_CONFIG
    try:
        asyncio.run(daemon.serve())
    except OSError as err:  # e.g. the listen address is taken
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from exporter.demo import run_demo

    logs.configure("info", "auto")
    try:
        asyncio.run(run_demo(args.listen_address))
    except KeyboardInterrupt:
        pass
    except OSError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from exporter.simulator import SIMULATORS, Simulator

    logs.configure("info", "auto")
    names = [cls.name for cls in SIMULATORS]
    sizes: dict[str, int] = {}
    for spec in args.fleet_size or []:
        vendor, sep, count = spec.rpartition("=")
        if not count.isdigit() or (sep and vendor not in names):
            print(
                f"error: --fleet-size: expected N or VENDOR=N (VENDOR one of {', '.join(names)}),"
                f" got {spec!r}",
                file=sys.stderr,
            )
            return EXIT_INVALID_CONFIG
        for name in [vendor] if sep else names:
            sizes[name] = int(count)

    async def serve() -> None:
        sim = Simulator(sizes)
        await sim.start(port=args.port)
        config: dict[str, Any] = {"poll_interval": "30s"}
        if args.webhook_url:
            # e.g. http://127.0.0.1:9842/webhooks: each vendor posts to <url>/<vendor>/<account>
            sim.add_webhooks(args.webhook_url, args.webhook_secret)
            host = urlsplit(args.webhook_url)
            config["webhooks"] = {"listen_address": f"{host.hostname}:{host.port or 80}"}
            config["accounts"] = sim.accounts(webhook_secret=args.webhook_secret)
        else:
            config["accounts"] = sim.accounts()
        print(
            f"vendor simulators listening on http://127.0.0.1:{sim.port}\n"
            "an exporter config that polls them:\n---\n" + yaml.safe_dump(config, sort_keys=False),
            flush=True,
        )
        if args.write_config:
            text = yaml.safe_dump(config, sort_keys=False)
            await asyncio.to_thread(Path(args.write_config).write_text, text, encoding="utf-8")
        try:
            await asyncio.Event().wait()
        finally:
            await sim.stop()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass
    except OSError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


def _listen_address(value: str) -> str:
    try:
        parse_listen_address(value)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="connector-exporter",
        description="Prometheus exporter for the health of SaaS integration connectors.",
    )
    parser.add_argument("--version", action="version", version=f"connector-exporter {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    config_help = f"config file (default: ${ENV_CONFIG})"

    run = sub.add_parser("run", help="poll every configured account and serve /metrics")
    run.add_argument("--config", default=os.environ.get(ENV_CONFIG), help=config_help)
    run.add_argument("--listen-address", help=f"HOST:PORT (default {DEFAULT_LISTEN_ADDRESS})")
    run.add_argument(
        "--webhook-listen-address",
        metavar="HOST:PORT",
        type=_listen_address,
        help="serve vendor webhooks on this address (default: the config's webhooks, else off)",
    )
    run.add_argument("--log-level", type=str.lower, choices=("debug", "info", "warning", "error"))
    run.add_argument(
        "--web-config",
        metavar="FILE",
        help="TLS and basic auth, in the Prometheus exporter-toolkit web config format",
    )
    run.add_argument(
        "--shard",
        metavar="INDEX/COUNT",
        help="poll only this shard's accounts (INDEX may be a pod name ending in its ordinal)",
    )
    run.set_defaults(func=cmd_run)

    demo = sub.add_parser("demo", help="simulators plus the daemon, no credentials needed")
    demo.add_argument("--listen-address", default=DEFAULT_LISTEN_ADDRESS)
    demo.set_defaults(func=cmd_demo)

    simulate = sub.add_parser("simulate", help="only the vendor simulators, on 127.0.0.1")
    simulate.add_argument("--port", type=int, default=DEFAULT_SIMULATOR_PORT)
    simulate.add_argument(
        "--fleet-size",
        action="append",
        metavar="[VENDOR=]N",
        help="serve N generated connectors (for every vendor, or VENDOR=N for one; repeatable)",
    )
    simulate.add_argument("--write-config", metavar="FILE", help="write an exporter config")
    simulate.add_argument(
        "--webhook-url",
        metavar="URL",
        help="send signed vendor webhooks on every fleet change to URL/<vendor>/<account> "
        "(the exporter's webhook listener, e.g. http://127.0.0.1:9842/webhooks)",
    )
    simulate.add_argument(
        "--webhook-secret",
        default=DEFAULT_SIMULATOR_WEBHOOK_SECRET,
        help="the key the simulators sign webhooks with (Apideck's is its API key)",
    )
    simulate.set_defaults(func=cmd_simulate)

    check = sub.add_parser("check-config", help="validate the config file and exit (2: invalid)")
    check.add_argument("--config", default=os.environ.get(ENV_CONFIG), help=config_help)
    check.set_defaults(func=cmd_check_config)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
