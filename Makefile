# Two commands on a fresh machine (Debian 12, root):
#   make run    set-up + the main job: capacity table and report of the built-in scenario smbdirect-2x200g
#   make test   set-up + the whole test suite (host tier, then the RDMA tier in the soft-RoCE guest)
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# What the compiled RDMA loops (rig/rdma/_fastloop.c) build with: installed before the venv, so
# `pip install -e .` builds them. Without them (no root, no network) the install goes on and the
# Python loops run; rig/rdma/_fastloop.build-error.txt says why.
BUILD_PACKAGES := gcc libc6-dev libibverbs-dev
APT_PACKAGES := qemu-system-x86 kmod iproute2 rdma-core ibverbs-providers ibverbs-utils libibverbs1 \
	python3-pyverbs perftest busybox-static mbw iperf3 ethtool git chromium openmpi-bin python3-mpi4py \
	$(BUILD_PACKAGES)

.PHONY: run test test-host test-rdma deps build-deps venv bench clean readme-image

run: venv
	$(BIN)/rdmarig plan smbdirect-2x200g --out out/
	$(BIN)/rdmarig report smbdirect-2x200g --out out/report/

# The README's figure: the throughput plot of the default scenario, drawn from a plan record kept in
# its own store (the user's store is left alone). Commit the image after a change to the model.
README_IMAGE := docs/img/throughput-smbdirect-2x200g.png
readme-image: venv
	mkdir -p out docs/img
	$(BIN)/rdmarig plot throughput smbdirect-2x200g --store out/readme-image.sqlite --out $(README_IMAGE)

test: venv deps
	$(MAKE) test-host
	$(MAKE) test-rdma

test-host: venv
	$(BIN)/python -m pytest -m "not rdma" tests

# RDMA tier: directly where this kernel has an RDMA device, else inside the soft-RoCE guest.
test-rdma: venv deps
	@if [ -d /sys/class/infiniband ] && [ -n "$$(ls /sys/class/infiniband 2>/dev/null)" ]; then \
		$(BIN)/python -m pytest -m rdma tests/rdma; \
	else \
		$(BIN)/rdmarig guest prepare && \
		$(BIN)/rdmarig guest run --timeout 1800 -- $(CURDIR)/$(BIN)/python -m pytest -m rdma -p no:cacheprovider tests/rdma; \
	fi

deps: $(VENV)/.apt-done
$(VENV)/.apt-done: Makefile | $(VENV)/bin/python
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	touch $@

build-deps: $(VENV)/.build-deps
$(VENV)/.build-deps: | $(VENV)/bin/python
	@missing=""; for p in $(BUILD_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing build packages:$$missing"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null) || \
		echo "could not install$$missing: the compiled RDMA loops are not built, the Python loops run"; \
	fi
	touch $@

venv: $(VENV)/.installed
$(VENV)/bin/python:
	$(PY) -m venv $(VENV)
$(VENV)/.installed: pyproject.toml setup.py rig/rdma/_fastloop.c | $(VENV)/bin/python $(VENV)/.build-deps
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]' --config-settings editable_mode=compat  # a .pth, not an import finder: ~1 s less per interpreter start in the TCG guest
	@$(BIN)/python -c "from rig.rdma import native; ok, why = native.available(); print('compiled RDMA loops:', 'built' if ok else 'not built (' + why + '); the Python loops run')"
	touch $@

# Benchmarks print figures side by side (no pass/fail): model sweep speed, the CLI's start-up and
# the compiled RDMA loop's own cost per WR on this host; our RDMA loops vs perftest (bandwidth,
# message rate, CPU per GB, ping-pong latency), SMB Direct READ vs raw RDMA WRITE and cpu-copy vs
# zero-copy inside the soft-RoCE guest; copy probes vs mbw and iperf3 on this host.
bench: venv deps
	$(BIN)/python benchmarks/model_sweep.py
	$(BIN)/python benchmarks/plan_intervals.py
	$(BIN)/python benchmarks/store_open.py
	$(BIN)/python benchmarks/startup.py
	$(BIN)/python benchmarks/loop_cost.py
	$(BIN)/python benchmarks/mpi_schedule.py
	$(BIN)/rdmarig guest prepare
	$(BIN)/rdmarig guest run --timeout 3600 -- $(CURDIR)/$(BIN)/python benchmarks/verbs_vs_perftest.py --rounds 5
	$(BIN)/rdmarig guest run -- $(CURDIR)/$(BIN)/python benchmarks/smbd_vs_verbs.py --rounds 3
	$(BIN)/python benchmarks/copy_vs_tools.py

clean:
	rm -rf $(VENV) out .pytest_cache
