"""`rdmarig report`, `rdmarig plot ...` through the real CLI and a real SQLite store; the HTML report
opened in headless Chromium (Debian's `chromium`): a screenshot that is not blank, and the headings,
tables and images present in the page Chromium rendered."""

from __future__ import annotations

import html.parser
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from results.record import from_json
from results.store import Store

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "results" / "fixtures" / "plan-records.jsonl"
BUILTIN_SCENARIOS = ("smbdirect-2x200g", "smb-tcp-100g", "smb-tcp-loopback")
FIGURE_FILES = ("throughput", "bottlenecks", "needs", "efficiency")


@pytest.fixture
def fixture_store(tmp_path, monkeypatch) -> Path:
    """A store holding the fixture plan records and measured records (as the commands stored them)."""
    path = tmp_path / "r.sqlite"
    with Store(path) as st:
        st.insert_many([from_json(line) for line in FIXTURES.read_text().splitlines()])
    monkeypatch.setenv("RDMARIG_STORE", str(path))
    monkeypatch.chdir(tmp_path)
    return path


@pytest.fixture
def store(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "fresh.sqlite"
    monkeypatch.setenv("RDMARIG_STORE", str(path))
    monkeypatch.chdir(tmp_path)
    return path


# ---- headless Chromium --------------------------------------------------------------------------

def chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is missing in CI; `make test` installs it (Makefile APT_PACKAGES)")
        pytest.skip("chromium is not installed (Debian package chromium; `make deps` installs it)")
    return exe


def run_chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """Chromium headless as root allows it: no sandbox, no GPU, nothing fetched in the background, a
    fresh profile. (Scripts stay on: headless Chromium takes its screenshot and DOM through them;
    the report has none, which the DOM shows.)"""
    profile = tmp_path / f"chromium-profile-{len(list(tmp_path.glob('chromium-profile-*')))}"
    cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


class _Dom(html.parser.HTMLParser):
    """Headings, tables and images of a serialised DOM."""

    def __init__(self) -> None:
        super().__init__()
        self.headings: dict[str, list[str]] = {"h1": [], "h2": [], "h3": []}
        self.ids: list[str] = []
        self.images: list[str] = []
        self.tables = 0
        self.scripts = 0
        self.text: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in self.headings:
            self._in = tag
            self.headings[tag].append("")
            if "id" in a:
                self.ids.append(a["id"])
        elif tag == "img":
            self.images.append(a.get("src", ""))
        elif tag == "table":
            self.tables += 1
        elif tag == "script":
            self.scripts += 1

    def handle_endtag(self, tag):
        if tag == self._in:
            self._in = None

    def handle_data(self, data):
        self.text.append(data)
        if self._in:
            self.headings[self._in][-1] += data


def test_report_renders_in_chromium(run_cli, fixture_store, tmp_path):
    out = tmp_path / "rep"
    res = run_cli("report", "--record", "fixture-plan-smbdirect", "--out", str(out))
    assert res.code == 0, res.err
    page = out / "report-smbdirect-2x200g.html"
    url = page.resolve().as_uri()
    shot = tmp_path / "shot.png"
    p = run_chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,2200", url)
    assert p.returncode == 0 and shot.exists(), p.stderr[-2000:]
    from matplotlib.image import imread
    pixels = imread(shot)[..., :3]
    assert pixels.shape[:2] == (2200, 1280)
    assert pixels.std() > 0.05                                        # not blank
    # the page itself is black on white and grey: saturated pixels come from the drawn figures
    saturation = pixels.max(axis=2) - pixels.min(axis=2)
    assert int((saturation > 0.35).sum()) > 5000
    p = run_chromium(tmp_path, "--dump-dom", url)
    assert p.returncode == 0, p.stderr[-2000:]
    dom = _Dom()
    dom.feed(p.stdout)
    assert dom.headings["h1"] and dom.headings["h1"][0].startswith("Capacity plan: smbdirect-2x200g on xeon-8470-cx7")
    assert dom.ids == ["verdict", "fleet", "figures", "capacity", "what-it-takes", "setting", "sources", "notes"]
    assert dom.tables >= 4 and dom.scripts == 0
    assert len(dom.images) == 5 and all(src.startswith("data:image/png;base64,") for src in dom.images)
    text = " ".join(dom.text)
    assert "cpu-copy: the 4 serving cores bind at" in text and "in servers like this one" in text
    assert "90% interval [GB/s]" in text and "binds in samples" in text
    assert not re.search(r"(src|href)=\"https?:", p.stdout)


def test_report_files_and_a_rebuild_from_the_store_is_the_same_report(run_cli, store, tmp_path):
    first, again = tmp_path / "a", tmp_path / "b"
    res = run_cli("report", "smbdirect-2x200g", "--out", str(first), "--samples", "200")
    assert res.code == 0, res.err
    record_id = re.search(r"from record ([0-9a-f]{32})", res.out).group(1)
    names = sorted(p.name for p in first.iterdir())
    assert names == sorted([f"{k}.{e}" for k in FIGURE_FILES for e in ("png", "svg")]
                           + ["report-smbdirect-2x200g.html", "plan-smbdirect-2x200g.csv",
                              "plan-smbdirect-2x200g-target.csv", "sources.csv"])
    assert "no vs-measured figure: no stored measured record matches" in res.err
    res = run_cli("report", "--record", record_id[:10], "--out", str(again))
    assert res.code == 0, res.err
    for name in names:
        assert (first / name).read_bytes() == (again / name).read_bytes(), name
    # without a target the report asks what it takes to reach the most the links carry
    assert "what it takes to reach 46.3 GB/s" in (first / "report-smbdirect-2x200g.html").read_text()


@pytest.mark.parametrize("scenario", BUILTIN_SCENARIOS)
def test_report_of_every_builtin_scenario(run_cli, store, tmp_path, scenario):
    res = run_cli("report", scenario, "--out", str(tmp_path / "o"))
    assert res.code == 0, res.err
    text = (tmp_path / "o" / f"report-{scenario}.html").read_text()
    from scenarios.schema import load_scenario
    s = load_scenario(scenario)
    verdict = text.split('<ul class="verdict">')[1].split("</ul>")[0]
    assert verdict.count("<li>") == len(s.copy_paths)
    # the "what it takes" figure needs a target: the links' most, which a loopback medium has not
    assert text.count("data:image/png;base64,") == (3 if s.link.medium == "loopback" else 4)


def test_report_with_target_platform_and_fleet(run_cli, store, tmp_path):
    res = run_cli("report", "smbdirect-2x200g", "--target", "33GB/s", "--platform", "epyc-9654-cx7",
                  "--fleet", "500GB/s", "--samples", "100", "--out", str(tmp_path / "o"))
    assert res.code == 0, res.err
    text = (tmp_path / "o" / "report-smbdirect-2x200g.html").read_text()
    assert "smbdirect-2x200g on epyc-9654-cx7" in text and "what it takes to reach 33.0 GB/s" in text
    assert "500 GB/s of SMB2 READ payload takes" in text and "100 draws" in text


@pytest.mark.parametrize("kind", ["throughput", "bottlenecks", "needs", "vs-measured", "efficiency"])
def test_plot_commands_draw_from_the_stored_record(run_cli, fixture_store, tmp_path, kind):
    out = tmp_path / f"{kind}.svg"
    res = run_cli("plot", kind, "--record", "fixture-plan-smbdirect", "--out", str(out))
    assert res.code == 0, res.err
    assert out.read_bytes().startswith(b"<?xml") and "from record fixture-plan-smbdirect-2x200g" in res.out


def test_plot_evaluates_and_stores_a_scenario(run_cli, store, tmp_path):
    res = run_cli("plot", "bottlenecks", "smb-tcp-100g", "--io-size", "1MiB", "--samples", "100")
    assert res.code == 0, res.err
    out = tmp_path / "out" / "plot-bottlenecks-smb-tcp-100g.png"       # the default: out/ is created
    assert out.read_bytes().startswith(b"\x89PNG")
    with Store(store) as st:
        (rec,) = st.query(kind="modelled")
    assert rec.summary["report"]["intervals"]["samples"] == 100


# ---- bad input: one row per input, exit code and a fragment of the one-line message -------------

S = "smbdirect-2x200g"
BAD = [
    (["report", "--out", "{tmp}/o"], "no scenario given; name one"),
    (["report", "no-such", "--out", "{tmp}/o"], "unknown scenario 'no-such'"),
    (["report", S, "--target", "fast", "--out", "{tmp}/o"], "--target: cannot read 'fast' as a rate"),
    (["report", S, "--target", "100TB/s", "--out", "{tmp}/o"], "between 1MB/s and 10TB/s"),
    (["report", S, "--fleet", "0.5GB/s", "--out", "{tmp}/o"], "--fleet 0.5GB/s is outside 1GB/s..1000TB/s"),
    (["report", S, "--fleet", "lots", "--out", "{tmp}/o"], "--fleet: cannot read 'lots' as a rate"),
    (["report", S, "--samples", "-1", "--out", "{tmp}/o"], "--samples -1 is outside 0..100,000"),
    (["report", S, "--samples", "100001", "--out", "{tmp}/o"], "--samples 100001 is outside 0..100,000"),
    (["report", S, "--samples", "many", "--out", "{tmp}/o"], "Invalid value for '--samples'"),
    (["report", S, "--platform", "nope", "--out", "{tmp}/o"], "unknown platform 'nope'"),
    (["report", S, "--out", "{tmp}/a-file"], "cannot create the directory (File exists)"),
    (["report", S, "--out", "{tmp}/no/such/dir"], "the parent directory {tmp}/no/such does not exist"),
    (["report", "--record", "ffffffff", "--out", "{tmp}/o"], "no record with id 'ffffffff'"),
    (["report", "--record", "", "--out", "{tmp}/o"], "--record is empty"),
    (["report", S, "--record", "fixture-plan", "--out", "{tmp}/o"], "a scenario cannot change it"),
    (["report", "--record", "fixture-plan-smb", "--target", "40GB/s", "--out", "{tmp}/o"], "--target cannot change it"),
    (["report", "--record", "fixture-plan", "--out", "{tmp}/o"], "id prefix 'fixture-plan' matches 2 records"),
    (["report", "--record", "fixture-smbd-0", "--out", "{tmp}/o"], "record fixture-smbd-0 holds no plan report"),
    (["plot", "throughput"], "no scenario given"),
    (["plot", "pie", S], "No such command 'pie'"),
    (["plot", "bottlenecks", S, "--io-size", "3MiB"], "--io-size 3MiB: the plan has no point of that size"),
    (["plot", "needs", S, "--io-size", "big"], "--io-size: cannot read 'big' as a size"),
    (["plot", "throughput", S, "--out", "{tmp}/x.gif"], "cannot tell the image format from '.gif'"),
    (["plot", "throughput", S, "--out", "{tmp}/no/dir/x.png"], "the directory {tmp}/no/dir does not exist"),
    (["plot", "throughput", S, "--out", "{tmp}/a-dir.png"], "is a directory"),
    (["plot", "vs-measured", "smb-tcp-100g"], "no stored measured record matches a copy path and I/O size"),
    (["plot", "efficiency", "--record", "fixture-socket-splice"], "holds no plan report"),
    (["plan", S, "--samples", "-5"], "--samples -5 is outside 0..100,000"),
    (["plan", S, "--samples", "1000000"], "give 0 (point figures only) up to 100000 draws"),
]


@pytest.mark.parametrize("argv, fragment", BAD, ids=[" ".join(r[0])[:60] for r in BAD])
def test_bad_report_and_plot_input_is_one_line(run_cli, fixture_store, tmp_path, argv, fragment):
    (tmp_path / "a-file").write_text("x")
    (tmp_path / "a-dir.png").mkdir()
    fill = lambda text: text.replace("{tmp}", str(tmp_path))          # noqa: E731
    before = _count(fixture_store)
    res = run_cli(*[fill(a) for a in argv])
    res.one_line_error(2, fill(fragment))
    assert _count(fixture_store) in (before, before + 1)              # nothing but the plan it evaluated
    assert not (tmp_path / "o").exists()


def _count(path: Path) -> int:
    with Store(path) as st:
        return st.count()


def test_the_sample_count_options_say_the_model_s_figures():
    from models.uncertainty import DEFAULT_SAMPLES, MAX_SAMPLES
    from rig.cli.plan import SAMPLES_RANGE, SamplesOption
    assert f"default {DEFAULT_SAMPLES}," in SamplesOption.help and SAMPLES_RANGE == (0, MAX_SAMPLES)
