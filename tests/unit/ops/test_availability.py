"""The seed's availability model against figures worked out by hand.

Hand arithmetic, shared by the tests below (seed inputs):
  1 - a        = 1 - 0.999118607            = 0.000881393
  (1 - a)^2    = 881393^2 * 1e-18 = 776,853,620,449e-18 = 7.76853620449e-7
  (1 - a)^4    = (7.76853620449e-7)^2                    = 6.0350155e-13
  MTBF         = 8640 h * 3600 s/h                       = 31,104,000 s
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

import pytest

from mailfilter.ops import availability as av
from mailfilter.ops import availability_report as avr
from mailfilter.ops import probe_report

if TYPE_CHECKING:
    from pathlib import Path

Q2 = 7.76853620449e-7
MTBF_S = 31_104_000


def seed() -> dict[str, av.LayerResult]:
    """The packaged seed cluster, evaluated, by layer name."""
    return {r.layer.name: r for r in map(av.evaluate_layer, av.load())}


def test_failure_terms_per_redundancy() -> None:
    """k and c follow the seed: pair (2,1), all-active (n,1), pairs (2,n(n-1)/2)."""
    assert (2, 1) == av.failure_terms("active-passive", 2)
    assert (4, 1) == av.failure_terms("all-active", 4)
    # 6 nodes: 6*5/2 = 15 double failures.
    assert (2, 15) == av.failure_terms("active-passive-pairs", 6)


def test_unknown_redundancy_is_refused() -> None:
    """A redundancy the model does not know is an error, not a guess."""
    with pytest.raises(av.ModelError, match="redundancy"):
        av.failure_terms("n+1", 3)


def test_directors_layer() -> None:
    """Directors: F_d=(1-a)^2, F_f=2*4.351/MTBF, D=1-(F_d+F_f)."""
    r = seed()["directors"]
    # F_d = 7.76853620449e-7
    assert Q2 == pytest.approx(r.f_d, rel=1e-9)
    # F_f = 2 * 4.351 / 31,104,000 = 8.702 / 31,104,000 = 2.79771090535e-7
    assert 2.79771090535e-7 == pytest.approx(r.f_f, rel=1e-9)
    # D = 1 - 1.056624710984e-6 = 0.999998943375289
    assert 0.999998943375289 == pytest.approx(r.availability, abs=1e-13)


def test_real_servers_layer() -> None:
    """Real servers, all active: F_d=(1-a)^4, F_f=0.762/MTBF (no factor n)."""
    r = seed()["real_servers"]
    # F_d = 6.0350155e-13
    assert 6.0350155e-13 == pytest.approx(r.f_d, rel=1e-6)
    # F_f = 0.762 / 31,104,000 = 2.44984567901e-8
    assert 2.44984567901e-8 == pytest.approx(r.f_f, rel=1e-9)
    # D = 1 - (2.44984567901e-8 + 6.035e-13) = 0.99999997550094
    assert 0.99999997550094 == pytest.approx(r.availability, abs=1e-13)


def test_storage_layer() -> None:
    """Storage, 6 nodes in pairs: F_d=15(1-a)^2, F_f=6*137.162/MTBF."""
    r = seed()["storage"]
    # F_d = 15 * 7.76853620449e-7 = 1.165280430674e-5
    assert 1.165280430674e-5 == pytest.approx(r.f_d, rel=1e-9)
    # F_f = 6 * 137.162 / 31,104,000 = 822.972 / 31,104,000 = 2.64587191358e-5
    assert 2.64587191358e-5 == pytest.approx(r.f_f, rel=1e-9)
    # D = 1 - 3.81115234425e-5 = 0.9999618884765575
    assert 0.9999618884765575 == pytest.approx(r.availability, abs=1e-13)


def test_seed_total_reproduces_the_thesis() -> None:
    """The product of the layers is the seed's 99.99608 %, 20 min 36 s/year."""
    total = av.total_availability(list(seed().values()))
    # sum of F = 1.056624711e-6 + 2.449906e-8 + 3.811152344e-5
    #          = 3.919264725e-5; the product adds cross terms of ~4e-11.
    assert 0.99996080739 == pytest.approx(total, abs=1e-11)
    assert "99.99608" == f"{total * 100:.5f}"
    # 3.9192606e-5 * 365 * 86400 s = 1235.98 s = 20 min 36 s
    assert 1235.98 == pytest.approx(av.downtime_per_year(total), abs=0.01)
    assert "20 min 36 s" == av.format_duration(av.downtime_per_year(total))


def test_storage_dominates() -> None:
    """As the seed says, the storage failover is the largest single term."""
    results = seed()
    terms = {
        (n, t): getattr(r, t)
        for n, r in results.items()
        for t in ("f_d", "f_f")
    }
    assert ("storage", "f_f") == max(terms, key=lambda k: terms[k])


def test_format_duration_ranges() -> None:
    """Durations read naturally from fractions of a second to hours."""
    assert "0.77 s" == av.format_duration(0.7726)
    assert "33.3 s" == av.format_duration(33.32)
    assert "2 h 05 min" == av.format_duration(7500)


