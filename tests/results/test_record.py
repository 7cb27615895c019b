import json
import math
from pathlib import Path

import pytest

from results.record import FORMAT, Record, RecordError, from_dict, from_json, scenario_ref

FIXTURES = Path(__file__).parent / "fixtures"


def test_roundtrip_keeps_every_field():
    rec = Record(kind="measured", name="copy.memcpy", params={"size_bytes": 4096},
                 samples={"gbytes_per_s": [1.0, 2.0]}, summary={"median_gbytes_per_s": 1.5},
                 provenance={"host": "x"})
    back = from_json(rec.to_json())
    assert back == rec
    assert back.format == FORMAT


def test_non_finite_numbers_are_stored_as_null():
    rec = Record(kind="measured", name="x", summary={"cv": float("nan"), "max_gbytes_per_s": math.inf})
    doc = json.loads(rec.to_json())
    assert doc["summary"] == {"cv": None, "max_gbytes_per_s": None}


@pytest.mark.parametrize("fixture", sorted(p.name for p in FIXTURES.glob("record-v*.json")))
def test_every_old_format_fixture_loads(fixture):
    rec = from_json((FIXTURES / fixture).read_text())
    assert rec.format == FORMAT
    assert rec.kind in ("measured", "modelled")
    assert rec.name


def test_v0_fields_are_renamed():
    rec = from_json((FIXTURES / "record-v0.json").read_text())
    assert rec.kind == "measured"
    assert rec.samples == {"gbytes_per_s": [0.011, 0.012]}


@pytest.mark.parametrize("doc, words", [
    ({"format": "rdmarig.record/9", "kind": "measured", "name": "x"}, "unknown record format"),
    ({"format": FORMAT, "kind": "guessed", "name": "x"}, "kind"),
    ({"format": FORMAT, "name": "x"}, "missing"),
])
def test_bad_documents_are_refused(doc, words):
    with pytest.raises(RecordError, match=words):
        from_dict(doc)


def test_not_json_is_refused():
    with pytest.raises(RecordError, match="not JSON"):
        from_json("{nope")


def test_scenario_ref_hashes_the_file(tmp_path):
    f = tmp_path / "s.toml"
    f.write_text("a = 1\n")
    ref = scenario_ref("s", f)
    import hashlib
    assert ref["sha256"] == hashlib.sha256(b"a = 1\n").hexdigest()


@pytest.mark.parametrize("fixture,old_key,value", [
    ("record-v0.json", "size_bytes", 1048576),
    ("record-v1-copy-socket.json", "chunk_bytes", 65536),
    ("record-v1-verbs.json", "msg_bytes", 1048576),
])
def test_io_size_has_one_name_in_every_record_kind(fixture, old_key, value):
    rec = from_json((FIXTURES / fixture).read_text())
    assert rec.params["io_size_bytes"] == value
    assert old_key not in rec.params
