"""The live peers' command line: it parses the options, runs one peer until
it finishes or a signal stops it, and returns the exit status.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from types import FrameType

from detector.trafficgen.live.benign import (
    DEFAULT_BROWSE_COUNT,
    BenignServer,
    browse,
)
from detector.trafficgen.live.common import (
    DEFAULT_CONNECT_TIMEOUT,
    DIALECTS,
    MONERO,
    POLL_SECONDS,
    Endpoint,
    EventLog,
    PeerError,
    _Server,
    parse_endpoint,
)
from detector.trafficgen.live.miner import (
    CGMINER_AGENT,
    DEFAULT_HOLD,
    DEFAULT_SHARE_INTERVAL,
    DEFAULT_SHARES,
    XMRIG_AGENT,
    mine,
)
from detector.trafficgen.live.pool import DEFAULT_JOB_INTERVAL, StratumPool

EXIT_OK = 0
EXIT_PEER_FAILED = 1
EXIT_USAGE = 2


def _endpoint_argument(text: str) -> Endpoint:
    try:
        return parse_endpoint(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _non_negative(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m detector.trafficgen live",
        description="Run a Stratum pool, a miner, or an ordinary server or client"
        " on real sockets. Each writes one JSON object per event to standard"
        " output.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    pool = commands.add_parser("serve-pool", help="run a Stratum pool until SIGTERM")
    pool.add_argument(
        "--listen",
        type=_endpoint_argument,
        required=True,
        help="ADDR:PORT to listen on (port 0: any free port)",
    )
    pool.add_argument(
        "--dialect",
        choices=DIALECTS,
        default=MONERO,
        help=f"Stratum dialect (default {MONERO})",
    )
    pool.add_argument(
        "--job-interval",
        type=_non_negative,
        default=DEFAULT_JOB_INTERVAL,
        help="seconds between pushed jobs; 0 pushes none"
        f" (default {DEFAULT_JOB_INTERVAL})",
    )
    pool.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the session ids and jobs (default 0)",
    )

    miner = commands.add_parser("mine", help="log in to a pool and submit shares")
    miner.add_argument(
        "--pool", type=_endpoint_argument, required=True, help="ADDR:PORT of the pool"
    )
    miner.add_argument(
        "--dialect",
        choices=DIALECTS,
        default=MONERO,
        help=f"Stratum dialect (default {MONERO})",
    )
    miner.add_argument(
        "--agent",
        default=None,
        help="agent string of the login or subscribe (default:"
        f" {XMRIG_AGENT!r} for monero, {CGMINER_AGENT!r} for"
        " stratum-v1)",
    )
    miner.add_argument(
        "--wallet",
        default=None,
        help="wallet to log in with (default: a placeholder address drawn from --seed)",
    )
    miner.add_argument(
        "--shares",
        type=_count,
        default=DEFAULT_SHARES,
        help=f"shares to submit (default {DEFAULT_SHARES})",
    )
    miner.add_argument(
        "--interval",
        type=_non_negative,
        default=DEFAULT_SHARE_INTERVAL,
        help=f"seconds between shares (default {DEFAULT_SHARE_INTERVAL})",
    )
    miner.add_argument(
        "--hold",
        type=_non_negative,
        default=DEFAULT_HOLD,
        help="seconds to keep the connection open after the"
        f" last share (default {DEFAULT_HOLD})",
    )
    miner.add_argument(
        "--connect-timeout",
        type=_non_negative,
        default=DEFAULT_CONNECT_TIMEOUT,
        help="seconds to retry a refused connection"
        f" (default {DEFAULT_CONNECT_TIMEOUT})",
    )
    miner.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the wallet, nonces and hashes (default 0)",
    )

    benign = commands.add_parser(
        "serve-benign",
        help="run a web server, node API and JSON-lines service until SIGTERM",
    )
    benign.add_argument(
        "--listen",
        type=_endpoint_argument,
        required=True,
        help="ADDR:PORT to listen on (port 0: any free port)",
    )

    client = commands.add_parser(
        "browse", help="fetch a page, make node API calls and send a ping"
    )
    client.add_argument(
        "--server",
        type=_endpoint_argument,
        required=True,
        help="ADDR:PORT of a serve-benign server",
    )
    client.add_argument(
        "--count",
        type=_count,
        default=DEFAULT_BROWSE_COUNT,
        help=f"rounds of requests (default {DEFAULT_BROWSE_COUNT})",
    )
    client.add_argument(
        "--connect-timeout",
        type=_non_negative,
        default=DEFAULT_CONNECT_TIMEOUT,
        help="seconds to retry a refused connection"
        f" (default {DEFAULT_CONNECT_TIMEOUT})",
    )
    client.add_argument(
        "--host",
        default=None,
        help="Host header of the HTTP requests (default: the server's ADDR:PORT)",
    )
    return parser


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    """Set the yielded event on SIGTERM or SIGINT, instead of exiting."""
    stop = threading.Event()

    def handle(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {
        signum: signal.signal(signum, handle)
        for signum in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one peer command; return the exit status."""
    arguments = _parser().parse_args(argv)
    log = EventLog(sys.stdout)
    try:
        with _stop_on_signals() as stop:
            if arguments.command == "serve-pool":
                server: _Server = StratumPool(
                    arguments.listen,
                    log,
                    dialect=arguments.dialect,
                    job_interval=arguments.job_interval,
                    seed=arguments.seed,
                )
            elif arguments.command == "serve-benign":
                server = BenignServer(arguments.listen, log)
            elif arguments.command == "mine":
                mine(
                    arguments.pool,
                    log,
                    dialect=arguments.dialect,
                    agent=arguments.agent,
                    wallet=arguments.wallet,
                    shares=arguments.shares,
                    interval=arguments.interval,
                    hold=arguments.hold,
                    connect_timeout=arguments.connect_timeout,
                    seed=arguments.seed,
                    stop=stop,
                )
                return EXIT_OK
            else:
                browse(
                    arguments.server,
                    log,
                    count=arguments.count,
                    connect_timeout=arguments.connect_timeout,
                    host=arguments.host,
                )
                return EXIT_OK
            with server:
                while not stop.wait(POLL_SECONDS):
                    pass
    except PeerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_PEER_FAILED
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_PEER_FAILED
    return EXIT_OK