def test_missing_key_names_file_and_key(tmp_path: Path) -> None:
    """A layer without mtfo_seconds is reported as file: layer[0].key."""
    f = tmp_path / "c.toml"
    f.write_text(
        "node_availability = 0.99\nmtbf_hours = 100\n"
        '[[layer]]\nname = "x"\nnodes = 2\n'
        'redundancy = "active-passive"\n'
    )
    with pytest.raises(
        av.ModelError, match=r"c\.toml: layer\[0\]\.mtfo_seconds: missing"
    ):
        av.load(f)


def test_per_layer_overrides(tmp_path: Path) -> None:
    """A layer's own a and MTBF replace the cluster defaults."""
    f = tmp_path / "c.toml"
    f.write_text(
        "node_availability = 0.99\nmtbf_hours = 100\n"
        '[[layer]]\nname = "x"\nnodes = 2\nredundancy = "active-passive"\n'
        "mtfo_seconds = 36\nnode_availability = 0.9\nmtbf_hours = 1\n"
    )
    (r,) = map(av.evaluate_layer, av.load(f))
    # F_d = (1 - 0.9)^2 = 0.01; F_f = 2 * 36 / 3600 = 0.02; D = 0.97
    assert 0.97 == pytest.approx(r.availability, abs=1e-12)


def test_with_mtfo_rejects_unknown_layer() -> None:
    """Feeding a measured MTFO to a layer that does not exist is an error."""
    with pytest.raises(av.ModelError, match="no layer 'webmail'"):
        av.with_mtfo(av.load(), "webmail", 1.0, "x.csv")


def _sample(seq: int, at: float, ok: bool) -> probe_report.Sample:
    return probe_report.Sample(
        seq,
        f"t.{seq}",
        at,
        ok,
        "250 ok" if ok else "refused",
        0.01,
        0.2 if ok else None,
    )


def test_main_takes_mtfo_from_probe_csv(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--mtfo-from/--layer replace the layer's MTFO by the CSV's mean outage."""
    # Outages 10.0 -> 12.0 (2 s) and 20.0 -> 21.0 (1 s): MTFO = 1.5 s.
    samples = [
        _sample(i, at, ok)
        for i, (at, ok) in enumerate(
            [
                (9, True),
                (10, False),
                (11, False),
                (12, True),
                (20, False),
                (21, True),
            ]
        )
    ]
    csv_path = tmp_path / "probe.csv"
    with csv_path.open("w", newline="") as f:
        probe_report.write_csv(samples, f)
    rc = avr.main(
        ["--mtfo-from", str(csv_path), "--layer", "real_servers", "--json"]
    )
    doc = json.loads(capsys.readouterr().out)
    layer = {ly["name"]: ly for ly in doc["layers"]}["real_servers"]
    assert 0 == rc
    assert 1.5 == pytest.approx(layer["mtfo_seconds"])
    assert str(csv_path) == layer["mtfo_source"]
    # F_f = 1.5 / 31,104,000 = 4.8225309e-8
    assert 4.8225309e-8 == pytest.approx(layer["f_f"], rel=1e-7)


def test_main_csv_without_outage_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A probe CSV with no finished outage gives exit 2 and says why."""
    csv_path = tmp_path / "probe.csv"
    with csv_path.open("w", newline="") as f:
        probe_report.write_csv([_sample(0, 1.0, True)], f)
    assert 2 == avr.main(["--mtfo-from", str(csv_path), "--layer", "storage"])
    assert "no complete outage" in capsys.readouterr().err


def test_main_table_shows_layers_and_total(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The default table has a row per seed layer and the seed's total."""
    assert 0 == avr.main([])
    out = capsys.readouterr().out
    for name in ("directors", "real_servers", "storage"):
        assert name in out
    assert "99.9960807%  20 min 36 s" in out.splitlines()[-1]


def test_main_needs_a_layer_per_csv() -> None:
    """--mtfo-from without --layer is a usage error."""
    with pytest.raises(SystemExit) as exc:
        avr.main(["--mtfo-from", "x.csv"])
    assert 2 == exc.value.code


def test_plot_writes_png(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--plot writes a PNG file when matplotlib is installed."""
    pytest.importorskip("matplotlib", reason="matplotlib is optional")
    out = tmp_path / "a.png"
    assert 0 == avr.main(["--plot", str(out)])
    assert b"\x89PNG" == out.read_bytes()[:4]


def test_plot_without_matplotlib(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Without matplotlib, --plot still prints the table, then exits 1."""
    # Error branch: a None entry in sys.modules makes the import fail.
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert 1 == avr.main(["--plot", str(tmp_path / "a.png")])
    captured = capsys.readouterr()
    assert "needs matplotlib" in captured.err
    assert "total" in captured.out


def test_main_takes_a_measured_mtfo_directly(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--mtfo LAYER=SECONDS: a campaign whose runs had no failed send."""
    assert 0 == avr.main(["--mtfo", "directors=0.12", "--json"])
    doc = json.loads(capsys.readouterr().out)
    layer = {ly["name"]: ly for ly in doc["layers"]}["directors"]
    assert 0.12 == pytest.approx(layer["mtfo_seconds"])
    assert "--mtfo" == layer["mtfo_source"]


@pytest.mark.parametrize("bad", ["directors", "=1", "directors=x", "d=-1"])
def test_main_refuses_a_bad_mtfo(
    bad: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A malformed --mtfo stops with exit 2 and names the value."""
    assert 2 == avr.main(["--mtfo", bad])
    assert "--mtfo" in capsys.readouterr().err
