"""The writes of one mining session in each benchmarked dialect.

Each builder returns the writes of a whole session, drawn from ``rng``: the
login, a few jobs and the shares found on them. The message bytes come from
:mod:`detector.trafficgen.messages`, which follows the miners' and pools'
own layouts.
"""

from __future__ import annotations

import random

from detector.bench.conversation import Write
from detector.trafficgen import wallets
from detector.trafficgen.messages import ethproxy, monero, stratum_v1

# Dialect names as the detector reports them in mining.dialect.
MONERO = "monero"
STRATUM_V1 = "stratum-v1"
ETHPROXY = "ethproxy"
DIALECTS = (MONERO, STRATUM_V1, ETHPROXY)

XMRIG_AGENT = "XMRig/6.21.0 (Linux x86_64) libuv/1.44.2 gcc/12.2.0"
CGMINER_AGENT = "cgminer/4.12.1"

# Seconds between jobs: Monero and Ethereum pools push a job per block or
# more often, Bitcoin pools every 30 s or so. Shortened here so that a
# session fits in a capture that lasts minutes.
JOB_INTERVAL_SECONDS = (2.0, 8.0)
# Seconds from a job to a share found on it.
SHARE_DELAY_SECONDS = (0.5, 3.0)
JOBS_PER_SESSION = (2, 5)
SHARES_PER_JOB = (0, 2)

# Monero: a RandomX job's 76-byte hashing blob and a 32-bit share target.
MONERO_HEIGHT = 3_580_000
MONERO_BLOB_BYTES = 76
MONERO_TARGET = "b88d0600"
# Bitcoin: BIP 9 version with no deployment bits, and a plausible nbits.
BITCOIN_VERSION = "20000000"
BITCOIN_NBITS = "17034219"
BITCOIN_EXTRANONCE2_SIZE = 4
BITCOIN_DIFFICULTY = 65536
# Ethereum: a share boundary of about difficulty 4 G and a block height.
ETH_BOUNDARY = "0x0000000112e0be826d694b2e62d01511f12a6061fbaec8bc02357593e70e52ba"
ETH_HEIGHT = 21_900_000
# Claymore reports its hashrate every 30 s; this is 30.4 MH/s.
ETH_HASHRATE = "0x1d08a61"

NS_PER_SECOND = 1_000_000_000


def session(dialect: str, rng: random.Random, base_unix_time: int) -> list[Write]:
    """Build the writes of one session in ``dialect``.

    Raises:
        ValueError: ``dialect`` is not one of :data:`DIALECTS`.
    """
    if dialect == MONERO:
        return _monero(rng)
    if dialect == STRATUM_V1:
        return _stratum_v1(rng, base_unix_time)
    if dialect == ETHPROXY:
        return _ethproxy(rng)
    raise ValueError(f"unknown dialect {dialect!r}; expected one of {DIALECTS}")


def _seconds(rng: random.Random, bounds: tuple[float, float]) -> int:
    return int(rng.uniform(*bounds) * NS_PER_SECOND)


def _hex(rng: random.Random, size: int) -> str:
    return rng.randbytes(size).hex()


def _monero(rng: random.Random) -> list[Write]:
    session_id = _hex(rng, 8)
    seed_hash = _hex(rng, 32)
    rigid = f"rig-{_hex(rng, 2)}"
    login = monero.xmrig_login(wallets.monero(rng), XMRIG_AGENT, rigid=rigid)
    writes = [Write(True, login)]
    request_id = 1
    for index in range(rng.randint(*JOBS_PER_SESSION)):
        job = monero.Job(
            blob=_hex(rng, MONERO_BLOB_BYTES),
            job_id=_hex(rng, 6),
            target=MONERO_TARGET,
            algorithm="rx/0",
            height=MONERO_HEIGHT + index,
            seed_hash=seed_hash,
        )
        if index == 0:
            writes.append(Write(False, monero.login_result(session_id, job)))
        else:
            notification = monero.job_notification(job)
            writes.append(
                Write(False, notification, _seconds(rng, JOB_INTERVAL_SECONDS))
            )
        for _ in range(rng.randint(*SHARES_PER_JOB)):
            request_id += 1
            # A share's hash is below the target, so its most significant
            # (last, little-endian) bytes are zero.
            line = monero.submit(
                session_id,
                job.job_id,
                _hex(rng, 4),
                _hex(rng, 28) + "00000000",
                request_id=request_id,
            )
            writes.append(Write(True, line, _seconds(rng, SHARE_DELAY_SECONDS)))
            writes.append(Write(False, monero.status_result(request_id)))
    return writes


