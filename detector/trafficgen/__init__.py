"""Generator of the sample captures bundled in ``pcaps/``.

It crafts mining and ordinary traffic with scapy and writes it as capture
files. It never sends a packet. The detector itself does not import this
package.

- ``messages``: builders of protocol messages as bytes, one module per Stratum
  dialect or protocol. They need no scapy, so a test server can reuse them.
- ``wallets``: placeholder addresses shaped like each coin's.
- ``conversation``: steps of one TCP or UDP flow turned into timed IP packets.
- ``links``: Ethernet (with 802.1Q or QinQ), Linux cooked v1 and v2, raw IP.
- ``writers``: pcap (micro- and nanosecond, either byte order), pcapng, gzip.
- ``samples``: the catalogue of sample files and their expected detections.
- ``manifest``: the YAML list of samples. ``python -m detector.trafficgen OUTDIR``
  writes the samples and the manifest.
"""
