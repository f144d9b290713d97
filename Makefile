# Quick start: `make demo` then `make test`. Each target sets up .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Independent clients whose pins conflict with the project's own (tests/clients/requirements.txt).
CLIENTS_VENV := .venv-clients
CLIENTS_STAMP := $(CLIENTS_VENV)/.installed

.PHONY: demo test test-prereqs clients-venv bench soak lint typecheck clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Rebuilt from scratch when the pins change, so nothing unpinned lingers from an earlier set.
$(CLIENTS_STAMP): tests/clients/requirements.txt
	rm -rf $(CLIENTS_VENV)
	$(PYTHON) -m venv $(CLIENTS_VENV)
	$(CLIENTS_VENV)/bin/pip install --quiet -r tests/clients/requirements.txt
	touch $(CLIENTS_STAMP)

clients-venv: $(CLIENTS_STAMP)

demo: $(STAMP)
	$(BIN)/cucm-renew demo

# Beyond Python the suite needs OpenSSH's sshd (a test hosts the simulated CLI behind it), openssl
# (tests/adapters/ca), Pebble (a real ACME server) and Knot (an authoritative DNS server taking
# RFC 2136 updates, which Pebble resolves DNS-01 through) for the ACME CA's tests, systemd's
# systemd-analyze (the service unit is verified), and Cisco's schemas (the fidelity tests; never
# part of this repository).
SCHEMAS := $(or $(CUCM_SCHEMA_DIR),$(abspath $(CURDIR)/../shared/cisco-schemas))
APT := DEBIAN_FRONTEND=noninteractive apt-get -qq -o=Dpkg::Use-Pty=0

test: test-prereqs $(STAMP) $(CLIENTS_STAMP)
	CUCM_SCHEMA_DIR="$(SCHEMAS)" CUCM_CLIENTS_PYTHON="$(abspath $(CLIENTS_VENV))/bin/python" $(BIN)/python -m pytest -n 2 --dist loadgroup --durations=15

# As root with apt-get, missing packages are installed; otherwise make stops before any test, with
# one line saying what to install. A missing test prerequisite is never a skipped test.
test-prereqs:
	@need=""; \
	command -v sshd >/dev/null || [ -x /usr/sbin/sshd ] || need=" openssh-server"; \
	command -v openssl >/dev/null || need="$$need openssl"; \
	command -v pebble >/dev/null || need="$$need pebble"; \
	command -v knotd >/dev/null || [ -x /usr/sbin/knotd ] || need="$$need knot"; \
	command -v systemd-analyze >/dev/null || need="$$need systemd"; \
	if [ -n "$$need" ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "make test: installing$$need (apt-get)"; \
		log=$$( { $(APT) update && $(APT) install -y --no-install-recommends $$need; } 2>&1 ) || { \
			echo "$$log" >&2; exit 1; }; \
	elif [ -n "$$need" ]; then \
		echo "make test: the tests need$$need: install it (sudo apt-get install$$need), then run make test again" >&2; \
		exit 1; \
	fi; \
	[ -f "$(SCHEMAS)/serviceability/RISService70.wsdl" ] || { \
		echo "make test: Cisco's schemas are not in $(SCHEMAS): set CUCM_SCHEMA_DIR to the folder holding axl-14.0/, axl-15.0/ and serviceability/" >&2; \
		exit 1; }

bench: $(STAMP)
	$(BIN)/python -m benchmarks

soak: $(STAMP)
	CUCM_RENEW_SOAK=1 $(BIN)/python -m pytest -m soak

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy app engine workflows adapters

clean:
	rm -rf $(VENV) $(CLIENTS_VENV) .pytest_cache .mypy_cache .ruff_cache
