"""Command line (SPEC §1): run, demo, simulate, check-config."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from exporter import __version__, logs
from exporter.config import (
    DEFAULT_LISTEN_ADDRESS,
    ENV_CONFIG,
    Config,
    ConfigError,
    load_config,
    split_list,
)
from exporter.families import ALL
from exporter.shard import Shard, parse_shard

EXIT_INVALID_CONFIG = 2
DEFAULT_SIMULATOR_PORT = 9900


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Config keys set by flags; they win over the file's, on every reload too."""
    out: dict[str, Any] = {}
    for key in ("metric_allowlist", "metric_denylist"):
        value = getattr(args, key, None)
        if value is not None:
            out[key] = split_list(value)
    return out


def _load(path: str | None, overrides: dict[str, Any] | None = None) -> Config | int:
    if not path:
        print(f"error: no config file: pass --config FILE or set {ENV_CONFIG}", file=sys.stderr)
        return EXIT_INVALID_CONFIG
    try:
        return load_config(path, overrides=overrides)
    except ConfigError as err:
        count = len(err.problems)
        noun = "problem" if count == 1 else "problems"
        print(f"{path}: invalid configuration ({count} {noun}):", file=sys.stderr)
        for problem in err.problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_INVALID_CONFIG


def cmd_check_config(args: argparse.Namespace) -> int:
    config = _load(args.config, _overrides(args))
    if isinstance(config, int):
        return config
    print(f"{args.config}: valid, {len(config.accounts)} accounts")
    if config.metric_allowlist or config.metric_denylist:
        enabled = config.enabled_families
        print(f"metric families served: {len(enabled)} of {len(ALL)}")
        print(f"  not served: {', '.join(f.name for f in ALL if f.name not in enabled) or '-'}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from exporter.daemon import Daemon

    overrides = _overrides(args)
    config = _load(args.config, overrides)
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
            shard=shard,
            config_path=args.config,
            web_config_path=args.web_config,
            config_overrides=overrides,
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
        config = {"poll_interval": "30s", "accounts": sim.accounts()}
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


def _metric_list_flags(parser: argparse.ArgumentParser) -> None:
    for kind, verb in (("allowlist", "serve only"), ("denylist", "never serve")):
        parser.add_argument(
            f"--metric-{kind}",
            metavar="NAMES",
            help=f"comma-separated metric families (names or regular expressions) to {verb};"
            f" overrides the config's metric_{kind}",
        )


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
    _metric_list_flags(run)
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
    simulate.set_defaults(func=cmd_simulate)

    check = sub.add_parser("check-config", help="validate the config file and exit (2: invalid)")
    check.add_argument("--config", default=os.environ.get(ENV_CONFIG), help=config_help)
    _metric_list_flags(check)
    check.set_defaults(func=cmd_check_config)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
