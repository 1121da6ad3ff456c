"""Per-flow inspection: stream bytes in, mining evidence and a verdict out.

A :class:`FlowInspector` holds one flow's protocol decoders and what they have
shown so far. It picks a decoder per direction from the first bytes, turns each
decoded message into evidence through the shape rules, pairs responses with
the requests they answer, and at the end decides whether the flow is mining.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from detector.engine.rules import (
    METHOD_RULES,
    Observation,
    Request,
    is_ethproxy_job,
    is_hex,
    is_monero_job,
)
from detector.flows.reassembly import StreamData
from detector.model import (
    Confidence,
    Detection,
    Direction,
    Evidence,
    FlowCounters,
    FlowKey,
    MiningFields,
)
from detector.protocols import (
    HttpDecoder,
    HttpRequest,
    HttpResponse,
    JsonLineDecoder,
    JsonMessage,
    MalformedLine,
    identify,
)
from detector.signatures import Signatures

log = logging.getLogger(__name__)

# A capture that starts in the middle of a Stratum session starts in the middle
# of a line. The inspector looks this far into an unrecognised stream for a
# newline followed by "{" before it gives the direction up as another protocol;
# Stratum lines are rarely over 4 KiB (a Zcash share is about 2.8 KiB).
MID_SESSION_SEARCH_BYTES = 8192

# Bytes checked to tell text from a binary protocol at the start of a stream.
TEXT_PROBE_BYTES = 64
TEXT_BYTES = frozenset(range(0x20, 0x7F)) | {0x09, 0x0A, 0x0D}

# Pending requests kept per flow to pair with their responses. Miners keep a
# handful in flight; the bound stops a hostile peer from growing the table.
MAX_PENDING_REQUESTS = 256

# Distinct method names counted per direction; beyond this, further names are
# folded into one "other" count so a hostile stream cannot grow the table.
MAX_METHOD_NAMES = 64

# The largest HTTP body parsed as JSON. getwork and getblocktemplate requests
# are under 1 KiB; a block template response with transactions can reach
# a few hundred KiB but is not needed for the verdict.
MAX_HTTP_JSON_BYTES = 256 * 1024

# When several dialects fit the evidence, the first in this order wins. The
# order puts the dialect with the most specific messages first.
DIALECT_PREFERENCE = (
    "ethereumstratum-2",
    "monero",
    "ethproxy",
    "getblocktemplate",
    "getwork",
    "kawpow",
    "ethereumstratum-1",
    "stratum-v1-zcash",
    "stratum-v1",
)

# Coins whose addresses are long and shaped enough that one in a login marks
# it as a miner's.
DISTINCTIVE_WALLET_COINS = frozenset({"monero"})

# A flow whose streams carry this many decoded messages without any evidence
# of mining is given up: Stratum shows its login, subscribe or first job within
# the first few messages, and a busy JSON-RPC service would otherwise be parsed
# up to the reassembly depth.
MAX_MESSAGES_WITHOUT_EVIDENCE = 200

MINING_HTTP_REQUEST_HEADERS = ("x-mining-extensions", "x-mining-hashrate")
MINING_HTTP_RESPONSE_HEADERS = ("x-long-polling", "x-stratum", "x-roll-ntime")


@dataclass(slots=True)
class _EvidenceTally:
    """Evidence of one kind, kept once with a count instead of once per message."""

    evidence: Evidence
    count: int = 1


@dataclass(slots=True)
class _DirectionState:
    mode: str = "undecided"  # undecided, json, http, other
    pending: bytearray = field(default_factory=bytearray)
    json_decoder: JsonLineDecoder | None = None
    http_decoder: HttpDecoder | None = None
    malformed: int = 0


class FlowInspector:
    """Decode one flow's streams and collect the evidence of mining in them."""

    __slots__ = (
        "signatures",
        "key",
        "_directions",
        "_evidence",
        "_dialect_votes",
        "_methods",
        "_pending_requests",
        "_fields",
        "jobs",
        "shares_submitted",
        "shares_accepted",
        "shares_rejected",
        "stream_gaps",
        "malformed_messages",
        "messages",
    )

    def __init__(self, signatures: Signatures, key: FlowKey) -> None:
        self.signatures = signatures
        self.key = key
        self._directions = {
            Direction.TO_SERVER: _DirectionState(),
            Direction.TO_CLIENT: _DirectionState(),
        }
        self._evidence: dict[str, _EvidenceTally] = {}
        # Plain dicts, filled on the first message: most flows with payload
        # are not mining and never need them.
        self._dialect_votes: dict[str, int] = {}
        self._methods: dict[Direction, dict[str, int]] = {
            Direction.TO_SERVER: {},
            Direction.TO_CLIENT: {},
        }
        # Request id -> (method, whether the request submitted a share).
        self._pending_requests: dict[Any, tuple[str, bool]] = {}
        self._fields: dict[str, Any] = {}
        self.jobs = 0
        self.shares_submitted = 0
        self.shares_accepted = 0
        self.shares_rejected = 0
        self.stream_gaps = 0
        self.malformed_messages = 0
        self.messages = 0

    # -- feeding -----------------------------------------------------------

    @property
    def wants_data(self) -> bool:
        """Whether any direction may still hold mining messages."""
        directions = self._directions
        return (
            directions[Direction.TO_SERVER].mode != "other"
            or directions[Direction.TO_CLIENT].mode != "other"
        )

    def feed(
        self, direction: Direction, chunks: Iterable[StreamData], timestamp: float
    ) -> None:
        """Decode newly reassembled stream bytes of one direction."""
        state = self._directions[direction]
        for chunk in chunks:
            if chunk.gap_before:
                self.stream_gaps += 1
                self._on_gap(state)
            if state.mode == "other" or not chunk.data:
                continue
            if state.mode == "undecided":
                self._choose_decoder(state, direction, chunk.data, timestamp)
            else:
                self._decode(state, direction, chunk.data, timestamp)

    def feed_datagram(
        self, direction: Direction, payload: bytes, timestamp: float
    ) -> None:
        """Decode one UDP payload. Stratum runs over TCP only, so this only
        records that the flow carries no mining protocol."""
        for state in self._directions.values():
            state.mode = "other"

    def finish(self, timestamp: float) -> None:
        """End both streams: decode what a last unterminated message held."""
        for direction, state in self._directions.items():
            if state.mode == "json" and state.json_decoder is not None:
                self._on_json_events(direction, state.json_decoder.finish(), timestamp)
            elif state.mode == "http" and state.http_decoder is not None:
                self._on_http_events(direction, state.http_decoder.finish(), timestamp)

    def _fruitless(self) -> bool:
        return self.messages >= MAX_MESSAGES_WITHOUT_EVIDENCE and not self._evidence

    def _give_up(self) -> None:
        for state in self._directions.values():
            state.mode = "other"
            state.json_decoder = None
            state.http_decoder = None
            state.pending = bytearray()

    def _on_gap(self, state: _DirectionState) -> None:
        if state.json_decoder is not None:
            state.json_decoder.gap()
        if state.http_decoder is not None:
            state.http_decoder.gap()
        if state.mode == "undecided":
            state.pending.clear()

    def _choose_decoder(
        self,
        state: _DirectionState,
        direction: Direction,
        data: bytes,
        timestamp: float,
    ) -> None:
        state.pending += data
        kind = identify(bytes(state.pending))
        if kind == "incomplete":
            return
        buffered = bytes(state.pending)
        state.pending = bytearray()
        if kind == "json":
            state.mode = "json"
            state.json_decoder = JsonLineDecoder()
            self._decode(state, direction, buffered, timestamp)
        elif kind == "http":
            state.mode = "http"
            state.http_decoder = HttpDecoder()
            self._decode(state, direction, buffered, timestamp)
        else:
            # A capture that starts mid-session starts mid-line: resume at the
            # first line that opens a JSON object. Only text can be the tail of
            # a Stratum line, so a binary stream is given up at once.
            start = buffered.find(b"\n{", 0, MID_SESSION_SEARCH_BYTES)
            if kind != "unknown" or not _is_text(buffered[:TEXT_PROBE_BYTES]):
                state.mode = "other"
            elif start >= 0:
                state.mode = "json"
                state.json_decoder = JsonLineDecoder()
                self._decode(state, direction, buffered[start + 1 :], timestamp)
            elif len(buffered) < MID_SESSION_SEARCH_BYTES:
                state.pending = bytearray(buffered)
            else:
                state.mode = "other"

    def _decode(
        self,
        state: _DirectionState,
        direction: Direction,
        data: bytes,
        timestamp: float,
    ) -> None:
        if state.json_decoder is not None:
            self._on_json_events(direction, state.json_decoder.feed(data), timestamp)
        elif state.http_decoder is not None:
            self._on_http_events(direction, state.http_decoder.feed(data), timestamp)

    # -- messages ----------------------------------------------------------

    def _on_json_events(
        self, direction: Direction, events: Iterable[object], timestamp: float
    ) -> None:
        for event in events:
            if isinstance(event, JsonMessage):
                self.messages += 1
                self._on_json(event.value, direction, timestamp)
                if self._fruitless():
                    self._give_up()
                    return
            elif isinstance(event, MalformedLine):
                self.malformed_messages += 1
                self._directions[direction].malformed += 1

    def _on_http_events(
        self, direction: Direction, events: Iterable[object], timestamp: float
    ) -> None:
        for event in events:
            if isinstance(event, HttpRequest):
                self.messages += 1
                self._on_http_request(event, timestamp)
            elif isinstance(event, HttpResponse):
                self.messages += 1
                self._on_http_response(event, timestamp)
            else:
                self.malformed_messages += 1
            if self._fruitless():
                self._give_up()
                return

    def _on_json(self, value: Any, direction: Direction, timestamp: float) -> None:
        if not isinstance(value, Mapping):
            # JSON-RPC batches are arrays of messages; Stratum never uses them,
            # but an HTTP miner might.
            if isinstance(value, list):
                for item in value[:MAX_PENDING_REQUESTS]:
                    if isinstance(item, Mapping):
                        self._on_json(item, direction, timestamp)
            return
        method = value.get("method")
        if isinstance(method, str):
            self._on_request(method, value, direction, timestamp)
        elif "result" in value or "error" in value:
            self._on_response(value, direction, timestamp)

    def _count_method(self, direction: Direction, method: str) -> None:
        methods = self._methods[direction]
        if method not in methods and len(methods) >= MAX_METHOD_NAMES:
            method = "other"
        methods[method] = methods.get(method, 0) + 1

    def _on_request(
        self,
        method: str,
        message: Mapping[str, Any],
        direction: Direction,
        timestamp: float,
    ) -> None:
        self._count_method(direction, method)
        rule = METHOD_RULES.get(method)
        observation = None
        if rule is not None:
            request = Request(method, message.get("params"), message, direction)
            observation = rule(request)
        request_id = message.get("id")
        if direction is Direction.TO_SERVER and _hashable(request_id):
            if len(self._pending_requests) >= MAX_PENDING_REQUESTS:
                self._pending_requests.pop(next(iter(self._pending_requests)))
            share = observation is not None and observation.share
            self._pending_requests[request_id] = (method, share)
        if observation is not None:
            self._observe(observation, direction, timestamp, method)

    def _on_response(
        self, message: Mapping[str, Any], direction: Direction, timestamp: float
    ) -> None:
        if direction is not Direction.TO_CLIENT:
            # Miners answer client.get_version with their agent string.
            return
        request_id = message.get("id")
        pending = None
        if _hashable(request_id):
            pending = self._pending_requests.pop(request_id, None)
        result = message.get("result")
        error = message.get("error")
        if pending is None:
            # ethproxy pools push work as a bare response with id 0. Another id
            # with no request seen may answer an Ethereum node call (a list of
            # hashes from eth_getFilterChanges looks the same), so it counts
            # less.
            if is_ethproxy_job(result):
                self._observe_job_push(
                    direction,
                    timestamp,
                    Confidence.HIGH if request_id == 0 else Confidence.MEDIUM,
                )
            return
        method, share = pending
        failed = error not in (None, False) or result is False
        if share:
            if failed:
                self.shares_rejected += 1
                self._observe_pool_error(error, method, direction, timestamp)
            elif result is True or _status(result) == "OK" or method == "submitblock":
                self.shares_accepted += 1
            return
        if failed:
            self._observe_pool_error(error, method, direction, timestamp)
            return
        if method == "login" and isinstance(result, Mapping):
            if is_monero_job(result.get("job")):
                self._observe(
                    Observation(
                        kind="stratum.job",
                        confidence=Confidence.HIGH,
                        description="Monero login result with a job",
                        dialects=frozenset({"monero"}),
                        job=True,
                    ),
                    direction,
                    timestamp,
                )
        elif method == "keepalived" and _status(result) == "KEEPALIVED":
            self._observe(
                Observation(
                    kind="stratum.keepalived",
                    confidence=Confidence.HIGH,
                    description="pool answered keepalived with KEEPALIVED",
                    dialects=frozenset({"monero"}),
                ),
                direction,
                timestamp,
            )
        elif method == "mining.subscribe" and _is_subscribe_result(result):
            self._observe(
                Observation(
                    kind="stratum.subscribe_result",
                    confidence=Confidence.HIGH,
                    description="pool granted a Stratum subscription",
                    dialects=frozenset(),
                ),
                direction,
                timestamp,
            )
        elif method in ("eth_getWork", "getwork") and (
            is_ethproxy_job(result) or _is_getwork_result(result)
        ):
            self._observe_job_push(direction, timestamp)
        elif method == "client.get_version" and isinstance(result, str):
            self._observe_agent(result, timestamp)

    def _observe_job_push(
        self,
        direction: Direction,
        timestamp: float,
        confidence: Confidence = Confidence.HIGH,
    ) -> None:
        self._observe(
            Observation(
                kind="stratum.job",
                confidence=confidence,
                description="work package (header, seed, target)",
                dialects=frozenset({"ethproxy"}),
                job=True,
            ),
            direction,
            timestamp,
        )

    def _observe_pool_error(
        self, error: Any, method: str, direction: Direction, timestamp: float
    ) -> None:
        message = _error_text(error)
        self._observe(
            Observation(
                kind="stratum.error",
                confidence=Confidence.MEDIUM,
                description=f"pool rejected {method}: {message}"[:200],
                fields={},
            ),
            direction,
            timestamp,
        )

    # -- HTTP --------------------------------------------------------------

    def _on_http_request(self, request: HttpRequest, timestamp: float) -> None:
        direction = Direction.TO_SERVER
        headers = dict(request.headers)
        agent = headers.get("user-agent")
        mining_headers = [
            name for name in MINING_HTTP_REQUEST_HEADERS if name in headers
        ]
        if mining_headers:
            self._record(
                Evidence(
                    kind="http.mining_header",
                    confidence=Confidence.HIGH,
                    description="HTTP request carries miner headers: "
                    + ", ".join(mining_headers),
                    timestamp=timestamp,
                    direction=direction,
                    detail={name: headers[name][:200] for name in mining_headers},
                )
            )
        host = headers.get("host")
        if host and "pool_host" not in self._fields:
            self._fields["http_host"] = host.rsplit(":", 1)[0] if ":" in host else host
        value = _json_body(request.body)
        if value is not None:
            self._on_json(value, direction, timestamp)
        if agent and self._evidence:
            # An agent is reported for a flow that shows mining; a browser's
            # User-Agent on ordinary HTTP is not evidence.
            self._observe_agent(agent, timestamp, only_miners=True)

    def _on_http_response(self, response: HttpResponse, timestamp: float) -> None:
        direction = Direction.TO_CLIENT
        headers = dict(response.headers)
        pool_headers = [
            name for name in MINING_HTTP_RESPONSE_HEADERS if name in headers
        ]
        if pool_headers:
            self._record(
                Evidence(
                    kind="http.pool_header",
                    confidence=Confidence.HIGH,
                    description="HTTP response carries pool headers: "
                    + ", ".join(pool_headers),
                    timestamp=timestamp,
                    direction=direction,
                    detail={name: headers[name][:200] for name in pool_headers},
                )
            )
        value = _json_body(response.body)
        if value is not None:
            self._on_json(value, direction, timestamp)

    # -- evidence ----------------------------------------------------------

    def _observe(
        self,
        observation: Observation,
        direction: Direction,
        timestamp: float,
        method: str | None = None,
    ) -> None:
        confidence = observation.confidence
        fields = observation.fields
        detail: dict[str, Any] = {}
        if method is not None:
            detail["method"] = method
        worker = fields.get("worker")
        if isinstance(worker, str) and worker:
            # An explicit worker field (ethproxy) names the rig better than a
            # part of the login string does.
            self._fields.setdefault("worker", worker)
        login = fields.get("login")
        if isinstance(login, str):
            self._fields.setdefault("login", login)
            match = self.signatures.find_wallet(login)
            if match is not None:
                self._fields.setdefault("wallet", match.wallet)
                self._fields.setdefault("wallet_coin", match.coin)
                if match.worker:
                    self._fields.setdefault("worker", match.worker)
                # A 95-character Monero address is distinctive; Ethereum and
                # Bitcoin addresses double as user names and API keys in
                # ordinary logins, so they do not raise the confidence.
                if match.coin in DISTINCTIVE_WALLET_COINS:
                    confidence = Confidence.HIGH
        for name in ("algorithm", "pool_host"):
            if isinstance(fields.get(name), str) and fields[name]:
                self._fields.setdefault(name, fields[name])
        if "reconnect_host" in fields:
            detail["host"] = fields["reconnect_host"]
            detail["port"] = fields["reconnect_port"]
        agent = fields.get("agent")
        if isinstance(agent, str) and agent:
            if self._observe_agent(agent, timestamp):
                confidence = Confidence.HIGH
        if observation.job:
            self.jobs += 1
        if observation.share:
            self.shares_submitted += 1
        weight = 1 if len(observation.dialects) > 1 else 4
        for dialect in observation.dialects:
            self._dialect_votes[dialect] = self._dialect_votes.get(dialect, 0) + weight
        self._record(
            Evidence(
                kind=observation.kind,
                confidence=confidence,
                description=observation.description,
                timestamp=timestamp,
                direction=direction,
                detail=detail,
            )
        )

    def _observe_agent(
        self, agent: str, timestamp: float, only_miners: bool = False
    ) -> bool:
        """Record a client's agent string; return whether it names a miner."""
        agent = agent[:200]
        match = self.signatures.match_agent(agent)
        if match is None:
            if not only_miners:
                self._fields.setdefault("agent", agent)
            return False
        self._fields.setdefault("agent", agent)
        self._fields.setdefault("miner_family", match.family)
        self._record(
            Evidence(
                kind="miner.agent",
                confidence=Confidence.HIGH,
                description=f"agent names the miner {match.family}",
                timestamp=timestamp,
                direction=Direction.TO_SERVER,
                detail={"agent": agent, "family": match.family},
            )
        )
        return True

    def _record(self, evidence: Evidence) -> None:
        tally = self._evidence.get(evidence.kind)
        if tally is None:
            self._evidence[evidence.kind] = _EvidenceTally(evidence)
            return
        tally.count += 1
        if evidence.confidence > tally.evidence.confidence:
            # Keep the strongest instance, so a login later shown to carry a
            # wallet is reported at that strength.
            tally.evidence = evidence

    # -- verdict -----------------------------------------------------------

    def is_mining(self) -> bool:
        """Whether the evidence so far makes this flow a mining flow.

        One high-confidence message suffices. Without one, two different kinds
        of medium-confidence evidence are needed, because a single weak signal
        never makes a detection.
        """
        medium_kinds = 0
        for tally in self._evidence.values():
            if tally.evidence.confidence is Confidence.HIGH:
                if tally.evidence.kind != "miner.agent":
                    return True
            elif tally.evidence.confidence is Confidence.MEDIUM:
                medium_kinds += 1
        return medium_kinds >= 2

    def dialect(self) -> str:
        if not self._dialect_votes:
            return "unknown"
        best = max(self._dialect_votes.values())
        for dialect in DIALECT_PREFERENCE:
            if self._dialect_votes.get(dialect) == best:
                return dialect
        return max(self._dialect_votes, key=self._dialect_votes.__getitem__)

    def detection(
        self,
        source: str,
        first_seen: float,
        last_seen: float,
        counters: FlowCounters,
        pool_port_evidence: bool,
    ) -> Detection | None:
        """Build the detection for this flow, or None when it is not mining."""
        if not self.is_mining():
            return None
        evidence = [
            _with_count(tally.evidence, tally.count)
            for tally in self._evidence.values()
        ]
        if pool_port_evidence:
            evidence.append(
                Evidence(
                    kind="network.pool_port",
                    confidence=Confidence.LOW,
                    description=f"server port {self.key.server_port} is a common "
                    "mining pool port",
                    timestamp=first_seen,
                    detail={"port": self.key.server_port},
                )
            )
        evidence.sort(key=lambda item: (-item.confidence, item.timestamp))
        confidence = max(item.confidence for item in evidence)
        fields = self._fields
        mining = MiningFields(
            dialect=self.dialect(),
            agent=fields.get("agent"),
            miner_family=fields.get("miner_family"),
            login=fields.get("login"),
            worker=fields.get("worker"),
            wallet=fields.get("wallet"),
            wallet_coin=fields.get("wallet_coin"),
            algorithm=fields.get("algorithm"),
            pool_host=fields.get("pool_host") or fields.get("http_host"),
            methods_to_server=dict(self._methods[Direction.TO_SERVER]),
            methods_to_client=dict(self._methods[Direction.TO_CLIENT]),
            jobs=self.jobs,
            shares_submitted=self.shares_submitted,
            shares_accepted=self.shares_accepted,
            shares_rejected=self.shares_rejected,
        )
        return Detection(
            source=source,
            flow=self.key,
            first_seen=first_seen,
            last_seen=last_seen,
            confidence=confidence,
            evidence=tuple(evidence),
            mining=mining,
            counters=counters,
            stream_gaps=self.stream_gaps,
        )


