"""Kernel module bookkeeping from modules.dep: which .ko files, in which order, to insmod."""

from __future__ import annotations

import re
from pathlib import Path

_KO_SUFFIX = re.compile(r"\.ko(\.(xz|zst|gz))?$")


def module_name(path: str) -> str:
    """'kernel/drivers/virtio/virtio_pci.ko' -> 'virtio_pci' (the kernel treats - and _ alike)."""
    return _KO_SUFFIX.sub("", Path(path).name).replace("-", "_")


def parse_modules_dep(text: str) -> dict[str, tuple[str, list[str]]]:
    """modules.dep -> {name: (path, [dependency paths])}."""
    table: dict[str, tuple[str, list[str]]] = {}
    for line in text.splitlines():
        if ":" not in line:
            continue
        path, deps = line.split(":", 1)
        table[module_name(path)] = (path.strip(), deps.split())
    return table


def load_order(dep_table: dict[str, tuple[str, list[str]]], wanted: list[str]) -> list[str]:
    """Paths of `wanted` and everything they need, each after its dependencies, no repeats."""
    by_path = {path: name for name, (path, _) in dep_table.items()}
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        name = name.replace("-", "_")
        if name not in dep_table:
            raise KeyError(f"kernel module {name!r} is not in modules.dep")
        path, deps = dep_table[name]
        if path in order or name in visiting:
            return
        visiting.add(name)
        for dep in deps:
            visit(by_path.get(dep, module_name(dep)))
        order.append(path)

    for name in wanted:
        visit(name)
    return order
