# Every target that runs project code first builds the virtual environment, so
# `make demo` and `make test` work on a fresh clone with nothing else done.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv demo test test-tools check format lint types pcaps clean bench bench-tools \
	bench-live bench-live-tools

venv: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { \
	  echo "error: $(PYTHON) is older than Python 3.11; run 'make clean' and" \
	       "then 'make PYTHON=python3.11 ...' with a newer interpreter" >&2; exit 1; }
	$(PYTHON) -m venv --clear $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/detector scan --format table pcaps/ || [ $$? -eq 1 ]

# System tools the tests drive for real: a Docker engine and busybox-static
# (the attribution tests build their image from its binary), conntrack for NAT
# mapping, tcpdump for bridge captures, iproute2 and iptables for network
# namespaces. Needs root and Debian's apt; skipped when all are present.
test-tools:
	@if command -v dockerd >/dev/null && command -v conntrack >/dev/null \
	    && command -v tcpdump >/dev/null && dpkg -s busybox-static >/dev/null 2>&1 \
	    && command -v ip >/dev/null && command -v iptables >/dev/null \
	    && command -v tcpreplay >/dev/null; then \
	  echo "dockerd, conntrack, tcpdump, tcpreplay, busybox, ip and iptables are installed"; \
	else \
	  DEBIAN_FRONTEND=noninteractive apt-get update && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y docker.io busybox-static \
	    conntrack tcpdump tcpreplay iproute2 iptables; \
	fi

test: $(STAMP) test-tools
	$(PY) -m pytest

format: $(STAMP)
	$(VENV)/bin/ruff format detector tests

lint: $(STAMP)
	$(VENV)/bin/ruff check detector tests
	$(VENV)/bin/ruff format --check detector tests

types: $(STAMP)
	$(VENV)/bin/mypy

check: lint types test

# Rewrites the bundled sample captures; the output is byte-for-byte the same on
# every run, so a diff after this target means the generator changed.
pcaps: $(STAMP)
	$(PY) -m detector.trafficgen pcaps

# The benchmark's captures take about 1 GB; any folder with room will do.
BENCH_DIR ?= /tmp/detector-bench
BENCH_ROUNDS ?= 3

# Installs the peers the benchmark compares against (tshark, ndpiReader) and GNU
# time, which reports peak memory. Needs root and Debian's apt; skipped when all
# three are present. The debconf answer keeps tshark's install from asking
# whether non-root users may capture.
bench-tools:
	@if command -v tshark >/dev/null && command -v ndpiReader >/dev/null \
	    && [ -x /usr/bin/time ]; then \
	  echo "tshark, ndpiReader and /usr/bin/time are installed"; \
	else \
	  echo 'wireshark-common wireshark-common/install-setuid boolean false' \
	    | debconf-set-selections && \
	  DEBIAN_FRONTEND=noninteractive apt-get update && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y tshark libndpi-bin time; \
	fi

# Generates the 1-million-packet captures into BENCH_DIR, times the detector
# against ndpiReader and tshark, profiles the detector with cProfile and
# rewrites docs/benchmarks.md. Takes about ten minutes on 2 cores.
bench: $(STAMP) bench-tools
	$(PY) -m detector.bench generate $(BENCH_DIR)
	$(PY) -m detector.bench run --workdir $(BENCH_DIR) --rounds $(BENCH_ROUNDS) \
	  --output docs/benchmarks.md

bench-live-tools:
	@if command -v tcpreplay >/dev/null && command -v tcpdump >/dev/null \
	    && command -v ip >/dev/null; then \
	  echo "tcpreplay, tcpdump and ip are installed"; \
	else \
	  DEBIAN_FRONTEND=noninteractive apt-get update && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y tcpreplay tcpdump iproute2; \
	fi

# Replays the mixed capture into a veth pair in a namespace at several rates
# and compares the packets detector watch and tcpdump capture
# (docs/benchmarks-live.md). Generates the capture first if it is missing.
bench-live: $(STAMP) bench-live-tools
	@test -f $(BENCH_DIR)/mixed-1m.pcap || $(PY) -m detector.bench generate $(BENCH_DIR)
	$(PY) -m detector.bench live --workdir $(BENCH_DIR) --output docs/benchmarks-live.md

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
