"""Signatures: the YAML-defined indicators of mining and their matchers.

:func:`load_signatures` reads ``agents.yaml``, ``dialects.yaml``,
``wallets.yaml`` and ``ports.yaml`` from one folder and returns a
:class:`Signatures`, whose methods match miner agents, method names, wallets
in logins and pool ports.
"""

from __future__ import annotations

from detector.signatures.loader import (
    ENV_SIGNATURES,
    SIGNATURE_FILES,
    default_directory,
    load_signatures,
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

__all__ = [
    "ENV_SIGNATURES",
    "SIGNATURE_FILES",
    "AgentMatch",
    "AgentSignature",
    "DialectMethods",
    "PortInfo",
    "Signatures",
    "WalletMatch",
    "WalletSignature",
    "default_directory",
    "load_signatures",
]
