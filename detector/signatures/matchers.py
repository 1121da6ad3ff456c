"""The loaded signatures and the matchers the engine calls on them."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from detector.signatures.pools import PoolIndex


@dataclass(frozen=True, slots=True)
class AgentSignature:
    """One miner agent pattern from ``agents.yaml``."""

    id: str
    family: str
    pattern: re.Pattern[str]
    source: str
    # The one dialect this miner speaks, where it speaks only one.
    dialect: str | None = None


@dataclass(frozen=True, slots=True)
class AgentMatch:
    """A miner family recognised in an agent string.

    ``pattern`` is the regular expression that matched, ``source`` where the
    signature came from, ``dialect`` the one dialect the miner speaks, if any.
    """

    family: str
    pattern: str
    source: str
    dialect: str | None = None


@dataclass(frozen=True, slots=True)
class DialectMethods:
    """The method names of one mining dialect, by direction.

    ``markers`` are strings a message of the dialect carries in its params,
    such as ``EthereumStratum/1.0.0``; most dialects have none.
    """

    to_server: frozenset[str]
    to_client: frozenset[str]
    markers: frozenset[str]
    source: str


@dataclass(frozen=True, slots=True)
class WalletSignature:
    """One wallet address pattern from ``wallets.yaml``."""

    id: str
    coin: str
    pattern: re.Pattern[str]
    source: str


@dataclass(frozen=True, slots=True)
class WalletMatch:
    """A wallet address found in a login.

    ``kind`` is the id of the pattern that matched (``monero-integrated``),
    ``worker`` the login part right after the wallet, or None when there is
    none or it is a ``+difficulty`` suffix.
    """

    wallet: str
    coin: str
    kind: str
    worker: str | None


@dataclass(frozen=True, slots=True)
class PortInfo:
    """One port from ``ports.yaml``: its kind (pool, proxy, node) and note."""

    port: int
    kind: str
    note: str
    source: str


# A "+" suffix after the wallet is a fixed share difficulty, not a worker name,
# as in coin-hive-stratum's <wallet>[.user][+difficulty] logins.
_HEX = re.compile(r"[0-9a-fA-F]+")
_DIFFICULTY_SEPARATOR = "+"


@dataclass(frozen=True, slots=True)
class Signatures:
    """Every signature file of one folder, validated and compiled.

    Build it with :func:`detector.signatures.load_signatures`. ``pools``
    matches host names and addresses against ``pools.yaml``.
    """

    agents: tuple[AgentSignature, ...]
    dialect_methods: Mapping[str, DialectMethods]
    dialects_by_method: Mapping[str, frozenset[str]]
    wallets: tuple[WalletSignature, ...]
    login_separators: re.Pattern[str]
    ports: Mapping[int, PortInfo]
    pool_ports: frozenset[int]
    files: tuple[str, ...]
    pools: PoolIndex

    def match_agent(self, text: str) -> AgentMatch | None:
        """Return the first agent pattern, in file order, that ``text`` matches."""
        for agent in self.agents:
            if agent.pattern.search(text):
                return AgentMatch(
                    agent.family, agent.pattern.pattern, agent.source, agent.dialect
                )
        return None

    def method_dialects(self, method: str) -> frozenset[str]:
        """Return the ids of the dialects that use ``method`` in either direction."""
        return self.dialects_by_method.get(method, frozenset())

    def find_wallet(self, login: str) -> WalletMatch | None:
        """Find a wallet address in a login string such as ``<wallet>.<worker>``.

        The login is split at the login separators and each part is tested in
        order; the first part that matches a wallet pattern is returned.
        """
        # The split keeps the separators, at odd indexes.
        pieces = self.login_separators.split(login)
        for index in range(0, len(pieces), 2):
            part = pieces[index]
            if not part:
                continue
            wallet = self._match_wallet(part)
            if wallet is None:
                continue
            return WalletMatch(
                wallet=part,
                coin=wallet.coin,
                kind=wallet.id,
                worker=_worker_after(pieces, index),
            )
        return None

    def _match_wallet(self, text: str) -> WalletSignature | None:
        for wallet in self.wallets:
            if wallet.pattern.fullmatch(text):
                return wallet
        return None


def _worker_after(pieces: list[str], index: int) -> str | None:
    # Monero logins may carry a payment id between wallet and worker
    # (<wallet>.<payment id>.<worker>); a payment id is 16 or 64 hex digits.
    for position in range(index + 2, len(pieces), 2):
        separator, worker = pieces[position - 1], pieces[position]
        if separator == _DIFFICULTY_SEPARATOR or not worker:
            return None
        if len(worker) in (16, 64) and _HEX.fullmatch(worker):
            continue
        return worker
    return None
