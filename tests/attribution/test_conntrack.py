"""conntrack output parsing, and NAT mapping on a real masquerading namespace."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from detector.attribution import (
    REASON_NOT_IN_INVENTORY,
    Inventory,
    NatError,
    NatTable,
    attribute,
    read_conntrack,
)
from detector.attribution.conntrack import parse_line
from detector.model import Container
from detector.scan import scan_file
from detector.trafficgen.messages import monero
from detector.trafficgen.wallets import monero as monero_wallet
from tests.attribution.netns import (
    Capture,
    missing_requirements,
    netns_exec,
    run,
    stop_process,
    unique_tag,
)

# Lines as conntrack-tools 1.4.7 prints them on Debian 12.
EXTENDED_TCP = (
    "ipv4     2 tcp      6 119 TIME_WAIT src=10.77.1.2 dst=10.77.2.2 sport=37464 "
    "dport=3333 src=10.77.2.2 dst=10.77.2.1 sport=3333 dport=40004 [ASSURED] "
    "mark=0 use=1"
)
PLAIN_TCP = EXTENDED_TCP.removeprefix("ipv4     2 ")
UDP_UNREPLIED = (
    "udp      17 29 src=10.77.1.2 dst=10.77.2.2 sport=51000 dport=3334 [UNREPLIED] "
    "src=10.77.2.2 dst=10.77.2.1 sport=3334 dport=40008 mark=0 use=1"
)
IPV6_TCP = (
    "ipv6     10 tcp      6 431999 ESTABLISHED src=fd00:1::2 dst=2001:db8::7 "
    "sport=40112 dport=443 src=2001:db8::7 dst=fd00:2:0::1 sport=443 dport=61002 "
    "[ASSURED] mark=0 zone=3 use=1"
)
NOT_TRANSLATED = (
    "tcp      6 431999 ESTABLISHED src=10.77.2.1 dst=10.77.2.2 sport=50000 "
    "dport=22 src=10.77.2.2 dst=10.77.2.1 sport=22 dport=50000 [ASSURED] mark=0 use=1"
)
ICMP = (
    "icmp     1 29 src=10.77.1.2 dst=10.77.2.2 type=8 code=0 id=3 src=10.77.2.2 "
    "dst=10.77.2.1 type=0 code=0 id=3 mark=0 use=1"
)
SUMMARY = "conntrack v1.4.7 (conntrack-tools): 4 flow entries have been shown."


def test_parse_extended_and_plain_agree() -> None:
    extended = parse_line(EXTENDED_TCP)
    plain = parse_line(PLAIN_TCP)
    assert extended == plain
    assert extended is not None
    assert extended.protocol == "tcp"
    assert extended.state == "TIME_WAIT"
    assert extended.flags == frozenset({"ASSURED"})
    assert (extended.original.src, extended.original.sport) == ("10.77.1.2", 37464)
    assert (extended.reply.dst, extended.reply.dport) == ("10.77.2.1", 40004)
    assert extended.source_translated


def test_parse_udp_and_ipv6() -> None:
    udp = parse_line(UDP_UNREPLIED)
    assert udp is not None
    assert udp.state is None
    assert udp.flags == frozenset({"UNREPLIED"})
    ipv6 = parse_line(IPV6_TCP)
    assert ipv6 is not None
    assert ipv6.reply.dst == "fd00:2::1"


def test_parse_skips_non_port_lines() -> None:
    assert parse_line(ICMP) is None
    assert parse_line(SUMMARY) is None
    assert parse_line("") is None


@pytest.mark.parametrize(
    "line",
    [
        "tcp 6",
        "tcp 6 10 ESTABLISHED src=10.0.0.1 dst=10.0.0.2 sport=1 dport=2",
        "tcp 6 10 src=10.0.0.1 dst=10.0.0.2 sport=1 dport=2 src=10.0.0.2 dst=x "
        "sport=2 dport=1",
        "tcp 6 10 src=10.0.0.1 dst=10.0.0.2 sport=1 dport=99999 src=10.0.0.2 "
        "dst=10.0.0.1 sport=2 dport=1",
        "tcp 6 10 src=10.0.0.1 dst=10.0.0.2 sport=1 dport=2 src=10.0.0.2 "
        "dst=10.0.0.1 sport=2",
        "tcp 6 10 established src=10.0.0.1",
    ],
)
def test_parse_rejects_malformed(line) -> None:
    with pytest.raises(NatError):
        parse_line(line)


def test_table_maps_translated_flows() -> None:
    text = "\n".join(
        [EXTENDED_TCP, UDP_UNREPLIED, IPV6_TCP, NOT_TRANSLATED, ICMP, "tcp 6", SUMMARY]
    )
    table = NatTable.from_text(text, taken_at=5.0)
    assert len(table) == 3
    assert table.malformed_lines == 1
    assert table.taken_at == 5.0
    tcp = table.lookup("tcp", "10.77.2.1", 40004, "10.77.2.2", 3333)
    assert tcp is not None
    assert (tcp.original_ip, tcp.original_port) == ("10.77.1.2", 37464)
    udp = table.lookup("UDP", "10.77.2.1", 40008, "10.77.2.2", 3334)
    assert udp is not None
    assert udp.original_port == 51000
    ipv6 = table.lookup("tcp", "fd00:2::1", 61002, "2001:db8:0::7", 443)
    assert ipv6 is not None
    assert ipv6.original_ip == "fd00:1::2"
    assert table.lookup("tcp", "10.77.2.1", 50000, "10.77.2.2", 22) is None
    assert table.lookup("udp", "10.77.2.1", 40004, "10.77.2.2", 3333) is None


@given(st.text(max_size=300))
def test_table_from_any_text_never_raises(text) -> None:
    table = NatTable.from_text(text)
    assert table.malformed_lines >= 0


@given(st.lists(st.sampled_from(EXTENDED_TCP.split() + ["[", "=", "src=", "x=y"])))
def test_parse_line_raises_only_nat_error(words) -> None:
    try:
        parse_line(" ".join(words))
    except NatError:
        pass


def test_missing_command_raises() -> None:
    with pytest.raises(NatError, match="not found"):
        read_conntrack(command=("detector-no-such-conntrack", "-L"))


def test_failing_command_raises() -> None:
    with pytest.raises(NatError, match="failed"):
        read_conntrack(command=(sys.executable, "-c", "raise SystemExit(3)"))


# The masquerade test: a "container" namespace reaches a "server" namespace
# through a "host" namespace that masquerades onto its uplink, with ports
# forced into a range so that the port is translated as well as the address.
CONTAINER_IP = "198.18.1.2"
HOST_INSIDE_IP = "198.18.1.1"
HOST_UPLINK_IP = "198.18.2.1"
SERVER_IP = "198.18.2.2"
POOL_PORT = 3333
UDP_PORT = 3334
NAT_PORTS = "40000-40010"

SERVER_SCRIPT = """
import socket, sys
tcp = socket.socket(); tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
tcp.bind(("0.0.0.0", int(sys.argv[1]))); tcp.listen(1)
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.bind(("0.0.0.0", int(sys.argv[2])))
print("ready", flush=True)
connection, _ = tcp.accept()
while connection.recv(65536):
    pass
