"""The soft-RoCE guest: real RDMA (rdma_rxe) inside a qemu guest on hosts whose kernel has none.

prepare.py builds the boot image once (kernel subset + busybox initramfs, cached); run.py boots it
with the host's root filesystem shared read-only and the project directory read-write, sets up two
rxe devices on a veth pair inside, runs one command and brings its records back to the host store.
"""
