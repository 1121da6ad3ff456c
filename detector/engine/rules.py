"""Shape rules for mining protocol messages.

A method name alone proves nothing: ``login`` and ``submit`` are ordinary
JSON-RPC methods. Each rule here checks the parameters a miner or a pool
actually sends (hex blobs, nonces of a fixed width, job arrays) and returns an
:class:`Observation` only when the message has that shape. The rules follow the
wire formats of xmrig, cgminer, cpuminer, ethminer and the NiceHash and Stratum
specifications.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from detector.model import Confidence, Direction

HEX_RE = re.compile(r"[0-9a-fA-F]+")
PREFIXED_HEX_RE = re.compile(r"0x[0-9a-fA-F]+")

# Monero job blobs are 43 to 407 bytes (xmrig Job::setBlob rejects others).
MIN_MONERO_BLOB_HEX = 86
MAX_MONERO_BLOB_HEX = 814

# Algorithm names xmrig sends in its login's "algo" list (xmrig
# src/base/crypto/Algorithm.cpp): RandomX, CryptoNight and its variants,
# Argon2, AstroBWT, KawPow and GhostRider, written family/variant.
XMRIG_ALGORITHM_RE = re.compile(
    r"(rx|cn|cn-lite|cn-heavy|cn-pico|cn-femto|argon2|astrobwt)/\w+"
    r"|kawpow|ghostrider|randomx|cryptonight",
    re.IGNORECASE,
)

# Stratum v1 ``mining.notify`` carries its ``clean_jobs`` boolean last; its
# position tells the dialects apart: EthereumStratum/1.0.0 has 4 parameters,
# KawPow 6 or 7, the Zcash variant 8 and Bitcoin 9.
NOTIFY_DIALECT_BY_CLEAN_INDEX = {
    3: "ethereumstratum-1",
    4: "kawpow",
    7: "stratum-v1-zcash",
    8: "stratum-v1",
}


@dataclass(frozen=True, slots=True)
class Observation:
    """What one message shows: evidence, dialect hints and extracted fields."""

    kind: str
    confidence: Confidence
    description: str
    dialects: frozenset[str] = frozenset()
    fields: dict[str, Any] = field(default_factory=dict)
    job: bool = False
    share: bool = False


@dataclass(frozen=True, slots=True)
class Request:
    """A JSON-RPC request or notification as read from a Stratum line."""

    method: str
    params: Any
    message: Mapping[str, Any]
    direction: Direction


Rule = Callable[[Request], Observation | None]


def is_hex(value: Any, min_length: int = 1, max_length: int | None = None) -> bool:
    if not isinstance(value, str) or len(value) < min_length:
        return False
    if max_length is not None and len(value) > max_length:
        return False
    return HEX_RE.fullmatch(value) is not None


def is_prefixed_hex(
    value: Any, min_digits: int = 1, max_digits: int | None = None
) -> bool:
    if not isinstance(value, str) or not value.startswith(("0x", "0X")):
        return False
    return is_hex(value[2:], min_digits, max_digits)


def is_monero_job(job: Any) -> bool:
    """Return whether ``job`` is a Monero job object (blob, job_id, target)."""
    if not isinstance(job, Mapping):
        return False
    blob = job.get("blob")
    if not is_hex(blob, MIN_MONERO_BLOB_HEX, MAX_MONERO_BLOB_HEX):
        return False
    if not isinstance(job.get("job_id"), str | int):
        return False
    return is_hex(job.get("target"), 8, 16)


def is_ethproxy_job(result: Any) -> bool:
    """Return whether ``result`` is an ethproxy work package.

    A work package is ``[header, seed, target(, height)]``; header and seed are
    32-byte hashes, target is up to 32 bytes, each ``0x``-prefixed.
    """
    if not isinstance(result, list) or not 3 <= len(result) <= 4:
        return False
    if not (is_prefixed_hex(result[0], 64, 64) and is_prefixed_hex(result[1], 64, 64)):
        return False
    return is_prefixed_hex(result[2], 1, 64)


def _is_port(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    return isinstance(value, int) and 0 < value < 65536


def _strings(values: list[Any]) -> bool:
    return all(isinstance(value, str) for value in values)


def _high(kind: str, description: str, dialects: set[str], **extra: Any) -> Observation:
    return Observation(
        kind=kind,
        confidence=Confidence.HIGH,
        description=description,
        dialects=frozenset(dialects),
        **extra,
    )


# -- Monero (xmrig, xmr-stak, xmrig-proxy) -----------------------------------


def monero_login(request: Request) -> Observation | None:
    params = request.params
    if request.direction is not Direction.TO_SERVER or not isinstance(params, Mapping):
        return None
    login = params.get("login")
    if not isinstance(login, str) or not login:
        return None
    fields: dict[str, Any] = {"login": login}
    agent = params.get("agent")
    if isinstance(agent, str):
        fields["agent"] = agent
    algos = params.get("algo")
    mining_keys = 0
    if isinstance(algos, list) and algos and _strings(algos):
        fields["algorithm"] = algos[0]
        if any(XMRIG_ALGORITHM_RE.match(algo) for algo in algos):
            mining_keys += 1
    rigid = params.get("rigid")
    if "rigid" in params:
        mining_keys += 1
    if isinstance(rigid, str) and rigid:
        # xmrig's rig id is the worker name the pool shows.
        fields["worker"] = rigid
    # A {login, pass} object is also how ordinary APIs sign in, so the login
    # counts as mining only with a miner's keys; the inspector raises it once
    # the login string holds a wallet or the agent names a miner.
    confidence = Confidence.HIGH if mining_keys else Confidence.LOW
    return Observation(
        kind="stratum.login",
        confidence=confidence,
        description="Monero stratum login",
        dialects=frozenset({"monero"}),
        fields=fields,
    )


def monero_job(request: Request) -> Observation | None:
    if request.direction is not Direction.TO_CLIENT or not is_monero_job(
        request.params
    ):
        return None
    fields: dict[str, Any] = {}
    algo = request.params.get("algo")
    if isinstance(algo, str):
        fields["algorithm"] = algo
    return _high(
        "stratum.job",
        "Monero job with hashing blob",
        {"monero"},
        fields=fields,
        job=True,
    )


def monero_submit(request: Request) -> Observation | None:
    params = request.params
    if request.direction is not Direction.TO_SERVER or not isinstance(params, Mapping):
        return None
    # xmrig sends a 4-byte nonce (8 hex digits) and a 32-byte result hash.
    if not is_hex(params.get("nonce"), 8, 16) or not is_hex(
        params.get("result"), 64, 64
    ):
        return None
    if "job_id" not in params:
        return None
    return _high(
        "stratum.submit",
        "Monero share submit with nonce and result hash",
        {"monero"},
        share=True,
    )


def monero_keepalived(request: Request) -> Observation | None:
    params = request.params
    if request.direction is not Direction.TO_SERVER:
        return None
    if params is not None and not isinstance(params, Mapping):
        return None
    # The method name exists only in the xmrig family of protocols, but it is
    # a single word, so it supports a detection without making one.
    return Observation(
        kind="stratum.keepalived",
        confidence=Confidence.MEDIUM,
        description="xmrig keepalive",
        dialects=frozenset({"monero"}),
    )


# -- Bitcoin-style Stratum v1 and its variants -------------------------------


def mining_subscribe(request: Request) -> Observation | None:
    params = request.params
    if request.direction is not Direction.TO_SERVER or not isinstance(params, list):
        return None
    if len(params) > 6:
        return None
    fields: dict[str, Any] = {}
    dialects = {"stratum-v1", "stratum-v1-zcash", "kawpow", "ethereumstratum-1"}
    if len(params) >= 3 and _is_port(params[1]) and isinstance(params[2], str):
        # [host, port, agent, session]: the Zcash variant of the Stratum
        # specification (nheqminer and slush's reference client).
        dialects = {"stratum-v1-zcash"}
        fields["agent"] = params[2]
        if isinstance(params[0], str):
            fields["pool_host"] = params[0]
        return _high(
            "stratum.subscribe", "Stratum mining.subscribe", dialects, fields=fields
        )
    if params and isinstance(params[0], str):
        fields["agent"] = params[0]
    if len(params) >= 2 and params[1] == "EthereumStratum/1.0.0":
        dialects = {"ethereumstratum-1"}
    elif len(params) == 4 and params[1] is None and isinstance(params[2], str):
        # [agent, session or null, host, port]: EWBF, GMiner and the NiceHash
        # KawPow specification send the pool host and port.
        dialects = {"stratum-v1-zcash", "kawpow"}
        fields["pool_host"] = params[2]
    return _high(
        "stratum.subscribe", "Stratum mining.subscribe", dialects, fields=fields
    )


def mining_authorize(request: Request) -> Observation | None:
    params = request.params
    if request.direction is not Direction.TO_SERVER or not isinstance(params, list):
        return None
    if not 1 <= len(params) <= 3 or not isinstance(params[0], str):
        return None
    return _high(
        "stratum.authorize",
        "Stratum mining.authorize",
        {"stratum-v1", "stratum-v1-zcash", "kawpow", "ethereumstratum-1"},
        fields={"login": params[0]},
    )


def mining_submit(request: Request) -> Observation | None:
    params = request.params
    if request.direction is not Direction.TO_SERVER or not isinstance(params, list):
        return None
    if not 3 <= len(params) <= 8 or not _strings(params[:3]):
        return None
    dialects = {"stratum-v1", "stratum-v1-zcash", "kawpow", "ethereumstratum-1"}
    if len(params) == 5 and all(is_prefixed_hex(value) for value in params[2:5]):
        dialects = {"kawpow"}
    elif len(params) == 3:
        dialects = {"ethereumstratum-1"}
    return _high(
        "stratum.submit",
        "Stratum mining.submit share",
        dialects,
        fields={"login": params[0]},
        share=True,
    )


def mining_notify(request: Request) -> Observation | None:
    params = request.params
    if request.direction is not Direction.TO_CLIENT or not isinstance(params, list):
        return None
    if not 4 <= len(params) <= 12 or not isinstance(params[0], str | int):
        return None
    dialects: set[str] = set()
    for index, dialect in NOTIFY_DIALECT_BY_CLEAN_INDEX.items():
        if index < len(params) and isinstance(params[index], bool):
            dialects.add(dialect)
    if not dialects:
        # GhostRider and other variants: keep the notification as evidence
        # without guessing the variant.
        dialects = {"stratum-v1"}
    return _high("stratum.notify", "Stratum mining.notify job", dialects, job=True)


def mining_set_difficulty(request: Request) -> Observation | None:
    params = request.params
    if request.direction is not Direction.TO_CLIENT or not isinstance(params, list):
        return None
    if len(params) != 1 or isinstance(params[0], bool):
        return None
    if not isinstance(params[0], int | float):
        return None
    return _high(
        "stratum.set_difficulty",
        "Stratum mining.set_difficulty",
        {"stratum-v1", "kawpow", "ethereumstratum-1"},
    )


def mining_set_target(request: Request) -> Observation | None:
    params = request.params
    if request.direction is not Direction.TO_CLIENT or not isinstance(params, list):
        return None
    if len(params) != 1 or not is_hex(params[0], 8, 64):
        return None
    return _high(
        "stratum.set_target", "Stratum mining.set_target", {"stratum-v1-zcash"}
    )


def mining_list_params(
    kind: str, description: str, direction: Direction, dialects: set[str]
) -> Rule:
    """Make a rule for a ``mining.*`` method whose params are a short list."""

    def rule(request: Request) -> Observation | None:
        if request.direction is not direction:
            return None
        params = request.params
        if params is not None and not isinstance(params, list | Mapping):
            return None
        return _high(kind, description, dialects)

    return rule


def mining_configure(request: Request) -> Observation | None:
    params = request.params
    if request.direction is not Direction.TO_SERVER or not isinstance(params, list):
        return None
    if len(params) != 2 or not isinstance(params[0], list):
        return None
    if not isinstance(params[1], Mapping):
        return None
    return _high(
        "stratum.configure", "Stratum mining.configure (BIP 310)", {"stratum-v1"}
    )


def mining_hello(request: Request) -> Observation | None:
    params = request.params
    if request.direction is not Direction.TO_SERVER or not isinstance(params, Mapping):
        return None
    proto = params.get("proto")
    if not isinstance(proto, str) or not proto.startswith("EthereumStratum/"):
        return None
    fields: dict[str, Any] = {}
    if isinstance(params.get("agent"), str):
        fields["agent"] = params["agent"]
    if isinstance(params.get("host"), str):
        fields["pool_host"] = params["host"]
    return _high(
        "stratum.hello",
        "EthereumStratum/2.0.0 mining.hello",
        {"ethereumstratum-2"},
        fields=fields,
    )


def client_reconnect(request: Request) -> Observation | None:
    params = request.params
    if request.direction is not Direction.TO_CLIENT or not isinstance(params, list):
        return None
    if not 2 <= len(params) <= 3 or not isinstance(params[0], str):
        return None
    return Observation(
        kind="stratum.reconnect",
        confidence=Confidence.MEDIUM,
        description="Stratum client.reconnect",
        dialects=frozenset({"stratum-v1", "monero"}),
        fields={"reconnect_host": params[0], "reconnect_port": params[1]},
    )


# -- Ethereum stratum proxy (ethproxy) ---------------------------------------


def eth_submit_login(request: Request) -> Observation | None:
    params = request.params
    if request.direction is not Direction.TO_SERVER or not isinstance(params, list):
        return None
    if not 1 <= len(params) <= 3 or not isinstance(params[0], str):
        return None
    fields: dict[str, Any] = {"login": params[0]}
    worker = request.message.get("worker")
    if isinstance(worker, str) and worker:
        fields["worker"] = worker
    return _high(
        "stratum.login", f"ethproxy {request.method}", {"ethproxy"}, fields=fields
    )


def eth_get_work(request: Request) -> Observation | None:
    params = request.params
    if request.direction is not Direction.TO_SERVER:
        return None
    if params is not None and params != []:
        return None
    # Ethereum nodes answer eth_getWork for solo miners too, which is mining
    # all the same; the reply's work package confirms it.
    return Observation(
        kind="stratum.get_work",
        confidence=Confidence.MEDIUM,
        description="ethproxy eth_getWork request",
        dialects=frozenset({"ethproxy"}),
    )


def eth_submit_work(request: Request) -> Observation | None:
    params = request.params
    if request.direction is not Direction.TO_SERVER or not isinstance(params, list):
        return None
    if len(params) != 3 or not is_prefixed_hex(params[0], 16, 16):
        return None
    if not (is_prefixed_hex(params[1], 64, 64) and is_prefixed_hex(params[2], 64, 64)):
        return None
    return _high(
        "stratum.submit", "ethproxy eth_submitWork share", {"ethproxy"}, share=True
    )


def eth_submit_hashrate(request: Request) -> Observation | None:
    params = request.params
    if request.direction is not Direction.TO_SERVER or not isinstance(params, list):
        return None
    if len(params) != 2 or not is_prefixed_hex(params[0], 1, 64):
        return None
    if not is_prefixed_hex(params[1], 1, 64):
        return None
    return _high("stratum.hashrate", "ethproxy eth_submitHashrate", {"ethproxy"})


# -- getwork and getblocktemplate over HTTP ----------------------------------


def getwork(request: Request) -> Observation | None:
    params = request.params
    if request.direction is not Direction.TO_SERVER:
        return None
    # getwork asks with no parameters and submits the solved 128-byte header.
    if params not in (None, []) and not (
        isinstance(params, list) and len(params) == 1 and is_hex(params[0], 64)
    ):
        return None
    share = bool(params)
    description = "getwork share submit" if share else "getwork request"
    return _high("http.getwork", description, {"getwork"}, share=share)


def getblocktemplate(request: Request) -> Observation | None:
    params = request.params
    if request.direction is not Direction.TO_SERVER:
        return None
    template_keys = {"capabilities", "rules", "mode", "wallet_address", "longpollid"}
    if isinstance(params, list) and len(params) == 1:
        params = params[0]
    if not isinstance(params, Mapping) or not template_keys & params.keys():
        return None
    fields: dict[str, Any] = {}
    wallet = params.get("wallet_address")
    if isinstance(wallet, str):
        fields["login"] = wallet
    return _high(
        "http.getblocktemplate",
        "getblocktemplate request",
        {"getblocktemplate"},
        fields=fields,
    )


def submitblock(request: Request) -> Observation | None:
    params = request.params
    if request.direction is not Direction.TO_SERVER or not isinstance(params, list):
        return None
    if not params or not is_hex(params[0], 160):
        return None
    return _high(
        "http.submitblock",
        "submitblock with a solved block",
        {"getblocktemplate"},
        share=True,
    )


STRATUM_V1 = {"stratum-v1", "stratum-v1-zcash", "kawpow", "ethereumstratum-1"}

METHOD_RULES: dict[str, Rule] = {
    "login": monero_login,
    "job": monero_job,
    "submit": monero_submit,
    "keepalived": monero_keepalived,
    "mining.subscribe": mining_subscribe,
    "mining.authorize": mining_authorize,
    "mining.submit": mining_submit,
    "mining.notify": mining_notify,
    "mining.set_difficulty": mining_set_difficulty,
    "mining.set_target": mining_set_target,
    "mining.configure": mining_configure,
    "mining.hello": mining_hello,
    "mining.extranonce.subscribe": mining_list_params(
        "stratum.extranonce",
        "Stratum mining.extranonce.subscribe",
        Direction.TO_SERVER,
        STRATUM_V1,
    ),
    "mining.set_extranonce": mining_list_params(
        "stratum.extranonce",
        "Stratum mining.set_extranonce",
        Direction.TO_CLIENT,
        STRATUM_V1,
    ),
    "mining.get_transactions": mining_list_params(
        "stratum.get_transactions",
        "Stratum mining.get_transactions",
        Direction.TO_SERVER,
        {"stratum-v1"},
    ),
    "mining.suggest_difficulty": mining_list_params(
        "stratum.suggest_difficulty",
        "Stratum mining.suggest_difficulty",
        Direction.TO_SERVER,
        {"stratum-v1"},
    ),
    "mining.set_version_mask": mining_list_params(
        "stratum.set_version_mask",
        "Stratum mining.set_version_mask",
        Direction.TO_CLIENT,
        {"stratum-v1"},
    ),
    "mining.ping": mining_list_params(
        "stratum.ping", "Stratum mining.ping", Direction.TO_CLIENT, {"stratum-v1"}
    ),
    "mining.set": mining_list_params(
        "stratum.set",
        "EthereumStratum/2.0.0 mining.set",
        Direction.TO_CLIENT,
        {"ethereumstratum-2"},
    ),
    "mining.noop": mining_list_params(
        "stratum.noop",
        "EthereumStratum/2.0.0 mining.noop",
        Direction.TO_SERVER,
        {"ethereumstratum-2"},
    ),
    "mining.hashrate": mining_list_params(
        "stratum.hashrate",
        "EthereumStratum/2.0.0 mining.hashrate",
        Direction.TO_SERVER,
        {"ethereumstratum-2"},
    ),
    "client.reconnect": client_reconnect,
    "eth_submitLogin": eth_submit_login,
    "eth_login": eth_submit_login,
    "eth_getWork": eth_get_work,
    "eth_submitWork": eth_submit_work,
    "eth_submitHashrate": eth_submit_hashrate,
    "getwork": getwork,
    "getblocktemplate": getblocktemplate,
    "submitblock": submitblock,
}
