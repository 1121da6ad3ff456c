"""Per-flow inspection: stream bytes in, mining evidence and a verdict out.

A :class:`FlowInspector` holds one flow's protocol decoders and what they have
shown so far. It picks a decoder per direction from the first bytes, turns each
decoded message into evidence through the shape rules, pairs responses with
the requests they answer, and at the end decides whether the flow is mining.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from detector.engine.behaviour import FlowFeatures, score_flow
from detector.engine.context import InspectionContext
from detector.engine.rules import (
    METHOD_RULES,
    Observation,
    Request,
    is_ethproxy_job,
    is_hex,
    is_monero_job,
)
from detector.errors import DecodeError
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
    ClientHello,
    DnsMessage,
    DnsTcpDecoder,
    HttpDecoder,
    HttpRequest,
    HttpResponse,
    JsonLineDecoder,
    JsonMessage,
    MalformedLine,
    MalformedSocks,
    ServerCertificate,
    ServerHello,
    SocksConnect,
    SocksDecoder,
    SocksReplyDecoder,
    TlsClientHelloDecoder,
    TlsServerDecoder,
    WebMinerMessage,
    WebSocketBinary,
    WebSocketDecoder,
    WebSocketText,
    identify,
    looks_like_noise_act1,
    parse_dns,
    parse_setup_connection,
    parse_webminer,
    resolve_chain,
)
from detector.signatures import Signatures
from detector.signatures.pools import PoolMatch

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

# When several dialects fit the evidence equally, the first in this order
# wins. Dialects with messages of their own come first. Among the Stratum v1
# family the plain dialect comes before its variants: they share
# mining.subscribe, and a flow that showed nothing of a variant's own (its
# notify parameters, say) is plain Stratum v1 as far as anyone can tell.
DIALECT_PREFERENCE = (
    "stratum-v2",
    "webminer",
    "ethereumstratum-2",
    "monero",
    "ethproxy",
    "getblocktemplate",
    "getwork",
    "stratum-v1",
    "kawpow",
    "ethereumstratum-1",
    "stratum-v1-zcash",
    "dns",
    "socks",
    "tls",
)

# Coins whose addresses are long and shaped enough that one in a login marks
# it as a miner's.
DISTINCTIVE_WALLET_COINS = frozenset({"monero"})

# A flow whose streams carry this many decoded messages without any evidence
# of mining is given up: Stratum shows its login, subscribe or first job within
# the first few messages, and a busy JSON-RPC service would otherwise be parsed
# up to the reassembly depth.
MAX_MESSAGES_WITHOUT_EVIDENCE = 200

# DNS over UDP or TCP, and multicast DNS.
DNS_PORTS = frozenset({53, 5353})

# Datagrams decoded per UDP flow: a lookup is a query and its answer; a
# long-lived multicast DNS flow is sampled, not followed for ever.
MAX_DNS_DATAGRAMS = 64

# Questions looked at per DNS message; real messages carry one.
MAX_DNS_QUESTIONS = 4

# Server names remembered per flow (SNI, Host, proxy target, certificate
# names) and certificate names matched against the pool list.
MAX_NAMES = 16
MAX_CERTIFICATE_NAMES = 8

# Stratum V2's de-facto port (the specification's example URL) and the size
# of the Noise handshake's first client message.
SV2_PORT = 34254
NOISE_ACT1_BYTES = 64

TLS_1_3 = 0x0304

# SOCKS5 authentication methods a greeting may offer (RFC 1928 section 3):
# none, GSSAPI, username/password, and the IANA-assigned 0x03-0x09.
SOCKS5_METHODS = frozenset(range(0x00, 0x0A))

# The source of a server name, as the evidence description words it.
POOL_NAME_SOURCES = {
    "tls.sni": "the TLS server name (SNI)",
    "tls.certificate": "the server's certificate",
    "http.host": "the HTTP Host header",
    "http.connect": "the HTTP CONNECT target",
    "socks.target": "the SOCKS CONNECT target",
    "dns.query": "a DNS query",
    "dns.pool_address": "a DNS answer for the server address",
    "stratum.pool_host": "the Stratum messages",
    "sv2.endpoint": "the Stratum V2 SetupConnection",
}

# Evidence that a flow talks to a listed pool by name. One such piece makes a
# medium-confidence detection when the flow carries data both ways; a DNS
# query for a pool is a finding by itself.
POOL_NAME_KINDS = frozenset(POOL_NAME_SOURCES)

# Evidence that only ever makes a low-confidence finding on its own.
WEAK_FINDING_KINDS = frozenset(
    {"network.pool_address", "behaviour.score", "sv2.noise_handshake"}
)

MINING_HTTP_REQUEST_HEADERS = ("x-mining-extensions", "x-mining-hashrate")
MINING_HTTP_RESPONSE_HEADERS = ("x-long-polling", "x-stratum", "x-roll-ntime")


@dataclass(slots=True)
class _EvidenceTally:
    """Evidence of one kind, kept once with a count instead of once per message."""

    evidence: Evidence
    count: int = 1


@dataclass(slots=True)
class _DirectionState:
    # undecided, json, http, tls, socks, websocket, dns or other; "other"
    # means nothing more is read from this direction.
    mode: str = "undecided"
    pending: bytearray = field(default_factory=bytearray)
    decoder: Any = None
    # Bytes fed to the current decoder, to find where a tunnel it reports
    # (CONNECT, SOCKS, WebSocket upgrade) starts within the latest chunk.
    fed: int = 0
    upgrade_websocket: bool = False
    # The direction carries a tunnel's contents after a proxy handshake, so
    # its first bytes are not a proxy handshake again.
    tunnelled: bool = False
    malformed: int = 0


class FlowInspector:
    """Decode one flow's streams and collect the evidence of mining in them."""

    _handlers: ClassVar[
        dict[str, Callable[[FlowInspector, Direction, Iterable[object], float], None]]
    ]

    __slots__ = (
        "signatures",
        "key",
        "context",
        "_names",
        "_socks",
        "_http_methods_sent",
        "_datagrams",
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
        "reported",
        "_flow_evidence_added",
    )

    def __init__(
        self,
        signatures: Signatures,
        key: FlowKey,
        context: InspectionContext | None = None,
    ) -> None:
        self.signatures = signatures
        self.key = key
        self.context = context if context is not None else InspectionContext()
        # Host names the flow names its server by (SNI, Host, proxy target,
        # DNS), in the order seen.
        self._names: list[str] = []
        self._socks = False
        self._http_methods_sent: list[str] = []
        self._datagrams = 0
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
        # The last detection built for this flow, which its session counts.
        self.reported: Detection | None = None
        self._flow_evidence_added = False

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
            self._push(state, direction, chunk.data, timestamp)

    def _push(
        self,
        state: _DirectionState,
        direction: Direction,
        data: bytes,
        timestamp: float,
    ) -> None:
        if state.mode == "undecided":
            self._choose_decoder(state, direction, data, timestamp)
        elif state.mode != "other":
            self._decode(state, direction, data, timestamp)

    def feed_datagram(
        self, direction: Direction, payload: bytes, timestamp: float
    ) -> None:
        """Decode one UDP payload: DNS on its ports, nothing else.

        Stratum runs over TCP only, so a UDP flow that is not DNS is given up.
        """
        self._datagrams += 1
        if (
            self.key.server_port not in DNS_PORTS
            and self.key.client_port not in DNS_PORTS
        ) or self._datagrams > MAX_DNS_DATAGRAMS:
            self._give_up()
            return
        try:
            message = parse_dns(payload)
        except DecodeError:
            self.malformed_messages += 1
            return
        self.messages += 1
        self._on_dns(message, direction, timestamp)

    def finish(self, timestamp: float) -> None:
        """End both streams: decode what a last unterminated message held."""
        for direction, state in self._directions.items():
            if state.mode != "other" and state.decoder is not None:
                self._dispatch(state, direction, state.decoder.finish(), timestamp)

    def _fruitless(self) -> bool:
        return self.messages >= MAX_MESSAGES_WITHOUT_EVIDENCE and not self._evidence

    def _give_up(self) -> None:
        for state in self._directions.values():
            self._stop(state)

    @staticmethod
    def _stop(state: _DirectionState) -> None:
        state.mode = "other"
        state.decoder = None
        state.pending = bytearray()

    def _on_gap(self, state: _DirectionState) -> None:
        if state.decoder is not None:
            state.decoder.gap()
        if state.mode == "undecided":
            state.pending.clear()

    def _start(self, state: _DirectionState, mode: str, decoder: Any) -> None:
        state.mode = mode
        state.decoder = decoder
        state.fed = 0

    def _choose_decoder(
        self,
        state: _DirectionState,
        direction: Direction,
        data: bytes,
        timestamp: float,
    ) -> None:
        state.pending += data
        buffered = bytes(state.pending)
        to_server = direction is Direction.TO_SERVER
        ports = (self.key.server_port, self.key.client_port)
        decoder: Any
        if DNS_PORTS.intersection(ports):
            mode, decoder = "dns", DnsTcpDecoder()
        elif to_server and not state.tunnelled and _looks_like_socks(buffered):
            self._socks = True
            mode, decoder = "socks", SocksDecoder()
        elif not to_server and self._socks and not state.tunnelled:
            mode, decoder = "socks", SocksReplyDecoder()
        elif to_server and self._inspect_sv2(buffered, timestamp):
            self._stop(state)
            return
        else:
            kind = identify(buffered)
            if kind == "incomplete":
                return
            if kind == "json":
                mode, decoder = "json", JsonLineDecoder()
            elif kind == "http":
                mode, decoder = "http", HttpDecoder()
                if not to_server:
                    for method in self._http_methods_sent:
                        decoder.expect_response_to(method)
            elif kind == "tls":
                mode = "tls"
                decoder = TlsClientHelloDecoder() if to_server else TlsServerDecoder()
            else:
                state.pending = bytearray()
                self._resume_mid_line(state, direction, buffered, timestamp)
                return
        state.pending = bytearray()
        self._start(state, mode, decoder)
        self._decode(state, direction, buffered, timestamp)

    def _resume_mid_line(
        self,
        state: _DirectionState,
        direction: Direction,
        buffered: bytes,
        timestamp: float,
    ) -> None:
        # A capture that starts mid-session starts mid-line: resume at the
        # first line that opens a JSON object. Only text can be the tail of a
        # Stratum line, so a binary stream is given up at once.
        if not _is_text(buffered[:TEXT_PROBE_BYTES]):
            self._stop(state)
            return
        start = buffered.find(b"\n{", 0, MID_SESSION_SEARCH_BYTES)
        if start >= 0:
            self._start(state, "json", JsonLineDecoder())
            self._decode(state, direction, buffered[start + 1 :], timestamp)
        elif len(buffered) < MID_SESSION_SEARCH_BYTES:
            state.pending = bytearray(buffered)
        else:
            self._stop(state)

    def _inspect_sv2(self, buffered: bytes, timestamp: float) -> bool:
        """Look for a Stratum V2 start; return whether the stream is SV2."""
        if buffered[:3] == b"\x00\x00\x00":
            setup = parse_setup_connection(buffered)
            if setup is not None:
                self._record(
                    Evidence(
                        kind="sv2.setup_connection",
                        confidence=Confidence.HIGH,
                        description="plaintext Stratum V2 SetupConnection",
                        timestamp=timestamp,
                        direction=Direction.TO_SERVER,
                        detail={
                            "host": setup.endpoint_host[:200],
                            "vendor": setup.vendor[:200],
                        },
                    )
                )
                self._add_dialect("stratum-v2", 4)
                self._add_name(setup.endpoint_host, timestamp, "sv2.endpoint")
                return True
        if (
            self.key.server_port == SV2_PORT
            and len(buffered) == NOISE_ACT1_BYTES
            and looks_like_noise_act1(buffered)
        ):
            self._record(
                Evidence(
                    kind="sv2.noise_handshake",
                    confidence=Confidence.LOW,
                    description="64-byte first message on the Stratum V2 port, the"
                    " shape of a Noise handshake",
                    timestamp=timestamp,
                    direction=Direction.TO_SERVER,
                    detail={"port": SV2_PORT},
                )
            )
            self._add_dialect("stratum-v2", 1)
            return True
        return False

    def _decode(
        self,
        state: _DirectionState,
        direction: Direction,
        data: bytes,
        timestamp: float,
    ) -> None:
        decoder = state.decoder
        before = state.fed
        state.fed += len(data)
        self._dispatch(state, direction, decoder.feed(data), timestamp)
        if state.decoder is not decoder or state.mode == "other":
            return
        tunnel = getattr(decoder, "tunnel_offset", None)
        if tunnel is None:
            return
        # The handshake (CONNECT, SOCKS, an HTTP upgrade) is over: what
        # follows is another protocol, chosen afresh from its first bytes.
        rest = data[max(tunnel - before, 0) :]
        if state.mode == "http" and state.upgrade_websocket:
            masked = direction is Direction.TO_SERVER
            self._start(state, "websocket", WebSocketDecoder(masked_expected=masked))
        else:
            self._start(state, "undecided", None)
            state.tunnelled = True
        if rest:
            self._push(state, direction, rest, timestamp)

    def _dispatch(
        self,
        state: _DirectionState,
        direction: Direction,
        events: Iterable[object],
        timestamp: float,
    ) -> None:
        handler = self._handlers[state.mode]
        handler(self, direction, events, timestamp)

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
        if host:
            self._fields.setdefault("http_host", _strip_port(host))
            self._add_name(host, timestamp, "http.host")
        method = request.method.upper()
        if method == "CONNECT":
            self._fields.setdefault("proxy_target", request.target[:300])
            self._add_name(request.target, timestamp, "http.connect")
        upgrade = headers.get("upgrade", "").lower()
        if "websocket" in upgrade:
            self._directions[direction].upgrade_websocket = True
        self._http_methods_sent.append(method)
        server_side = self._directions[Direction.TO_CLIENT]
        if isinstance(server_side.decoder, HttpDecoder):
            server_side.decoder.expect_response_to(method)
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
        if response.status == 101 and "websocket" in headers.get("upgrade", "").lower():
            self._directions[direction].upgrade_websocket = True
        value = _json_body(response.body)
        if value is not None:
            self._on_json(value, direction, timestamp)

    # -- TLS, SOCKS, WebSocket and DNS ---------------------------------------

    def _on_tls_events(
        self, direction: Direction, events: Iterable[object], timestamp: float
    ) -> None:
        state = self._directions[direction]
        for event in events:
            if isinstance(event, ClientHello):
                self.messages += 1
                self._on_client_hello(event, timestamp)
                # Everything after the hello is encrypted.
                self._stop(state)
                return
            if isinstance(event, ServerCertificate):
                self.messages += 1
                self._fields.setdefault("certificate_names", event.names)
                for name in event.names[:MAX_CERTIFICATE_NAMES]:
                    self._add_name(name, timestamp, "tls.certificate")
                self._stop(state)
                return
            if isinstance(event, ServerHello):
                self.messages += 1
                if event.version == TLS_1_3:
                    # The certificate of TLS 1.3 is encrypted.
                    self._stop(state)
                    return
            else:
                self.malformed_messages += 1
                self._stop(state)
                return

    def _on_client_hello(self, hello: ClientHello, timestamp: float) -> None:
        if hello.ja3:
            self._fields.setdefault("ja3", hello.ja3_hash)
        if hello.ja4:
            self._fields.setdefault("ja4", hello.ja4)
        self._add_dialect("tls", 1)
        if hello.server_name:
            self._fields.setdefault("tls_server_name", hello.server_name)
            self._add_name(hello.server_name, timestamp, "tls.sni")

    def _on_socks_events(
        self, direction: Direction, events: Iterable[object], timestamp: float
    ) -> None:
        for event in events:
            if isinstance(event, SocksConnect):
                self.messages += 1
                self._add_dialect("socks", 1)
                target = _endpoint_text(event.host, event.port)
                self._fields.setdefault("proxy_target", target)
                if event.by_name:
                    self._add_name(event.host, timestamp, "socks.target")
            elif isinstance(event, MalformedSocks):
                self.malformed_messages += 1
                self._stop(self._directions[direction])
                if direction is Direction.TO_SERVER:
                    self._socks = False
                return

    def _on_websocket_events(
        self, direction: Direction, events: Iterable[object], timestamp: float
    ) -> None:
        for event in events:
            if isinstance(event, WebSocketText):
                self.messages += 1
                self._on_websocket_text(event.text, direction, timestamp)
            elif isinstance(event, WebSocketBinary):
                self.messages += 1
            else:
                self.malformed_messages += 1
            if self._fruitless():
                self._give_up()
                return

    def _on_websocket_text(
        self, text: str, direction: Direction, timestamp: float
    ) -> None:
        message = parse_webminer(text)
        if message is not None:
            self._observe_webminer(message, direction, timestamp)
            return
        # Some browser miners and proxies carry Stratum lines as they are.
        value = _json_body(text.encode("utf-8", "surrogatepass"))
        if value is not None:
            self._on_json(value, direction, timestamp)

    def _observe_webminer(
        self, message: WebMinerMessage, direction: Direction, timestamp: float
    ) -> None:
        kind = message.kind
        self._count_method(direction, kind)
        if kind == "job":
            self.jobs += 1
        elif kind == "submit":
            self.shares_submitted += 1
        elif kind == "hash_accepted":
            self.shares_accepted += 1
        self._add_dialect("webminer", 4)
        self._record(
            Evidence(
                kind=f"webminer.{kind}",
                confidence=Confidence.HIGH,
                description=f"browser miner {kind} message over WebSocket",
                timestamp=timestamp,
                direction=direction,
            )
        )

    def _on_dns_events(
        self, direction: Direction, events: Iterable[object], timestamp: float
    ) -> None:
        for event in events:
            if isinstance(event, DnsMessage):
                self.messages += 1
                self._on_dns(event, direction, timestamp)
            else:
                self.malformed_messages += 1
                self._stop(self._directions[direction])
                return

    def _on_dns(
        self, message: DnsMessage, direction: Direction, timestamp: float
    ) -> None:
        if message.is_response and message.answers:
            ttl = min(record.ttl for record in message.answers)
            for address, names in resolve_chain(message).items():
                self.context.dns_cache.add(address, names, ttl, timestamp)
        for question in message.questions[:MAX_DNS_QUESTIONS]:
            match = self.signatures.pools.match_domain(question.name)
            if match is None:
                continue
            self._fields.setdefault("dns_query", question.name)
            self._record_pool_name(
                question.name, match, timestamp, direction, "dns.query"
            )
            self._add_dialect("dns", 1)

    def _add_name(self, name: str, timestamp: float, kind: str) -> None:
        """Record a name the flow gives its server, and match it to pools."""
        host = _strip_port(name).strip().lower().rstrip(".")
        if not host or len(self._names) >= MAX_NAMES or host in self._names:
            return
        self._names.append(host)
        match = self.signatures.pools.match_domain(host)
        if match is not None:
            self._record_pool_name(host, match, timestamp, None, kind)

    def _record_pool_name(
        self,
        name: str,
        match: PoolMatch,
        timestamp: float,
        direction: Direction | None,
        kind: str,
    ) -> None:
        self._fields.setdefault("pool_host", name)
        self._record(
            Evidence(
                kind=kind,
                confidence=Confidence.MEDIUM,
                description=f"{POOL_NAME_SOURCES.get(kind, kind)} names {name},"
                f" listed as a {match.kind} ({match.coin})",
                timestamp=timestamp,
                direction=direction,
                detail={
                    "name": name,
                    "listed": match.matched_entry,
                    "pool_kind": match.kind,
                    "coin": match.coin,
                    "list_source": match.source,
                },
            )
        )

    def _add_dialect(self, dialect: str, weight: int) -> None:
        self._dialect_votes[dialect] = self._dialect_votes.get(dialect, 0) + weight

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
        algorithm = fields.get("algorithm")
        if isinstance(algorithm, str) and algorithm:
            self._fields.setdefault("algorithm", algorithm)
        pool_host = fields.get("pool_host")
        if isinstance(pool_host, str) and pool_host:
            self._fields.setdefault("pool_host", pool_host)
            self._add_name(pool_host, timestamp, "stratum.pool_host")
        if "reconnect_host" in fields:
            detail["host"] = fields["reconnect_host"]
            detail["port"] = fields["reconnect_port"]
            self._add_name(
                str(fields["reconnect_host"]), timestamp, "stratum.pool_host"
            )
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
        if match.dialect is not None:
            self._fields.setdefault("agent_dialect", match.dialect)
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
        """Return whether the evidence so far makes a mining flow of medium
        confidence or more. The flow table keeps such flows when it is full."""
        verdict = self.verdict(carries_data=True)
        return verdict is not None and verdict >= Confidence.MEDIUM

    def verdict(self, carries_data: bool) -> Confidence | None:
        """Grade the evidence so far, or return None when it makes no finding.

        High: one decoded mining message (an agent string alone is not one).
        Medium: a listed pool named by SNI, Host, a proxy target or DNS, on a
        flow that carries data both ways (a DNS query needs none), or two
        different kinds of medium evidence. Low: an address from a pool
        list, a behavioural score or a Stratum V2 handshake shape, alone. A
        port never makes a finding.
        """
        medium_kinds = 0
        named_pool = False
        weak = False
        for tally in self._evidence.values():
            evidence = tally.evidence
            if evidence.confidence is Confidence.HIGH:
                if evidence.kind != "miner.agent":
                    return Confidence.HIGH
            elif evidence.confidence is Confidence.MEDIUM:
                medium_kinds += 1
                if evidence.kind in POOL_NAME_KINDS and (
                    carries_data or evidence.kind == "dns.query"
                ):
                    named_pool = True
            elif evidence.kind in WEAK_FINDING_KINDS:
                weak = True
        if named_pool or medium_kinds >= 2:
            return Confidence.MEDIUM
        if weak:
            return Confidence.LOW
        return None

    def dialect_settled(self) -> bool:
        """Return whether one dialect has more votes than any other, or the
        miner's agent names one of those tied. A lone Stratum subscribe fits
        several dialects until the pool responds."""
        votes = sorted(self._dialect_votes.values(), reverse=True)
        if len(votes) < 2 or votes[0] > votes[1]:
            return True
        return self._agent_dialect_among_best() is not None

    def _agent_dialect_among_best(self) -> str | None:
        hinted = self._fields.get("agent_dialect")
        if hinted is None or not self._dialect_votes:
            return None
        best = max(self._dialect_votes.values())
        return hinted if self._dialect_votes.get(hinted) == best else None

    def dialect(self) -> str:
        if not self._dialect_votes:
            return "unknown"
        hinted = self._agent_dialect_among_best()
        if hinted is not None:
            return hinted
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
        """Build the detection for this flow, or None when it makes no finding.

        Evidence that needs the whole flow is added here, on the first call:
        names a DNS answer gave the server address, a pool-list address match
        and, for flows no protocol could read, the behavioural score. A later
        call (the flow reported again when it ends) replaces the earlier
        detection in its session rather than adding a flow.
        """
        if not self._flow_evidence_added:
            self._flow_evidence_added = True
            self._add_flow_evidence(first_seen, last_seen, counters)
        carries_data = counters.bytes_to_server > 0 and counters.bytes_to_client > 0
        confidence = self.verdict(carries_data)
        if confidence is None:
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
            tls_server_name=fields.get("tls_server_name"),
            ja3=fields.get("ja3"),
            ja4=fields.get("ja4"),
            proxy_target=fields.get("proxy_target"),
            dns_names=tuple(self._names),
        )
        detection = Detection(
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
        session = self.context.sessions.add(
            detection, mining.pool_host, replaces=self.reported
        )
        detection = replace(detection, session_id=session.id)
        self.reported = detection
        return detection

    def _add_flow_evidence(
        self, first_seen: float, last_seen: float, counters: FlowCounters
    ) -> None:
        server = self.key.server_ip
        # A name the flow gives itself (SNI, Host, proxy target) wins over the
        # names DNS gave its address: CDN addresses serve many sites, one of
        # which may be a pool.
        cached = [] if self._names else self.context.dns_cache.names(server, first_seen)
        for name in cached:
            match = self.signatures.pools.match_domain(name)
            if match is not None:
                if name not in self._names:
                    self._names.append(name)
                self._record_pool_name(
                    name, match, first_seen, None, "dns.pool_address"
                )
                break
        network = self.signatures.pools.match_address(server)
        if network is not None:
            self._record(
                Evidence(
                    kind="network.pool_address",
                    confidence=Confidence.LOW,
                    description=f"the server address is in {network.network}, listed"
                    f" for {network.kind} ({network.coin})",
                    timestamp=first_seen,
                    detail={"network": network.network, "list_source": network.source},
                )
            )
        if self._evidence and any(
            tally.evidence.confidence >= Confidence.MEDIUM
            for tally in self._evidence.values()
        ):
            return
        if self.key.transport != "tcp" or self._read_a_protocol():
            return
        result = score_flow(
            FlowFeatures(
                duration=last_seen - first_seen,
                packets_to_server=counters.packets_to_server,
                packets_to_client=counters.packets_to_client,
                bytes_to_server=counters.bytes_to_server,
                bytes_to_client=counters.bytes_to_client,
            )
        )
        if result is not None and result.suspicious:
            self._record(
                Evidence(
                    kind="behaviour.score",
                    confidence=Confidence.LOW,
                    description="the flow has the shape of a mining session: "
                    + ", ".join(result.reasons),
                    timestamp=first_seen,
                    detail={"score": result.score, **result.features},
                )
            )

    def _read_a_protocol(self) -> bool:
        """Return whether a plaintext protocol (not TLS) was read from the flow.

        The shape of such a flow adds nothing to what its messages showed."""
        return bool(self._methods[Direction.TO_SERVER]) or any(
            state.mode in ("json", "http", "dns") for state in self._directions.values()
        )


FlowInspector._handlers = {
    "json": FlowInspector._on_json_events,
    "http": FlowInspector._on_http_events,
    "tls": FlowInspector._on_tls_events,
    "socks": FlowInspector._on_socks_events,
    "websocket": FlowInspector._on_websocket_events,
    "dns": FlowInspector._on_dns_events,
}


def _looks_like_socks(data: bytes) -> bool:
    """Return whether a client stream opens with a SOCKS4 or SOCKS5 handshake."""
    if len(data) < 2:
        return False
    if data[0] == 5:
        # SOCKS5 greeting: version, the number of methods, the methods.
        return 1 <= data[1] <= 9 and all(
            method in SOCKS5_METHODS for method in data[2 : 2 + data[1]]
        )
    # SOCKS4 request: version, CONNECT (1) or BIND (2), port, address.
    return data[0] == 4 and data[1] in (1, 2) and len(data) >= 9


def _strip_port(host: str) -> str:
    host = host.strip()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    if host.count(":") == 1:
        return host.rsplit(":", 1)[0]
    return host


def _endpoint_text(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


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
