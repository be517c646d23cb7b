# Two commands on a fresh machine (Debian 12, Python 3.11; no Docker needed):
#   make demo   venv + deps, then every suite against its local stack (started and stopped for you)
#   make test   venv + deps, ruff, and the whole pytest suite (unit + integration on real servers)
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STACK  := $(PY) app/stack.py

# Python caches bytecode for everything make runs. Our machines set PYTHONDONTWRITEBYTECODE=1, and then
# each of make test's ~180 Python processes compiled the harness from source and each pytest worker
# rewrote every test module again (~3 s of CPU per worker): on 2 cores that is time taken from the
# servers. The caches go to __pycache__ (ignored by git).
export PYTHONDONTWRITEBYTECODE :=
# Every process make starts carries this checkout's name in its environment, and so does everything those start:
# tests/leftover_processes.py finds by it whatever a run left running (make test fails on it).
export VHC_CHECKOUT := $(CURDIR)

.PHONY: demo demo-ha demo-cluster demo-compat demo-cache demo-docker docker-images redis-server test test-fast durations lint coverage bench venv clean

$(VENV)/.installed: app/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r app/requirements.txt
	touch $@

venv: $(VENV)/.installed

demo: venv demo-ha demo-cluster demo-cache demo-compat

# The HA stack (master, 2 replicas, 3 sentinels) as local processes; the master is SIGKILLed (timeline: results/ha.png).
demo-ha: venv
	$(STACK) run ha -- $(PY) app/ha_test.py --plot results/ha.png --json results/ha.json

# The cluster (3 primaries + 3 replicas) as local processes; the primary of slot 0 is SIGKILLed.
demo-cluster: venv
	$(STACK) run cluster -- $(PY) app/cluster_test.py --json results/cluster.json

# An HTTP response cache on the cluster (docs/cache.md): store checks, ring vs cluster, a primary SIGKILLed mid-traffic.
demo-cache: venv
	$(STACK) run cluster -- $(PY) app/cache_test.py --json results/cache.json

# Redis + Valkey side by side (docs/compat.md); needs redis-server (installed when root with apt).
demo-compat: venv redis-server
	$(STACK) run compat -- $(PY) app/test_runner.py --json-dir results

# Every suite against its compose stack (docker-compose up, wait, run, down -v): needs a Docker
# engine. Without an image registry the images are built locally first (docs/docker.md).
demo-docker: venv docker-images
	$(STACK) run ha --docker -- $(PY) app/ha_test.py --json results/docker-ha.json
	$(STACK) run cluster --docker -- sh -c '$(PY) app/cluster_test.py --json results/docker-cluster.json && \
	  $(PY) app/cache_test.py --json results/docker-cache.json'
	$(STACK) run compat --docker -- $(PY) app/test_runner.py --json-dir results/docker

# The compose files' images: pulled from a registry when one answers, else built offline (root).
docker-images: venv
	@docker info >/dev/null 2>&1 || { echo "no Docker engine answers: install docker.io and start dockerd" >&2; exit 2; }
	@if [ -z "$$VHC_DOCKER_REGISTRY_IMAGES" ]; then bash docker/build-offline-images.sh; fi

redis-server:
	@command -v redis-server >/dev/null || [ -n "$$REDIS_SERVER_BIN" ] || { \
	  if [ "$$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >/dev/null && \
	    { service redis-server stop >/dev/null 2>&1 || true; }; \
	  else echo "redis-server is needed: sudo apt-get install redis-server, or set REDIS_SERVER_BIN=/path/to/redis-server" >&2; exit 2; fi; }

lint: venv
	$(VENV)/bin/ruff check app tests cluster-init bench

# pytest exits 5 when it collected no test: that is a broken suite, not a pass (checked for each call).
pytest_code = $(PY) -m pytest -q $(1); code=$$?; \
	if [ $$code -eq 5 ]; then echo "pytest collected no tests: failing" >&2; code=1; fi
pytest_tier = $(call pytest_code,$(1)); exit $$code
# The server tiers start servers: after them, whether they passed or not, nothing of this checkout may be running.
server_tier = $(call pytest_code,$(1)); $(PY) tests/leftover_processes.py || code=1; exit $$code

# The server tiers wait on failovers as much as they compute, so they run on more workers than cores.
# Measured on 2 cores (the server tier, one working-copy run each): module by module, 5 workers 182.7 s
# and 6 workers 164.9 s; 7 workers 147.8 s, but the Docker HA block's reconnect check failed under that
# load (ours +215 ms against the probe). With the longest runs first (tests/durations.json),
# 6 workers 149.3 s. Tests that must not overlap (the Docker tier: fixed ports and names) share a unit.
TEST_WORKERS ?= 6
SERVER_TIER = -n $(TEST_WORKERS) -m "integration or docker" --ignore=tests/unit

# The fast tier first (a broken change fails in seconds), then the integration and Docker tiers.
# (tests/unit starts no server, and its conftest imports every module: not collected here, ~0.6 s a worker.)
test: test-fast
	$(call server_tier,$(SERVER_TIER))

# Re-measure how long each server test takes (tests/durations.json): make test hands out the longest
# first, so that short ones fill the end. Run it after adding or reshaping server tests (~3 min).
durations: venv
	VHC_RECORD_DURATIONS=tests/durations.json $(call server_tier,$(SERVER_TIER))

# The fast tier, for contributors: unit tests and checks of decision logic, no servers (seconds).
test-fast: venv lint
	$(call pytest_tier,-n 2 -m "not integration and not docker")

# N failovers of each kind on the local stacks: our numbers against an independent probe (docs/benchmark.md).
bench: venv
	$(PY) bench/failover_bench.py --json results/bench.json

# The coverage figure quoted in docs/progress.md: the whole suite, subprocesses included.
coverage: venv
	rm -f .coverage .coverage.*
	$(PY) -m coverage run -m pytest -q -p no:cacheprovider; code=$$?; \
	$(PY) -m coverage combine -q; $(PY) -m coverage report --sort=cover | tail -n 25; exit $$code

clean:
	$(PY) app/stack.py down 2>/dev/null || true
	rm -rf $(VENV) .stack results .pytest_cache
