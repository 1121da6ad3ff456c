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