def _stratum_v1(rng: random.Random, base_unix_time: int) -> list[Write]:
    user = f"{wallets.bitcoin_bech32(rng)}.w{rng.randint(1, 99)}"
    writes = [
        Write(True, stratum_v1.subscribe(1, CGMINER_AGENT)),
        Write(
            False,
            stratum_v1.subscribe_result(
                1, _hex(rng, 8), _hex(rng, 4), BITCOIN_EXTRANONCE2_SIZE
            ),
        ),
        Write(True, stratum_v1.authorize(2, user)),
    ]
    request_id = 2
    elapsed = 0
    for index in range(rng.randint(*JOBS_PER_SESSION)):
        job = stratum_v1.Notify(
            job_id=_hex(rng, 3),
            previous_hash=_hex(rng, 32),
            coinbase1="01000000010000000000000000000000000000000000000000000000000"
            "000000000000000ffffffff35" + _hex(rng, 20),
            coinbase2=_hex(rng, 12) + "ffffffff02" + _hex(rng, 40),
            merkle_branches=tuple(_hex(rng, 32) for _ in range(rng.randint(1, 6))),
            version=BITCOIN_VERSION,
            nbits=BITCOIN_NBITS,
            ntime=f"{base_unix_time + elapsed // NS_PER_SECOND:08x}",
            clean_jobs=index == 0,
        )
        if index == 0:
            # The pool replies to authorize and sends the difficulty and the
            # first job in one write.
            first = (
                stratum_v1.boolean_result(2, True)
                + stratum_v1.set_difficulty(BITCOIN_DIFFICULTY)
                + stratum_v1.notify(job)
            )
            writes.append(Write(False, first))
        else:
            delay = _seconds(rng, JOB_INTERVAL_SECONDS)
            elapsed += delay
            writes.append(Write(False, stratum_v1.notify(job), delay))
        for _ in range(rng.randint(*SHARES_PER_JOB)):
            request_id += 1
            line = stratum_v1.submit(
                request_id,
                user,
                job.job_id,
                _hex(rng, BITCOIN_EXTRANONCE2_SIZE),
                job.ntime,
                _hex(rng, 4),
            )
            delay = _seconds(rng, SHARE_DELAY_SECONDS)
            elapsed += delay
            writes.append(Write(True, line, delay))
            writes.append(Write(False, stratum_v1.boolean_result(request_id, True)))
    return writes


def _ethproxy(rng: random.Random) -> list[Write]:
    wallet = wallets.ethereum(rng)
    worker = f"rig{rng.randint(1, 99)}"
    writes = [
        Write(True, ethproxy.submit_login(wallet, worker=worker)),
        Write(False, ethproxy.boolean_result(2)),
        Write(True, ethproxy.get_work(3)),
        Write(
            False,
            ethproxy.work_package(
                3, "0x" + _hex(rng, 32), "0x" + _hex(rng, 32), ETH_BOUNDARY
            ),
        ),
        Write(
            True,
            ethproxy.submit_hashrate(6, ETH_HASHRATE, "0x" + _hex(rng, 32)),
            _seconds(rng, SHARE_DELAY_SECONDS),
        ),
        Write(False, ethproxy.boolean_result(6)),
    ]
    for index in range(rng.randint(*JOBS_PER_SESSION)):
        header = "0x" + _hex(rng, 32)
        push = ethproxy.work_package(
            ethproxy.PUSH_ID,
            header,
            "0x" + _hex(rng, 32),
            ETH_BOUNDARY,
            hex(ETH_HEIGHT + index),
        )
        writes.append(Write(False, push, _seconds(rng, JOB_INTERVAL_SECONDS)))
        for _ in range(rng.randint(*SHARES_PER_JOB)):
            submit = ethproxy.submit_work(
                4, "0x" + _hex(rng, 8), header, "0x" + _hex(rng, 32), worker=worker
            )
            writes.append(Write(True, submit, _seconds(rng, SHARE_DELAY_SECONDS)))
            writes.append(Write(False, ethproxy.boolean_result(4)))
    return writes
