"""Builders of protocol messages as the bytes a program puts on the wire.

Each module covers one protocol or Stratum dialect and returns ``bytes``. None of
them imports scapy, so a test server can reuse them without the packet crafting
dependency.
"""