connection.close()
data, peer = udp.recvfrom(65536)
udp.sendto(b"ok", peer)
"""

CLIENT_SCRIPT = """
import socket, sys
payload = sys.stdin.buffer.read()
tcp = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
tcp.sendall(payload); tcp.shutdown(socket.SHUT_WR)
while tcp.recv(65536):
    pass
print(tcp.getsockname()[1])
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); udp.settimeout(10)
udp.sendto(b"hello", (sys.argv[1], int(sys.argv[3])))
udp.recvfrom(16)
print(udp.getsockname()[1])
"""


@dataclass
class MasqueradeRun:
    pcap: Path
    table: NatTable
    tcp_port: int
    udp_port: int


@pytest.fixture(scope="module")
def masquerade(tmp_path_factory):
    reason = missing_requirements("ip", "iptables", "conntrack", "tcpdump", "nsenter")
    if reason is not None:
        pytest.skip(f"masquerade test: {reason}")
    tag = unique_tag()
    container, host, server = (f"det{tag}{role}" for role in "chs")
    inside_a, inside_b = f"dn{tag}a", f"dn{tag}b"
    uplink_a, uplink_b = f"dn{tag}x", f"dn{tag}y"
    created: list[str] = []
    processes: list[subprocess.Popen[str]] = []
    rule = [
        "iptables",
        "-t",
        "nat",
        "POSTROUTING",
        "-o",
        uplink_a,
        "-j",
        "MASQUERADE",
        "--to-ports",
        NAT_PORTS,
    ]
    try:
        for namespace in (container, host, server):
            run("ip", "netns", "add", namespace)
            created.append(namespace)
            run(*netns_exec(namespace, "ip", "link", "set", "lo", "up"))
        run("ip", "link", "add", inside_a, "type", "veth", "peer", "name", inside_b)
        run("ip", "link", "set", inside_a, "netns", container)
        run("ip", "link", "set", inside_b, "netns", host)
        run("ip", "link", "add", uplink_a, "type", "veth", "peer", "name", uplink_b)
        run("ip", "link", "set", uplink_a, "netns", host)
        run("ip", "link", "set", uplink_b, "netns", server)
        for namespace, device, address in (
            (container, inside_a, CONTAINER_IP),
            (host, inside_b, HOST_INSIDE_IP),
            (host, uplink_a, HOST_UPLINK_IP),
            (server, uplink_b, SERVER_IP),
        ):
            run(
                *netns_exec(
                    namespace, "ip", "addr", "add", f"{address}/24", "dev", device
                )
            )
            run(*netns_exec(namespace, "ip", "link", "set", device, "up"))
        run(
            *netns_exec(
                container, "ip", "route", "add", "default", "via", HOST_INSIDE_IP
            )
        )
        run(*netns_exec(host, "sysctl", "-qw", "net.ipv4.ip_forward=1"))
        for protocol in ("tcp", "udp"):
            add = rule[:3] + ["-A"] + rule[3:4] + ["-p", protocol] + rule[4:]
            run(*netns_exec(host, *add))

        listener = subprocess.Popen(
            netns_exec(
                server,
                sys.executable,
                "-c",
                SERVER_SCRIPT,
                str(POOL_PORT),
                str(UDP_PORT),
            ),
            stdout=subprocess.PIPE,
            text=True,
        )
        processes.append(listener)
        assert listener.stdout is not None
        assert listener.stdout.readline().strip() == "ready"

        capture = Capture(
            ["ip", "netns", "exec", host],
            uplink_a,
            tmp_path_factory.mktemp("nat") / "uplink.pcap",
        )
        wallet = monero_wallet(__import__("random").Random(7))
        payload = monero.xmrig_login(wallet, "XMRig/6.21.0 (Linux x86_64) libuv/1.44.2")
        payload += monero.submit("7f1c", "1", "0a1b2c3d", "ab" * 32, request_id=2)
        output = run(
            *netns_exec(
                container,
                sys.executable,
                "-c",
                CLIENT_SCRIPT,
                SERVER_IP,
                str(POOL_PORT),
                str(UDP_PORT),
            ),
            input=payload.decode(),
        )
        tcp_port, udp_port = (int(word) for word in output.split())
        listener.wait(timeout=10)
        time.sleep(0.5)
        pcap = capture.stop()
        table = read_conntrack(netns=f"/run/netns/{host}")
        yield MasqueradeRun(pcap, table, tcp_port, udp_port)
    finally:
        for process in processes:
            stop_process(process)
        if host in created:
            for protocol in ("tcp", "udp"):
                delete = rule[:3] + ["-D"] + rule[3:4] + ["-p", protocol] + rule[4:]
                run(*netns_exec(host, *delete), check=False)
        for namespace in reversed(created):
            run("ip", "netns", "del", namespace, check=False)
        leftover = [name for name in created if os.path.exists(f"/run/netns/{name}")]
        assert leftover == [], f"namespaces not removed: {leftover}"


def test_real_conntrack_maps_tcp(masquerade) -> None:
    table = masquerade.table
    candidates = [
        port
        for port in range(40000, 40011)
        if table.lookup("tcp", HOST_UPLINK_IP, port, SERVER_IP, POOL_PORT)
    ]
    assert len(candidates) == 1
    mapping = table.lookup("tcp", HOST_UPLINK_IP, candidates[0], SERVER_IP, POOL_PORT)
    assert mapping is not None
    assert mapping.original_ip == CONTAINER_IP
    assert mapping.original_port == masquerade.tcp_port


def test_real_conntrack_maps_udp(masquerade) -> None:
    table = masquerade.table
    found = [
        table.lookup("udp", HOST_UPLINK_IP, port, SERVER_IP, UDP_PORT)
        for port in range(40000, 40011)
    ]
    mappings = [mapping for mapping in found if mapping is not None]
    assert len(mappings) == 1
    assert mappings[0].original_ip == CONTAINER_IP
    assert mappings[0].original_port == masquerade.udp_port


def test_uplink_detection_names_container(masquerade, signatures) -> None:
    result = scan_file(str(masquerade.pcap), signatures)
    assert result.error is None
    [detection] = result.detections
    assert detection.flow.client_ip == HOST_UPLINK_IP
    assert 40000 <= detection.flow.client_port <= 40010

    miner = Container(id="e" * 64, name="miner", image="busybox:test")
    inventory = Inventory()
    inventory.add_container(miner)
    inventory.bind(miner.id, CONTAINER_IP, 0.0)

    attributed = attribute(detection, inventory, masquerade.table).attribution
    assert attributed is not None
    assert attributed.nat is True
    assert attributed.address == CONTAINER_IP
    assert attributed.container == miner

    without_nat = attribute(detection, inventory, None).attribution
    assert without_nat is not None
    assert without_nat.nat is False
    assert without_nat.container is None
    assert without_nat.reason == REASON_NOT_IN_INVENTORY


def test_truncated_output_keeps_whole_lines() -> None:
    text = "\n".join([EXTENDED_TCP, UDP_UNREPLIED])
    cut = text[: len(EXTENDED_TCP) + 1 + len(UDP_UNREPLIED) // 2]
    table = NatTable.from_text(cut)
    assert len(table) == 1
    assert table.malformed_lines == 1
    assert table.lookup("tcp", "10.77.2.1", 40004, "10.77.2.2", 3333) is not None