def _with_count(evidence: Evidence, count: int) -> Evidence:
    detail = dict(evidence.detail)
    detail["count"] = count
    return Evidence(
        kind=evidence.kind,
        confidence=evidence.confidence,
        description=evidence.description,
        timestamp=evidence.timestamp,
        direction=evidence.direction,
        detail=detail,
    )


def _hashable(value: Any) -> bool:
    return value is None or isinstance(value, int | str)


def _status(result: Any) -> str | None:
    if isinstance(result, Mapping):
        status = result.get("status")
        if isinstance(status, str):
            return status.upper()
    return None


def _error_text(error: Any) -> str:
    # Stratum v1 errors are [code, message, traceback]; JSON-RPC 2.0 errors
    # are {"code", "message"}.
    if isinstance(error, list) and len(error) >= 2:
        return str(error[1])
    if isinstance(error, Mapping):
        return str(error.get("message", error))
    return str(error)


def _is_text(data: bytes) -> bool:
    return all(byte in TEXT_BYTES for byte in data)


def _is_subscribe_result(result: Any) -> bool:
    """Whether ``result`` is a mining.subscribe grant of any dialect.

    Bitcoin: ``[[subscriptions], extranonce1, extranonce2_size]``.
    EthereumStratum/1.0.0: ``[["mining.notify", id, proto], extranonce]``.
    Zcash and KawPow: ``[session or null, nonce prefix]``.
    """
    if not isinstance(result, list) or not 2 <= len(result) <= 3:
        return False
    if len(result) == 3:
        return (
            isinstance(result[0], list)
            and is_hex(result[1])
            and isinstance(result[2], int)
        )
    if isinstance(result[0], list):
        return bool(result[0]) and result[0][0] == "mining.notify"
    return (result[0] is None or isinstance(result[0], str)) and is_hex(result[1])


def _is_getwork_result(result: Any) -> bool:
    return (
        isinstance(result, Mapping)
        and is_hex(result.get("data"), 128)
        and ("target" in result)
    )


def _json_body(body: bytes) -> Any:
    stripped = body.strip()
    if (
        not stripped
        or stripped[:1] not in (b"{", b"[")
        or len(stripped) > (MAX_HTTP_JSON_BYTES)
    ):
        return None
    try:
        return json.loads(stripped)
    except (ValueError, RecursionError):
        return None
