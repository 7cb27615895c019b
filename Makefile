# Two commands on a fresh machine (Debian 12, root):
#   make run    set-up + the main job: capacity table and report of the built-in scenario smbdirect-2x200g
#   make test   set-up + the whole test suite (host tier, then the RDMA tier in the soft-RoCE guest)
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
APT_PACKAGES := qemu-system-x86 kmod iproute2 rdma-core ibverbs-providers ibverbs-utils libibverbs1 \
	python3-pyverbs perftest busybox-static mbw iperf3 ethtool git chromium openmpi-bin python3-mpi4py

.PHONY: run test test-host test-rdma deps venv bench clean readme-image

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
		$(BIN)/rdmarig guest run --timeout 1200 -- $(CURDIR)/$(BIN)/python -m pytest -m rdma -p no:cacheprovider tests/rdma; \
	fi

deps: $(VENV)/.apt-done
$(VENV)/.apt-done: Makefile | $(VENV)/bin/python
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	touch $@

venv: $(VENV)/.installed
$(VENV)/bin/python:
	$(PY) -m venv $(VENV)
$(VENV)/.installed: pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]' --config-settings editable_mode=compat  # a .pth, not an import finder: ~1 s less per interpreter start in the TCG guest
	touch $@

# Benchmarks print figures side by side (no pass/fail): model sweep speed, our RDMA loop vs
# ib_write_bw inside the soft-RoCE guest, SMB Direct READ vs raw RDMA WRITE and cpu-copy vs zero-copy
# there, copy probes vs mbw and iperf3 on this host.
bench: venv deps
	$(BIN)/python benchmarks/model_sweep.py
	$(BIN)/python benchmarks/plan_intervals.py
	$(BIN)/python benchmarks/store_open.py
	$(BIN)/python benchmarks/mpi_schedule.py
	$(BIN)/rdmarig guest prepare
	$(BIN)/rdmarig guest run -- $(CURDIR)/$(BIN)/python benchmarks/verbs_vs_perftest.py --rounds 5
	$(BIN)/rdmarig guest run -- $(CURDIR)/$(BIN)/python benchmarks/smbd_vs_verbs.py --rounds 3
	$(BIN)/python benchmarks/copy_vs_tools.py

clean:
	rm -rf $(VENV) out .pytest_cache
