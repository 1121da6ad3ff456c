"""The real-socket pool, miner and ordinary peers talk to each other on
loopback, in process and through ``python -m detector.trafficgen live``."""

from __future__ import annotations

import io
import json
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any

import pytest

from detector.trafficgen import live
from tests.conftest import REPOSITORY

# Seconds a test waits for a peer to log an event or exit; loopback peers
# take milliseconds, the rest is margin for a loaded host.
EVENT_TIMEOUT = 10.0
MONERO_WALLET = re.compile(r"4[0-9AB][1-9A-HJ-NP-Za-km-z]{93}")
BECH32_WALLET = re.compile(r"bc1q[02-9ac-hj-np-z]{38}\.worker1")


def events(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def named(stream: io.StringIO, event: str) -> list[dict[str, Any]]:
    return [record for record in events(stream) if record["event"] == event]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("198.18.20.2:3333", ("198.18.20.2", 3333)),
        ("[2001:db8:20::2]:443", ("2001:db8:20::2", 443)),
        ("127.0.0.1:0", ("127.0.0.1", 0)),
    ],
)
def test_parse_endpoint(text, expected) -> None:
    assert live.parse_endpoint(text) == expected
    assert live.parse_endpoint(live.format_endpoint(expected)) == expected


@pytest.mark.parametrize("text", ["3333", ":3333", "host:", "host:port", "h:70000"])
def test_parse_endpoint_invalid(text) -> None:
    with pytest.raises(ValueError, match="invalid"):
        live.parse_endpoint(text)


def test_monero_pool_and_miner() -> None:
    pool_log, miner_log = io.StringIO(), io.StringIO()
    with live.StratumPool(
        ("127.0.0.1", 0), live.EventLog(pool_log), job_interval=0.2
    ) as pool:
        result = live.mine(
            pool.address,
            live.EventLog(miner_log),
            shares=3,
            interval=0.05,
            hold=0.7,
        )
    assert result.shares_submitted == 3
    assert result.shares_accepted == 3
    # The login result carries the first job, and the pool pushes more while
    # the miner keeps the connection open.
    assert result.jobs >= 2
    assert result.local[0] == "127.0.0.1"

    [login] = named(pool_log, "login")
    assert login["agent"] == live.XMRIG_AGENT
    assert MONERO_WALLET.fullmatch(login["wallet"])
    assert login["session"] == result.session_id
    assert login["peer"] == live.format_endpoint(result.local)
    submits = named(pool_log, "submit")
    assert len(submits) == 3
    assert {submit["job_id"] for submit in submits} == {login["job_id"]}
    assert len(named(pool_log, "job")) == result.jobs - 1

    miner_events = [record["event"] for record in events(miner_log)]
    assert miner_events[:3] == ["connecting", "connected", "logged-in"]
    assert miner_events.count("share") == 3
    assert miner_events[-1] == "closed"
    assert named(pool_log, "stopped")


def test_stratum_v1_pool_and_miner() -> None:
    pool_log = io.StringIO()
    with live.StratumPool(
        ("127.0.0.1", 0),
        live.EventLog(pool_log),
        dialect=live.STRATUM_V1,
        job_interval=0,
    ) as pool:
        result = live.mine(
            pool.address,
            live.EventLog(io.StringIO()),
            dialect=live.STRATUM_V1,
            shares=2,
            interval=0,
        )
    assert result.shares_submitted == 2
    assert result.shares_accepted == 2
    assert result.jobs == 1
    [subscribe] = named(pool_log, "subscribe")
    assert subscribe["agent"] == live.CGMINER_AGENT
    assert subscribe["session"] == result.session_id
    [login] = named(pool_log, "login")
    assert BECH32_WALLET.fullmatch(login["wallet"])
    submits = named(pool_log, "submit")
    assert [submit["job_id"] for submit in submits] == [login["job_id"]] * 2
    assert named(pool_log, "job") == []


def test_wrong_dialect_fails_login() -> None:
    with live.StratumPool(
        ("127.0.0.1", 0), live.EventLog(io.StringIO()), dialect=live.MONERO
    ) as pool:
        with pytest.raises(live.PeerError, match="subscribe rejected"):
            live.mine(
                pool.address, live.EventLog(io.StringIO()), dialect=live.STRATUM_V1
            )


