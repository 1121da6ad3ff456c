"""Passive DNS cache: names by address, within their time window."""

from __future__ import annotations

from detector.engine.passive_dns import (
    MAX_NAMES_PER_ADDRESS,
    TTL_GRACE_SECONDS,
    PassiveDnsCache,
)


def test_name_valid_after_answer():
    cache = PassiveDnsCache()
    cache.add("203.0.113.7", ["pool.example", "edge.cdn.example"], 60, 100.0)
    assert cache.names("203.0.113.7", 150.0) == ["pool.example", "edge.cdn.example"]


def test_name_not_valid_before_answer():
    cache = PassiveDnsCache()
    cache.add("203.0.113.7", ["pool.example"], 60, 100.0)
    assert cache.names("203.0.113.7", 99.0) == []


def test_name_expires_after_ttl_and_grace():
    cache = PassiveDnsCache()
    cache.add("203.0.113.7", ["pool.example"], 60, 100.0)
    assert cache.names("203.0.113.7", 100.0 + 60 + TTL_GRACE_SECONDS) == [
        "pool.example"
    ]
    assert cache.names("203.0.113.7", 100.0 + 61 + TTL_GRACE_SECONDS) == []


def test_unknown_address():
    assert PassiveDnsCache().names("192.0.2.1", 0.0) == []


def test_newest_names_kept():
    cache = PassiveDnsCache()
    for index in range(MAX_NAMES_PER_ADDRESS + 3):
        cache.add("198.51.100.1", [f"site{index}.example"], 300, float(index))
    names = cache.names("198.51.100.1", 50.0)
    assert len(names) == MAX_NAMES_PER_ADDRESS
    assert names[0] == f"site{MAX_NAMES_PER_ADDRESS + 2}.example"


def test_address_bound():
    cache = PassiveDnsCache(max_addresses=3)
    for index in range(5):
        cache.add(f"192.0.2.{index}", ["a.example"], 300, 0.0)
    assert len(cache) == 3
    assert cache.names("192.0.2.0", 1.0) == []
    assert cache.names("192.0.2.4", 1.0) == ["a.example"]
