"""`rdmarig plot throughput|bottlenecks|needs|vs-measured|efficiency SCENARIO`: one figure of a plan.

The scenario is evaluated as `rdmarig plan` evaluates it, stored, and the figure is drawn from the
stored record alone (results/plan_plots.py); `--record ID` draws a stored plan again without the
model. vs-measured and efficiency add the measured records of the store (copy.socket, smbd.*).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from rig.cli._common import StoreOption, output_file, write_output
from rig.cli.plan import SamplesOption
from rig.cli.report import PlatformOption, RecordOption, ScenarioArgument, measured_records, stored_plan
from scenarios.errors import InputError

app = typer.Typer(no_args_is_help=True, rich_markup_mode=None)

OutOption = typer.Option(None, "--out", help="File to write: .png, .svg or .pdf, in an existing directory "
                         "(default out/plot-KIND-SCENARIO.png; its out/ is created).")
IoSizeOption = typer.Option(None, "--io-size", help="The I/O size to show, one of the plan's (default: the largest).")


def _draw(kind: str, scenario: Optional[str], platform: Optional[str], samples: Optional[int], record: Optional[str],
          out: Optional[Path], store: Optional[Path], io_size: Optional[str] = None) -> None:
    from results import plan_plots, plots
    from scenarios.units import parse_size

    size = parse_size(io_size, "--io-size") if io_size is not None else None
    if out is not None:
        fmt = out.suffix.lstrip(".").lower()
        if fmt not in plots.PLOT_FORMATS:
            raise InputError(f"--out {out}: cannot tell the image format from {out.suffix or 'no suffix'!r}",
                             f"end the file name in .{', .'.join(plots.PLOT_FORMATS)}")
    rec = stored_plan(scenario, platform, None, samples, record, store,
                      ready=lambda: output_file(out) if out is not None else None)
    measured = measured_records(store) if kind in ("vs-measured", "efficiency") else []
    fig = plan_plots.draw(kind, rec, measured, size)
    if out is None:
        name = (rec.summary["report"].get("setting") or {}).get("scenario") or rec.name.split(":", 1)[-1]
        out = Path("out") / f"plot-{kind}-{name}.png"
        out.parent.mkdir(exist_ok=True)
    write_output(out, plots.render(fig, out.suffix.lstrip(".").lower()))
    typer.echo(f"wrote {out} from record {rec.id}")


# (kind, help, does it show one I/O size); the figures are results.plan_plots.KINDS
FIGURES = (
    ("throughput", "Payload GB/s vs I/O size per copy path, the links' and PCIe's ceilings, the 90% interval as a band.",
     False),
    ("bottlenecks", "Utilisation of every resource per copy path at one I/O size (whiskers: 90% interval).", True),
    ("needs", "Cores and DMA engines needed vs target throughput, per copy path at one I/O size.", True),
    ("vs-measured", "Model vs measured (the store's copy.socket and smbd.* records), with the identity line.", False),
    ("efficiency", "Gbit/s per busy core vs I/O size per copy path (measured records as open squares).", False),
)


def _command(kind: str, text: str, sized: bool):
    """The typer command drawing `kind` (with --io-size where the figure shows one I/O size)."""
    if sized:
        def command(scenario: Optional[str] = ScenarioArgument, platform: Optional[str] = PlatformOption,
                    io_size: Optional[str] = IoSizeOption, samples: Optional[int] = SamplesOption,
                    record: Optional[str] = RecordOption, out: Optional[Path] = OutOption,
                    store: Optional[Path] = StoreOption) -> None:
            _draw(kind, scenario, platform, samples, record, out, store, io_size)
    else:
        def command(scenario: Optional[str] = ScenarioArgument, platform: Optional[str] = PlatformOption,
                    samples: Optional[int] = SamplesOption, record: Optional[str] = RecordOption,
                    out: Optional[Path] = OutOption, store: Optional[Path] = StoreOption) -> None:
            _draw(kind, scenario, platform, samples, record, out, store)
    command.__doc__ = text
    return command


for _kind, _text, _sized in FIGURES:
    app.command(_kind)(_command(_kind, _text, _sized))
