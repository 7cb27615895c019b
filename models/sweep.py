"""Vectorised sweeps: one numpy evaluation for every point of a scenario's grid.

The grid is copy path x I/O size x every swept field (scenario [sweep] tables). Each point's
parameters are flat arrays (scenarios.schema.flat_params names), so one call evaluates them all.

    evaluate_scenario(scenario)                  -> Evaluation (arrays + the grid's axes)
    evaluate_with_overrides(scenario, {"cpu.copy_rate_dram": 8e9})   # calibration, what-ifs
    evaluate_grid(scenario, {"workload.io_size": sizes, "cpu.cores": [...]})  # any grid
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from models.bottleneck import Result, evaluate
from models.copy_paths import DemandTable, demand_table
from scenarios.errors import InputError
from scenarios.platform import NIC_RDMA
from scenarios.schema import (APPLICATIONS, MEDIUM_CODES, OPERATIONS, PLACEMENTS, PROTOCOL_CODES, Scenario,
                              check_grid_points, flat_params, with_params)


@dataclass
class Evaluation:
    scenario: Scenario
    table: DemandTable
    axes: dict[str, np.ndarray]         # per-point value of every swept field (incl. path index, io size)
    result: Result

    @property
    def points(self) -> int:
        return int(self.result.throughput.size)

    def path_name(self, i: int) -> str:
        return self.table.names[int(self.result.path_index.flat[i])]


def base_params(s: Scenario) -> dict[str, float]:
    p = dict(flat_params(s))
    p["link.protocol_code"] = float(PROTOCOL_CODES.index(s.link.protocol))
    p["link.medium_code"] = float(MEDIUM_CODES.index(s.link.medium))
    p["workload.operation_code"] = float(OPERATIONS.index(s.workload.operation))
    p["workload.application_code"] = float(APPLICATIONS.index(s.workload.application))
    p["workload.placement_code"] = float(PLACEMENTS.index(s.workload.placement))
    p["nic.rdma_code"] = float(NIC_RDMA.index(s.platform.nic.rdma))
    return p


def _paths(s: Scenario) -> DemandTable:
    return demand_table(list(s.copy_paths), [e.apis for e in s.platform.dma])


def evaluate_grid(s: Scenario, grid: Mapping[str, Sequence[float]], paths: Sequence[int] | None = None) -> Evaluation:
    """Evaluate the outer product of path indices x every axis in `grid` (flat names)."""
    params = base_params(s)
    unknown = [k for k in grid if k not in params and k != "workload.io_size"]
    if unknown:
        raise InputError(f"{s.path}: cannot sweep {unknown[0]!r}", f"sweep one of {', '.join(sorted(params))[:300]}")
    path_axis = np.arange(len(s.copy_paths)) if paths is None else np.asarray(paths, dtype=int)
    names = ["path_index"] + list(grid)
    values = [path_axis] + [np.asarray(grid[k], dtype=float) for k in grid]
    check_grid_points(int(np.prod([len(v) for v in values])), s.path)
    mesh = np.meshgrid(*values, indexing="ij")
    axes = {k: m.ravel() for k, m in zip(names, mesh)}
    params.update(axes)
    table = _paths(s)
    return Evaluation(scenario=s, table=table, axes=axes, result=evaluate(params, table, _engine_names(s)))


def _engine_names(s: Scenario) -> tuple[str, ...]:
    return tuple(e.name for e in s.platform.dma)


def evaluate_scenario(s: Scenario) -> Evaluation:
    """Every point of the scenario's own sweep: paths x I/O sizes x [sweep] fields."""
    grid: dict[str, Sequence[float]] = {"workload.io_size": list(s.sweep.io_sizes)}
    grid.update({k: list(v) for k, v in s.sweep.fields})
    return evaluate_grid(s, grid)


def evaluate_with_overrides(s: Scenario, overrides: Mapping[str, float],
                            grid: Mapping[str, Sequence[float]] | None = None) -> Evaluation:
    """The scenario evaluated with some platform/workload parameters replaced.

    `overrides` maps flat names ("cpu.copy_rate_dram", "dma.dsa.rate", "link.count") to SI
    floats. Calibration calls this with fitted values; `grid` defaults to the scenario's sweep.
    """
    patched = with_params(s, overrides)
    return evaluate_scenario(patched) if grid is None else evaluate_grid(patched, grid)
