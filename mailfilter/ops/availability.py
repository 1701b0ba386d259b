"""The seed's cluster availability model: layers, formulas and inputs.

A layer is down through node failures with probability F_d = c·(1-a)^k and
during failovers with F_f = n·MTFO/MTBF (active/passive) or MTFO/MTBF
(all-active); its availability is D = 1 - (F_d + F_f), and the cluster's
is the product over its layers (docs/seed.md, "The availability model").

With the seed's inputs (mailfilter/data/seed-cluster.toml) the formulas as
written give 99.9960807 %, the seed's 99.99608 %. Its "about 20 min 36 s a
year" is 3.91926e-5 of a 365-day year (1236.0 s); a 365.25-day year gives
20 min 37 s and the 8640 h MTBF "year" 20 min 19 s, so downtime here is
per 365 days. The product and 1 - ΣF differ by 4e-11: the seed may have
used either.

Measured MTFO values come from a `mailfilter probe` CSV (probe.py owns
that format and the outage arithmetic). Matplotlib is optional, imported
only for --plot (availability_report.py).
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import math
import tomllib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

YEAR_SECONDS = 365 * 86400
REDUNDANCY = ("active-passive", "all-active", "active-passive-pairs")


class ModelError(ValueError):
    """A cluster description that the model cannot use (file: key: why)."""


@dataclass(frozen=True, slots=True)
class Layer:
    """One layer of the cluster, as the TOML file describes it."""

    name: str
    nodes: int
    redundancy: str
    mtfo_seconds: float
    node_availability: float
    mtbf_hours: float
    mtfo_source: str = "file"


@dataclass(frozen=True, slots=True)
class LayerResult:
    """The model's figures for one layer."""

    layer: Layer
    k: int
    c: int
    f_d: float
    f_f: float

    @property
    def availability(self) -> float:
        """D = 1 - (F_d + F_f)."""
        return 1.0 - (self.f_d + self.f_f)


def failure_terms(redundancy: str, nodes: int) -> tuple[int, int]:
    """(k, c): simultaneous failures that take a layer down, and how many."""
    if redundancy == "active-passive":
        return 2, 1
    if redundancy == "all-active":
        return nodes, 1
    if redundancy == "active-passive-pairs":
        # The seed counts any double failure among the n nodes as fatal,
        # not only the two nodes of one pair: a pessimistic bound.
        return 2, nodes * (nodes - 1) // 2
    raise ModelError(f"redundancy: {redundancy!r} is not one of {REDUNDANCY}")


def down_by_failures(a: float, k: int, c: int) -> float:
    """F_d = c·(1 - a)^k."""
    return c * (1.0 - a) ** k


def down_by_failover(layer: Layer) -> float:
    """F_f: the share of time spent failing over (MTFO and MTBF in s)."""
    ratio = layer.mtfo_seconds / (layer.mtbf_hours * 3600.0)
    if layer.redundancy == "all-active":
        return ratio
    # Every one of the n nodes fails once per MTBF and each failure
    # costs one takeover.
    return layer.nodes * ratio


def evaluate_layer(layer: Layer) -> LayerResult:
    """The model applied to one layer."""
    k, c = failure_terms(layer.redundancy, layer.nodes)
    f_d = down_by_failures(layer.node_availability, k, c)
    return LayerResult(layer, k, c, f_d, down_by_failover(layer))


def total_availability(results: list[LayerResult]) -> float:
    """The cluster is up only when every layer is: the product."""
    return math.prod(r.availability for r in results)


def downtime_per_year(availability: float) -> float:
    """Seconds of downtime in a 365-day year (see the module docstring)."""
    return (1.0 - availability) * YEAR_SECONDS


def format_duration(seconds: float) -> str:
    """'0.77 s', '33.3 s', '20 min 36 s', '5 h 03 min'."""
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


def parse_cluster(data: dict[str, Any], source: str) -> list[Layer]:
    """Layers from a parsed TOML document; errors name source and key."""

    def need(table: dict[str, Any], key: str, where: str) -> Any:
        if key not in table:
            raise ModelError(f"{source}: {where}{key}: missing")
        return table[key]

    a = float(need(data, "node_availability", ""))
    mtbf = float(need(data, "mtbf_hours", ""))
    layers = []
    for i, raw in enumerate(need(data, "layer", "")):
        where = f"layer[{i}]."
        layer = Layer(
            name=str(need(raw, "name", where)),
            nodes=int(need(raw, "nodes", where)),
            redundancy=str(need(raw, "redundancy", where)),
            mtfo_seconds=float(need(raw, "mtfo_seconds", where)),
            node_availability=float(raw.get("node_availability", a)),
            mtbf_hours=float(raw.get("mtbf_hours", mtbf)),
        )
        if layer.redundancy not in REDUNDANCY:
            raise ModelError(
                f"{source}: {where}redundancy: {layer.redundancy!r} is not"
                f" one of {', '.join(REDUNDANCY)}"
            )
        if not (0 < layer.node_availability <= 1 and layer.nodes >= 1):
            raise ModelError(f"{source}: {where}: need 0<a<=1 and nodes>=1")
        layers.append(layer)
    return layers


def load(path: Path | None = None) -> list[Layer]:
    """Read a cluster file, or the packaged seed cluster when path is None."""
    if path is None:
        ref = importlib.resources.files("mailfilter") / "data"
        ref = ref / "seed-cluster.toml"
        return parse_cluster(tomllib.loads(ref.read_text("utf-8")), "seed")
    try:
        data = tomllib.loads(path.read_text("utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ModelError(f"{path}: {exc}") from exc
    return parse_cluster(data, str(path))


def with_mtfo(
    layers: list[Layer], name: str, mtfo: float, source: str
) -> list[Layer]:
    """The same layers with one layer's MTFO replaced."""
    if name not in {layer.name for layer in layers}:
        known = ", ".join(layer.name for layer in layers)
        raise ModelError(f"--layer: no layer {name!r} (have {known})")
    return [
        dataclasses.replace(ly, mtfo_seconds=mtfo, mtfo_source=source)
        if ly.name == name
        else ly
        for ly in layers
    ]


def mtfo_from_csv(path: Path) -> float:
    """The mean failover time of the outages recorded in a probe CSV."""
    from mailfilter.ops import probe_report

    try:
        samples = probe_report.read_csv(path)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(f"{path}: {exc}") from exc
    mean = probe_report.mtfo(probe_report.compute_outages(samples))
    if mean is None:
        raise ModelError(f"{path}: no complete outage recorded, no MTFO")
    return mean
