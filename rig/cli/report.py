"""`rdmarig report SCENARIO --out DIR`: the capacity-planning report, one self-contained HTML file
(images inlined, no script, no network) with its figures as PNG and SVG and its tables as CSV.

The plan is evaluated as `rdmarig plan` evaluates it (with intervals), stored as a `plan` record,
and the report is built from that record alone (results/report.py): `--record ID` builds it again
from the store without running the model. Without a target the report asks what it takes to reach
the most the links carry.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional

import typer

from rig.cli._common import StoreOption, open_store, write_output
from rig.cli.plan import SamplesOption, check_samples
from scenarios.errors import InputError

if TYPE_CHECKING:
    from results.record import Record

DEFAULT_OUT = Path("out/report")
ScenarioArgument = typer.Argument(None, help="Built-in scenario name (rdmarig scenarios list) or a .toml path; "
                                  "leave out with --record.")
PlatformOption = typer.Option(None, "--platform", help="Platform name or .toml file; overrides the scenario's.")
RecordOption = typer.Option(None, "--record", help="Draw from this stored plan record (id or prefix) instead of "
                            "evaluating a scenario.")


def stored_plan(scenario: Optional[str], platform: Optional[str], target: Optional[str], samples: Optional[int],
                record: Optional[str], store: Optional[Path], links_target: bool = False,
                ready: Callable[[], object] = lambda: None) -> Record:
    """The plan record a figure or a report is drawn from: `record` read from the store, or the
    scenario evaluated (with intervals) and stored, then read back as the store holds it.
    `links_target`: without a target, ask what it takes to reach the most the links carry.
    `ready` runs once every input is checked, before the model or the store is touched."""
    from models import report as model_report
    from models.sweep import evaluate_scenario
    from results.plan_plots import report_of
    from results.record import from_json
    from rig.cli.plan import modelled_record
    from scenarios.schema import MAX_TABLE_ROWS, check_grid_points, load_scenario

    if record is not None:
        given = [o for o, v in (("a scenario", scenario), ("--platform", platform), ("--target", target),
                                ("--samples", samples)) if v is not None]
        if given:
            raise InputError(f"--record draws a stored plan as it was made; {given[0]} cannot change it",
                             "give a scenario (and its options) or --record ID, not both")
        if not record.strip():
            raise InputError("--record is empty", "give a record id or its first characters (`rdmarig results list`)")
        with open_store(store, write=False) as st:
            rec = st.get(record)
        report_of(rec)
        ready()
        return rec
    if scenario is None:
        raise InputError("no scenario given", "name one (`rdmarig scenarios list`) or a stored plan with --record ID")
    samples = check_samples(samples)
    target_rate = model_report.parse_target(target) if target is not None else None
    s = load_scenario(scenario, platform=platform)
    check_grid_points(s.sweep.points(len(s.copy_paths)), s.path, MAX_TABLE_ROWS)
    ready()
    ev = evaluate_scenario(s)
    target_rate = target_rate if target_rate is not None else s.target
    if target_rate is None and links_target:
        finite = ev.result.capacity[0][ev.result.capacity[0] < float("inf")]
        target_rate = float(finite.max()) if finite.size else None     # loopback: no link to aim at
    rec = modelled_record(s, model_report.plan_report(ev, target_rate, samples))
    with open_store(store) as st:
        st.insert(rec)
    return from_json(rec.to_json())          # as the store holds it: JSON, inf as null


def measured_records(store: Optional[Path]) -> list[Record]:
    """The measured records a model is compared with (copy.socket, smbd.*), none where there is no store."""
    from results.store import Store

    st = Store(store)
    if st.spool is None and not st.path.exists():
        return []
    with st:
        return [r for name in ("copy.socket", "smbd") for r in st.query(kind="measured", name=name)]


def parse_fleet(text: Optional[str]) -> float:
    from results.report import DEFAULT_FLEET_RATE, FLEET_RATE
    from scenarios.units import parse_rate

    if text is None:
        return DEFAULT_FLEET_RATE
    rate = parse_rate(text, "--fleet")
    problem = FLEET_RATE.problem(rate)
    if problem:
        raise InputError(f"--fleet {text} is {problem}", "give the aggregate rate of the fleet, like 1TB/s")
    return rate


def report(
    scenario: Optional[str] = ScenarioArgument,
    platform: Optional[str] = PlatformOption,
    target: Optional[str] = typer.Option(None, "--target", help="Rate to reach, 1MB/s..10TB/s, e.g. 46GB/s "
                                         "(default: the scenario's, else the most the links carry)."),
    fleet: Optional[str] = typer.Option(None, "--fleet", help="Aggregate rate the fleet line sizes servers for "
                                        "(default 1TB/s)."),
    samples: Optional[int] = SamplesOption,
    record: Optional[str] = RecordOption,
    out: Path = typer.Option(DEFAULT_OUT, "--out", help="Directory for the report (created if its parent exists; "
                             "the default out/report is created)."),
    store: Optional[Path] = StoreOption,
) -> None:
    """One self-contained HTML report of a scenario (plus PNG/SVG figures and CSV tables): verdict per
    copy path, capacity with 90% intervals, what it takes, a fleet line, figures, every source."""
    from results import report as html_report
    from rig.cli.plan import WIDE_NOTE, _out_dir, tables

    fleet_rate = parse_fleet(fleet)

    def make_out() -> None:
        if out == DEFAULT_OUT:
            out.mkdir(parents=True, exist_ok=True)
        _out_dir(out)

    rec = stored_plan(scenario, platform, target, samples, record, store, links_target=True, ready=make_out)
    plan = rec.summary["report"]
    shown = tables(plan, "compact")
    for t in shown:                         # the report has no --wide: its CSV files carry every column
        t.notes = [n for n in t.notes if n != WIDE_NOTE]
    doc = html_report.build(rec, shown, tables(plan, "machine"), measured_records(store), fleet_rate)
    name = (plan.get("setting") or {}).get("scenario") or rec.name.split(":", 1)[-1]
    page = out / f"report-{name}.html"
    write_output(page, doc.html)
    for file, data in doc.files.items():
        write_output(out / file, data)
    typer.echo(f"wrote {page} ({len(doc.figures)} figures, PNG and SVG, and CSV tables beside it) "
               f"from record {rec.id}")
    for kind, why in doc.left_out.items():
        typer.echo(f"rdmarig: note: no {kind} figure: {why}", err=True)
