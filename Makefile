# otlpd: build, run and test on a fresh Debian machine (as root).
#   make run    install what is missing, build, run with the embedded default config
#   make test   install what is missing, build, run every test
#   make bench  the benchmark beside the peer collector (see bench/README.md)

SHELL := /bin/bash
VENV := .venv
PYTHON := $(VENV)/bin/python
APT_PACKAGES := pkg-config libnghttp2-dev libprotobuf-c-dev libpcre2-dev libssl-dev protobuf-c-compiler libzstd-dev zlib1g-dev libisal-dev nghttp2-client curl openssl zstd gzip python3-venv podman runc mmdebstrap binutils systemd chromium chromium-driver
SWIFT_BUILD_FLAGS := -c release
BINARY := .build/release/otlpd

.PHONY: run test build deps apt venv unit integration generated-check proto-facts fixtures-check unsafe-check bench clean install uninstall

run: deps build
	$(BINARY) $(ARGS)

build:
	swift build $(SWIFT_BUILD_FLAGS) --product otlpd

deps: apt venv

# Installs only what is missing; apt-get update first, as a fresh machine needs.
apt:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

venv: $(VENV)/.installed

$(VENV)/.installed: Tests/IntegrationTests/requirements.txt
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install -q --upgrade pip
	$(PYTHON) -m pip install -q -r Tests/IntegrationTests/requirements.txt
	touch $@

test: deps generated-check proto-facts fixtures-check unsafe-check unit fuzz-replay integration

# The committed protobuf-c code matches what protoc-c makes of proto/.
generated-check:
	Sources/COTLPProto/generate.sh --check

# proto/ matches the protocol's facts as the PyPI opentelemetry-proto package has them.
proto-facts: venv
	$(PYTHON) Tests/ProtoFacts/check_protos.py

# The codecs' golden files are what the PyPI package makes of them today.
fixtures-check: venv
	@out=$$(mktemp -d); trap 'rm -rf "$$out"' EXIT; \
	$(PYTHON) Tests/OTLPDWireTests/Fixtures/make_fixtures.py --out "$$out" >/dev/null && \
	for f in "$$out"/*; do cmp "$$f" "Tests/OTLPDWireTests/Fixtures/$$(basename "$$f")" || { echo "stale golden file: $$(basename "$$f") (run make_fixtures.py)"; exit 1; }; done; \
	echo "golden files match the PyPI opentelemetry-proto package"

# Unsafe pointer code stays in the thin layers over C.
unsafe-check:
	@bad=$$(grep -rlE 'Unsafe|Unmanaged|@unchecked Sendable' Sources --include=*.swift \
	  | grep -vE '^Sources/(OTLPDHTTP2|OTLPDWire/Protobuf|OTLPDCompression|OTLPDStringOps|OTLPDSystem|OTLPDFuzz)/' || true); \
	if [ -n "$$bad" ]; then echo "unsafe code outside the C-wrapping layers:"; echo "$$bad"; exit 1; fi

# Unit tests share the release build with the binary: one build, not two.
unit:
	swift build $(SWIFT_BUILD_FLAGS) --build-tests
	swift test $(SWIFT_BUILD_FLAGS) --skip-build

integration: build venv
	OTLPD_BINARY=$(abspath $(BINARY)) $(PYTHON) -m pytest -q -p no:cacheprovider Tests/IntegrationTests

# Fuzzing (not part of `make test`; see Fuzz/README.md): libFuzzer and the
# address sanitizer, every target for FUZZ_SECONDS, FUZZ_JOBS at a time;
# the table goes to Fuzz/out/results.md, crash inputs to Fuzz/out/crashes/.
FUZZ_SECONDS ?= 600
FUZZ_JOBS ?= 2
FUZZ_TARGETS ?= sniffer h2client grpc wire json segments config

.PHONY: fuzz fuzz-build fuzz-replay

fuzz: fuzz-build
	FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_JOBS=$(FUZZ_JOBS) Fuzz/run.sh $(FUZZ_TARGETS)

fuzz-build:
	swift build -c release --product otlpd-fuzz --scratch-path .build-fuzz -Xswiftc -sanitize=fuzzer,address -Xswiftc -DFUZZING

# The seed corpora and every regression input, through the plain build's harnesses (seconds).
fuzz-replay:
	swift build $(SWIFT_BUILD_FLAGS) --product otlpd-fuzz
	@for t in sniffer h2client grpc wire json segments config; do \
	  .build/release/otlpd-fuzz $$t Fuzz/corpus/$$t Fuzz/regressions/$$t || exit 1; \
	done

# The soak (Tests/Soak/soak.py; its 3-minute version is test_soak.py in `make test`): MINUTES of SDK
# traffic through a forwarding otlpd with reloads, upstream restarts, a kill -9 and a full queue.
# Figures and the RSS/fd plot in .build/soak/ (soak.md, soak-summary.json, soak.png).
MINUTES ?= 30
.PHONY: soak
soak: build venv
	$(PYTHON) Tests/Soak/soak.py --otlpd $(abspath $(BINARY)) --minutes $(MINUTES) --out .build/soak

bench: build venv
	$(PYTHON) bench/run.py --otlpd $(abspath $(BINARY))

# The binary, the systemd unit, and the config (never overwritten: an edited one stays).
PREFIX ?= /usr/local
install: build
	install -D -m 0755 $(BINARY) $(DESTDIR)$(PREFIX)/bin/otlpd
	install -D -m 0644 systemd/otlpd.service $(DESTDIR)/etc/systemd/system/otlpd.service
	sed -i 's|^ExecStart=/usr/local/bin/otlpd|ExecStart=$(PREFIX)/bin/otlpd|' $(DESTDIR)/etc/systemd/system/otlpd.service
	@if [ -e $(DESTDIR)/etc/otlpd/otlpd.yaml ]; then echo "keeping the existing /etc/otlpd/otlpd.yaml"; \
	else install -D -m 0644 config/otlpd.yaml $(DESTDIR)/etc/otlpd/otlpd.yaml; fi
	@if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then systemctl daemon-reload; \
	  echo "installed: systemctl enable --now otlpd"; else echo "installed (systemd is not running here: no daemon-reload)"; fi

# Removes the binary and the unit; the config and /var/lib/otlpd stay (data and settings are the user's).
uninstall:
	@if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then systemctl disable --now otlpd 2>/dev/null || true; fi
	rm -f $(DESTDIR)$(PREFIX)/bin/otlpd $(DESTDIR)/etc/systemd/system/otlpd.service
	@if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then systemctl daemon-reload; fi

clean:
	rm -rf .build $(VENV)
