"""Command line (SPEC §1): run, demo, simulate, check-config."""

from __future__ import annotations

import argparse
import asyncio
import errno
import os
import socket
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

import yaml

from exporter import __version__, logs
from exporter.config import (
    DEFAULT_LISTEN_ADDRESS,
    ENV_CONFIG,
    LISTEN_ADDRESS_FORMS,
    Config,
    ConfigError,
    Problem,
    load_config,
    parse_listen_address,
    split_list,
)
from exporter.families import ALL
from exporter.shard import Shard, parse_shard

# Every bad input (usage, config, an address that cannot be bound) exits 2 with one clear line.
EXIT_INVALID_CONFIG = 2
EXIT_INTERRUPTED = 130
DEFAULT_SIMULATOR_PORT = 9900
# The demo serves simulated data only to this machine; `run` keeps SPEC's 0.0.0.0 default.
DEFAULT_DEMO_LISTEN_ADDRESS = "127.0.0.1:9841"


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (argparse prints the whole usage block first)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_INVALID_CONFIG, f"{self.prog}: error: {message} (see --help)\n")


def listen_address_arg(value: str) -> str:
    """argparse type of every `--*listen-address`: a bad one is a usage error, not a traceback."""
    try:
        parse_listen_address(value)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{value!r}: {err}") from None
    return value


def _port_arg(value: str) -> int:
    if not (value.isascii() and value.isdigit()) or int(value) > 65535:
        raise argparse.ArgumentTypeError(f"{value!r}: expected a port number from 0 to 65535")
    return int(value)


def _shard_arg(value: str) -> Shard:
    try:
        return parse_shard(value)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_INVALID_CONFIG


def _bind_error(address: str, err: OSError) -> int:
    """Why `address` could not be listened on, in words, from the error the bind raised."""
    if isinstance(err, socket.gaierror):
        reason = "cannot resolve the host name"
    elif err.errno == errno.EADDRINUSE:
        reason = "the port is already in use (another exporter or demo running?)"
    elif err.errno == errno.EADDRNOTAVAIL:
        reason = "this machine has no such address"
    elif err.errno == errno.EACCES:
        reason = "permission denied (ports below 1024 need privileges)"
    else:
        reason = err.strerror or str(err)
    return _error(f"cannot listen on {address}: {reason}")


def _print_problems(path: str, what: str, problems: list[Problem]) -> int:
    if len(problems) == 1:
        print(f"{path}: invalid {what}: {problems[0]}", file=sys.stderr)
        return EXIT_INVALID_CONFIG
    print(f"{path}: invalid {what} ({len(problems)} problems):", file=sys.stderr)
    for problem in problems:
        print(f"  {problem}", file=sys.stderr)
    return EXIT_INVALID_CONFIG


# A demo value: the simulators are local fakes, and the key is printed in the config they write.
DEFAULT_SIMULATOR_WEBHOOK_SECRET = "sim-webhook-secret"  # noqa: S105


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
        return _error(f"no config file: pass --config FILE or set {ENV_CONFIG}")
    try:
        return load_config(path, overrides=overrides)
    except ConfigError as err:
        return _print_problems(path, "configuration", err.problems)


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
    shard: Shard | None = args.shard
    logs.configure(args.log_level or config.log_level, config.log_format)
    try:
        daemon = Daemon(
            config,
            listen_address=args.listen_address,
            webhook_listen_address=args.webhook_listen_address,
            shard=shard,
            config_path=args.config,
            web_config_path=args.web_config,
            config_overrides=overrides,
        )
    except ConfigError as err:  # the web config
        return _print_problems(args.web_config, "web configuration", err.problems)
    try:
        asyncio.run(daemon.serve())
    except OSError as err:  # the listen address cannot be bound
        return _bind_error(daemon.listen_address, err)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from exporter.demo import run_demo

    logs.configure("info", "auto")
    try:
        asyncio.run(run_demo(args.listen_address))
    except KeyboardInterrupt:
        pass
    except OSError as err:
        return _bind_error(args.listen_address, err)
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from exporter.simulator import SIMULATORS, Simulator

    logs.configure("info", "auto")
    names = [cls.name for cls in SIMULATORS]
    sizes: dict[str, int] = {}
    for spec in args.fleet_size or []:
        vendor, sep, count = spec.rpartition("=")
        if not count.isdigit() or (sep and vendor not in names):
            return _error(
                f"--fleet-size: expected N or VENDOR=N (VENDOR one of {', '.join(names)}),"
                f" got {spec!r}"
            )
        for name in [vendor] if sep else names:
            sizes[name] = int(count)

    class WriteFailed(Exception):
        pass

    async def serve() -> None:
        sim = Simulator(sizes)
        await sim.start(port=args.port)
        try:
            config: dict[str, Any] = {"poll_interval": "30s"}
            if args.webhook_url:
                # e.g. http://127.0.0.1:9842/webhooks: each vendor posts to
                # <url>/<vendor>/<account>
                sim.add_webhooks(args.webhook_url, args.webhook_secret)
                host = urlsplit(args.webhook_url)
                config["webhooks"] = {"listen_address": f"{host.hostname}:{host.port or 80}"}
                config["accounts"] = sim.accounts(webhook_secret=args.webhook_secret)
            else:
                config["accounts"] = sim.accounts()
            text = yaml.safe_dump(config, sort_keys=False)
            if args.write_config:
                try:
                    await asyncio.to_thread(Path(args.write_config).write_text, text, "utf-8")
                except OSError as err:
                    raise WriteFailed(err.strerror or str(err)) from None
            print(
                f"vendor simulators listening on http://127.0.0.1:{sim.port}\n"
                "an exporter config that polls them:\n---\n" + text,
                flush=True,
            )
            await asyncio.Event().wait()
        finally:
            await sim.stop()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass
    except WriteFailed as err:
        return _error(f"--write-config: cannot write {args.write_config}: {err}")
    except OSError as err:
        return _bind_error(f"127.0.0.1:{args.port}", err)
    return 0


