"""Stratum V2 without encryption: a SetupConnection and the pool's
SetupConnection.Success."""

from __future__ import annotations

from detector.trafficgen.conversation import (
    Endpoint,
    tcp_conversation,
    to_client,
    to_server,
)
from detector.trafficgen.messages import sv2
from detector.trafficgen.samples.common import (
    STRATUM_V2,
    ExpectedFlow,
    SampleFile,
    pcap_sample,
    seconds,
)

# The port of the specification's example URL, stratum2+tcp://host:34254/key.
SV2_PORT = 34254
POOL_HOST = "eu.stratum.braiins.com"


def setup_sample() -> SampleFile:
    # An ASIC on a farm network: the client address is private.
    client = Endpoint("10.0.5.20", 39012)
    server = Endpoint("203.0.113.60", SV2_PORT)
    steps = [
        to_server(
            sv2.setup_connection(
                POOL_HOST,
                SV2_PORT,
                vendor="Bitmain",
                hardware_version="S19j Pro",
                firmware="braiins-os-23.03",
                device_id="rig-04",
            )
        ),
        to_client(sv2.setup_connection_success()),
    ]
    packets = tcp_conversation(client, server, steps, start_ns=seconds(0))
    expected = ExpectedFlow(
        client=client, server=server, dialect=STRATUM_V2, pool_host=POOL_HOST
    )
    return pcap_sample(
        "sv2-setup.pcap",
        "An ASIC opens a plaintext Stratum V2 connection on port 34254 with a"
        " SetupConnection naming eu.stratum.braiins.com, and the pool answers"
        " SetupConnection.Success.",
        packets,
        [expected],
    )


def build() -> list[SampleFile]:
    return [setup_sample()]