def test_pool_serves_miners_at_once() -> None:
    pool_log = io.StringIO()
    results: list[live.MinerResult] = []
    errors: list[BaseException] = []

    def run_miner(seed: int) -> None:
        try:
            results.append(
                live.mine(
                    pool.address,
                    live.EventLog(io.StringIO()),
                    shares=2,
                    interval=0.1,
                    hold=0.3,
                    seed=seed,
                )
            )
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    with live.StratumPool(
        ("127.0.0.1", 0), live.EventLog(pool_log), job_interval=0
    ) as pool:
        threads = [threading.Thread(target=run_miner, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(EVENT_TIMEOUT)
    assert errors == []
    assert len(results) == 4
    assert all(result.shares_accepted == 2 for result in results)
    logins = named(pool_log, "login")
    assert len({login["peer"] for login in logins}) == 4
    assert len({login["wallet"] for login in logins}) == 4
    assert len({login["session"] for login in logins}) == 4
    assert len(named(pool_log, "submit")) == 8


def test_miner_retries_refused_connection() -> None:
    port = free_port()
    outcome: dict[str, Any] = {}

    def run_miner() -> None:
        outcome["result"] = live.mine(
            ("127.0.0.1", port), live.EventLog(io.StringIO()), connect_timeout=5
        )

    miner = threading.Thread(target=run_miner)
    miner.start()
    # The miner's first attempts are refused; the pool comes up meanwhile.
    time.sleep(0.3)
    with live.StratumPool(("127.0.0.1", port), live.EventLog(io.StringIO())):
        miner.join(EVENT_TIMEOUT)
    assert outcome["result"].shares_accepted == 1


def test_miner_gives_up_when_refused() -> None:
    port = free_port()
    with pytest.raises(live.PeerError, match="refused"):
        live.mine(
            ("127.0.0.1", port), live.EventLog(io.StringIO()), connect_timeout=0.3
        )


def test_miner_stops_holding_on_stop() -> None:
    stop = threading.Event()
    outcome: dict[str, Any] = {}

    def run_miner() -> None:
        outcome["result"] = live.mine(
            pool.address, live.EventLog(io.StringIO()), hold=3600, stop=stop
        )

    with live.StratumPool(("127.0.0.1", 0), live.EventLog(io.StringIO())) as pool:
        miner = threading.Thread(target=run_miner)
        miner.start()
        time.sleep(0.3)
        stop.set()
        # Without the stop the miner would hold the connection for an hour.
        miner.join(EVENT_TIMEOUT)
        assert not miner.is_alive()
    assert outcome["result"].shares_accepted == 1


def test_pool_over_ipv6_loopback() -> None:
    if not socket.has_ipv6:
        pytest.skip("this Python has no IPv6 support")
    try:
        pool = live.StratumPool(("::1", 0), live.EventLog(io.StringIO()))
    except OSError as exc:
        pytest.skip(f"cannot listen on ::1: {exc}")
    with pool:
        result = live.mine(pool.address, live.EventLog(io.StringIO()))
    assert result.local[0] == "::1"
    assert result.shares_accepted == 1


def test_pool_session_replies() -> None:
    log = io.StringIO()
    session = live.PoolSession(
        live.MONERO, random.Random(1), live.EventLog(log), "peer"
    )
    assert session.next_job() is None
    [reply] = session.receive(b'{"id":1,"method":"login","params":{"login":"w"}}')
    message = json.loads(reply)
    assert message["id"] == 1
    assert message["result"]["status"] == "OK"
    assert message["result"]["job"]["algo"] == live.MONERO_ALGORITHM
    job = session.next_job()
    assert job is not None
    assert json.loads(job)["method"] == "job"
    [keepalive] = session.receive(b'{"id":2,"method":"keepalived","params":{}}')
    assert json.loads(keepalive)["result"] == {"status": "KEEPALIVED"}
    [unknown] = session.receive(b'{"id":3,"method":"getjob","params":{}}')
    assert json.loads(unknown)["error"]["code"] == live.METHOD_NOT_FOUND
    with pytest.raises(live.PeerError, match="invalid JSON"):
        session.receive(b"not json")
    with pytest.raises(live.PeerError, match="not an object"):
        session.receive(b"[1, 2]")


def test_line_reader_joins_and_limits() -> None:
    left, right = socket.socketpair()
    with left, right:
        reader = live.LineReader(right)
        left.sendall(b'{"a":')
        with pytest.raises(TimeoutError):
            reader.read_line(0.05)
        left.sendall(b'1}\r\n{"b":2}\n')
        assert reader.read_line(1) == b'{"a":1}'
        assert reader.read_line(1) == b'{"b":2}'
        left.sendall(b"x" * (live.MAX_LINE_BYTES + 2))
        with pytest.raises(live.PeerError, match="longer than"):
            while True:
                reader.read_line(1)


def test_line_reader_end_of_stream() -> None:
    left, right = socket.socketpair()
    with right:
        reader = live.LineReader(right)
        left.sendall(b"whole\npartial")
        left.close()
        assert reader.read_line(1) == b"whole"
        assert reader.read_line(1) is None
        assert reader.read_line(1) is None


def test_benign_server_and_browser() -> None:
    server_log = io.StringIO()
    with live.BenignServer(("127.0.0.1", 0), live.EventLog(server_log)) as server:
        result = live.browse(server.address, live.EventLog(io.StringIO()), count=2)
    assert result == live.BrowseResult(pages=2, http_rpc_calls=4, line_rpc_calls=2)
    requests = named(server_log, "http-request")
    assert [(r["method"], r["target"]) for r in requests] == [
        ("GET", "/"),
        ("POST", "/"),
        ("POST", "/"),
    ] * 2
    calls = [(r["kind"], r["method"]) for r in named(server_log, "rpc-request")]
    assert (
        calls
        == [
            ("http", "getblockcount"),
            ("http", "eth_blockNumber"),
            ("json-lines", "ping"),
        ]
        * 2
    )
    assert named(server_log, "connection-failed") == []


def test_browser_sets_host_header() -> None:
    server_log = io.StringIO()
    with live.BenignServer(("127.0.0.1", 0), live.EventLog(server_log)) as server:
        live.browse(server.address, live.EventLog(io.StringIO()), host="status.example")
        default_port = server.address[1]
        live.browse(server.address, live.EventLog(io.StringIO()))
    hosts = [request["host"] for request in named(server_log, "http-request")]
    assert hosts[:3] == ["status.example"] * 3
    assert hosts[3:] == [f"127.0.0.1:{default_port}"] * 3


def test_benign_json_lines_methods() -> None:
    with live.BenignServer(("127.0.0.1", 0), live.EventLog(io.StringIO())) as server:
        with socket.create_connection(server.address, timeout=EVENT_TIMEOUT) as conn:
            reader = live.LineReader(conn)
            conn.sendall(b'{"id":1,"method":"echo","params":["x"]}\n')
            assert json.loads(reader.read_line(EVENT_TIMEOUT) or b"")["result"] == ["x"]
            conn.sendall(b'{"id":2,"method":"login","params":[]}\n')
            reply = json.loads(reader.read_line(EVENT_TIMEOUT) or b"")
            assert reply["error"]["code"] == live.METHOD_NOT_FOUND
            assert "result" not in reply


def test_benign_http_rejects_malformed_request() -> None:
    server_log = io.StringIO()
    with live.BenignServer(("127.0.0.1", 0), live.EventLog(server_log)) as server:
        with socket.create_connection(server.address, timeout=EVENT_TIMEOUT) as conn:
            conn.sendall(b"GARBAGE\r\n\r\n")
            assert conn.recv(100) == b""
    [failure] = named(server_log, "connection-failed")
    assert "invalid HTTP request line" in failure["error"]


def run_live(*arguments: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "detector.trafficgen", "live", *arguments],
        cwd=REPOSITORY,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def first_event(process: subprocess.Popen[str]) -> dict[str, Any]:
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line, process.stderr.read() if process.stderr else ""
    return dict(json.loads(line))


def stop(process: subprocess.Popen[str]) -> tuple[int, str]:
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=EVENT_TIMEOUT)
    return process.returncode, output


def test_command_line_pool_and_miner() -> None:
    pool = run_live("serve-pool", "--listen", "127.0.0.1:0", "--job-interval", "0")
    try:
        listening = first_event(pool)
        assert listening["event"] == "listening"
        miner = subprocess.run(
            [sys.executable, "-m", "detector.trafficgen", "live", "mine"]
            + ["--pool", f"127.0.0.1:{listening['port']}", "--shares", "2"]
            + ["--interval", "0", "--seed", "5"],
            cwd=REPOSITORY,
            capture_output=True,
            text=True,
            timeout=EVENT_TIMEOUT * 2,
        )
    finally:
        status, output = stop(pool)
    assert miner.returncode == live.EXIT_OK, miner.stderr
    miner_events = [json.loads(line)["event"] for line in miner.stdout.splitlines()]
    assert miner_events.count("share") == 2
    # SIGTERM ends the pool cleanly.
    assert status == live.EXIT_OK
    pool_events = [json.loads(line)["event"] for line in output.splitlines()]
    assert pool_events.count("submit") == 2
    assert pool_events[-1] == "stopped"


def test_command_line_benign_pair() -> None:
    server = run_live("serve-benign", "--listen", "127.0.0.1:0")
    try:
        port = first_event(server)["port"]
        client = subprocess.run(
            [sys.executable, "-m", "detector.trafficgen", "live", "browse"]
            + ["--server", f"127.0.0.1:{port}", "--count", "1"],
            cwd=REPOSITORY,
            capture_output=True,
            text=True,
            timeout=EVENT_TIMEOUT * 2,
        )
    finally:
        status, _ = stop(server)
    assert client.returncode == live.EXIT_OK, client.stderr
    done = json.loads(client.stdout.splitlines()[-1])
    assert done["event"] == "done"
    assert done["pages"] == 1
    assert status == live.EXIT_OK


def test_command_line_refused_exit_status() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "detector.trafficgen", "live", "mine"]
        + ["--pool", f"127.0.0.1:{free_port()}", "--connect-timeout", "0.2"],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=EVENT_TIMEOUT * 2,
    )
    assert completed.returncode == live.EXIT_PEER_FAILED
    assert "refused" in completed.stderr


def test_command_line_usage_error() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "detector.trafficgen", "live", "mine"]
        + ["--pool", "no-port"],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=EVENT_TIMEOUT * 2,
    )
    assert completed.returncode == live.EXIT_USAGE
    assert "invalid endpoint" in completed.stderr