def _metric_list_flags(parser: argparse.ArgumentParser) -> None:
    for kind, verb in (("allowlist", "serve only"), ("denylist", "never serve")):
        parser.add_argument(
            f"--metric-{kind}",
            metavar="NAMES",
            help=f"comma-separated metric families (names or regular expressions) to {verb};"
            f" overrides the config's metric_{kind}",
        )


def _command(
    sub: Any, name: str, func: Callable[[argparse.Namespace], int], help: str, *, config: bool
) -> argparse.ArgumentParser:
    """A subcommand running `func`; `config`: it reads the config file (`--config`)."""
    parser: argparse.ArgumentParser = sub.add_parser(name, help=help)
    parser.set_defaults(func=func)
    if config:
        parser.add_argument(
            "--config",
            metavar="FILE",
            default=os.environ.get(ENV_CONFIG),
            help=f"config file (default: ${ENV_CONFIG})",
        )
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="connector-exporter",
        description="Prometheus exporter for the health of SaaS integration connectors.",
    )
    parser.add_argument("--version", action="version", version=f"connector-exporter {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = _command(
        sub, "run", cmd_run, "poll every configured account and serve /metrics", config=True
    )
    run.add_argument(
        "--listen-address",
        type=listen_address_arg,
        metavar="HOST:PORT",
        help=f"where to serve HTTP, overriding the config's listen_address "
        f"(default {DEFAULT_LISTEN_ADDRESS}); {LISTEN_ADDRESS_FORMS}",
    )
    run.add_argument(
        "--log-level",
        type=str.lower,
        choices=("debug", "info", "warning", "error"),
        metavar="LEVEL",
        help="debug, info, warning or error, overriding the config's log_level (default info)",
    )
    run.add_argument(
        "--webhook-listen-address",
        metavar="HOST:PORT",
        type=listen_address_arg,
        help="serve vendor webhooks on this address (default: the config's webhooks, else off)",
    )
    run.add_argument(
        "--web-config",
        metavar="FILE",
        help="TLS and basic auth, in the Prometheus exporter-toolkit web config format",
    )
    run.add_argument(
        "--shard",
        type=_shard_arg,
        metavar="INDEX/COUNT",
        help="poll only this shard's accounts (INDEX may be a pod name ending in its ordinal)",
    )
    _metric_list_flags(run)

    demo = _command(
        sub, "demo", cmd_demo, "simulators plus the daemon, no credentials needed", config=False
    )
    demo.add_argument(
        "--listen-address",
        type=listen_address_arg,
        default=DEFAULT_DEMO_LISTEN_ADDRESS,
        metavar="HOST:PORT",
        help=f"where the demo's exporter serves HTTP (default {DEFAULT_DEMO_LISTEN_ADDRESS}: "
        "this machine only; 0.0.0.0:9841 to reach it from elsewhere)",
    )

    simulate = _command(
        sub, "simulate", cmd_simulate, "only the vendor simulators, on 127.0.0.1", config=False
    )
    simulate.add_argument(
        "--port",
        type=_port_arg,
        default=DEFAULT_SIMULATOR_PORT,
        help=f"port on 127.0.0.1 for every vendor's simulator (default {DEFAULT_SIMULATOR_PORT};"
        " 0 picks a free one)",
    )
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
        help="the key the simulators sign webhooks with (or the API key, for vendors signing so)",
    )

    check = _command(
        sub,
        "check-config",
        cmd_check_config,
        "validate the config file and exit (2: invalid)",
        config=True,
    )
    _metric_list_flags(check)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result: int = args.func(args)
    except KeyboardInterrupt:  # Ctrl-C before the daemon's own signal handling is in place
        return EXIT_INTERRUPTED
    return result


if __name__ == "__main__":
    sys.exit(main())
