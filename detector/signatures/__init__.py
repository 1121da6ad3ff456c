"""Signatures: the YAML-defined indicators of mining and their matchers.

:func:`load_signatures` reads ``agents.yaml``, ``dialects.yaml``,
``wallets.yaml``, ``ports.yaml`` and ``pools.yaml`` from one folder and
returns a :class:`Signatures`, whose methods match miner agents, method names,
wallets in logins and pool ports, and whose ``pools`` index matches pool
domains and networks. :mod:`detector.signatures.importers` turns public
domain lists into pools.yaml entries.
"""

from __future__ import annotations

from detector.signatures.loader import (
    ENV_SIGNATURES,
    SIGNATURE_FILES,
    default_directory,
    load_signatures,
    parse_pools,
)
from detector.signatures.matchers import (
    AgentMatch,
    AgentSignature,
    DialectMethods,
    PortInfo,
    Signatures,
    WalletMatch,
    WalletSignature,
)
from detector.signatures.pools import (
    POOL_KINDS,
    NetworkEntry,
    NetworkMatch,
    PoolEntry,
    PoolIndex,
    PoolMatch,
)

__all__ = [
    "ENV_SIGNATURES",
    "POOL_KINDS",
    "SIGNATURE_FILES",
    "AgentMatch",
    "AgentSignature",
    "DialectMethods",
    "NetworkEntry",
    "NetworkMatch",
    "PoolEntry",
    "PoolIndex",
    "PoolMatch",
    "PortInfo",
    "Signatures",
    "WalletMatch",
    "WalletSignature",
    "default_directory",
    "load_signatures",
    "parse_pools",
]
