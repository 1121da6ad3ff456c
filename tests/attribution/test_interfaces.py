"""Matching a container's veth to its host-side end."""

from __future__ import annotations

import json

import pytest

from detector.attribution import InventoryError, interfaces
from detector.attribution.interfaces import Link, host_veth_names, parse_links

# `ip -j link show` inside a container and on its host (iproute2 6.1).
CONTAINER_LINKS = [
    {
        "ifindex": 1,
        "ifname": "lo",
        "flags": ["LOOPBACK", "UP"],
        "mtu": 65536,
        "link_type": "loopback",
        "address": "00:00:00:00:00:00",
    },
    {
        "ifindex": 6,
        "link_index": 7,
        "ifname": "eth0",
        "flags": ["UP"],
        "mtu": 1500,
        "link_type": "ether",
        "address": "02:42:0a:e7:00:0a",
        "link_netnsid": 0,
    },
]
HOST_LINKS = [
    {"ifindex": 1, "ifname": "lo", "address": "00:00:00:00:00:00"},
    {"ifindex": 3, "ifname": "br-0f7e0478e631", "address": "02:42:51:35:a4:40"},
    {
        "ifindex": 5,
        "link_index": 4,
        "ifname": "veth2ac4ce1",
        "master": "br-0f7e0478e631",
        "address": "9a:1b:2c:3d:4e:5f",
        "link_netnsid": 1,
    },
    {
        "ifindex": 7,
        "link_index": 6,
        "ifname": "veth3712f4d",
        "master": "br-0f7e0478e631",
        "address": "aa:bb:cc:dd:ee:01",
        "link_netnsid": 2,
    },
    {
        "ifindex": 9,
        "link_index": 2,
        "ifname": "veth9999999",
        "address": "aa:bb:cc:dd:ee:02",
        "link_netnsid": 3,
    },
    {"ifindex": 10, "ifname": "wg0", "address": "none", "link_type": "none"},
]


def test_parse_links_fields() -> None:
    links = parse_links(json.dumps(HOST_LINKS))
    veth = links[3]
    assert veth == Link(
        index=7,
        name="veth3712f4d",
        mac="aa:bb:cc:dd:ee:01",
        peer_index=6,
        master="br-0f7e0478e631",
    )
    assert links[5].mac is None
    assert links[1].peer_index is None


@pytest.mark.parametrize(
    "text", ["not json", "{}", "[1]", '[{"ifname": "x"}]', '[{"ifindex": 1}]']
)
def test_parse_links_rejects_other_output(text) -> None:
    with pytest.raises(InventoryError):
        parse_links(text)


def test_host_veth_needs_both_ends(monkeypatch) -> None:
    def fake_list_links(*, pid=None, netns=None):
        assert pid == 4242
        return parse_links(json.dumps(CONTAINER_LINKS))

    monkeypatch.setattr(interfaces, "list_links", fake_list_links)
    host = parse_links(json.dumps(HOST_LINKS))
    assert host_veth_names(4242, host) == {"02:42:0a:e7:00:0a": "veth3712f4d"}
    # A host link that points at eth0's index but is not eth0's peer is
    # another namespace's veth: ifindex numbers repeat across namespaces.
    swapped = [link for link in host if link.name != "veth3712f4d"]
    swapped.append(Link(7, "veth-other", None, 99, None))
    assert host_veth_names(4242, swapped) == {}
