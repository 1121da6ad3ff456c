"""Limits that protect the capture readers from corrupt or hostile files."""

from __future__ import annotations

# libpcap's own maximum snap length (MAXIMUM_SNAPLEN, 262144, in pcap-int.h) and
# larger than any link MTU plus its headers, including 64 KiB GRO/TSO packets.
# A longer record length means a corrupt record header, not a real packet.
MAX_RECORD_LENGTH = 256 * 1024

# A record may be a little longer than the file's snap length because some
# writers store a snap length that leaves out the link-layer header or a VLAN
# tag. Twice the snap length is far beyond such slips, so a longer record means
# the reader has lost its place in a corrupt file.
SNAPLEN_OVERRUN_FACTOR = 2

# pcapng blocks other than packets (name resolution, decryption secrets,
# custom blocks) may carry large tables. 16 MiB is an estimate that leaves room
# for them and keeps one corrupt length from allocating gigabytes.
MAX_BLOCK_LENGTH = 16 * 1024 * 1024

# Read buffer for capture files. One MiB keeps the number of read system calls
# low for small packets without holding much memory per open file.
READ_BUFFER_SIZE = 1024 * 1024

# Bytes of capture read at once by the batch readers, and so the most capture
# bytes a scan holds. 1 MiB, as READ_BUFFER_SIZE, holds about 1800 packets of
# mixed traffic or 15000 SYNs, enough to spread numpy's cost per call. Batches
# of 4 MiB pay that cost less often (about 0.5 s less per million packets of
# the benchmark's mixed capture, measured on a 2-core VM) but hold four times
# the bytes. Every record fits in a batch, since MAX_RECORD_LENGTH is smaller.
BATCH_BYTES = 1024 * 1024

# Packets per batch at most, so a capture of tiny or empty records does not
# make batches of hundreds of thousands of packets.
MAX_BATCH_PACKETS = 65536
