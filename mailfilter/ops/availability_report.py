"""`mailfilter availability`: the model's figures as a table, JSON or a plot.

Matplotlib is optional, imported only for --plot.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from mailfilter.ops.availability import (
    YEAR_SECONDS,
    Layer,
    LayerResult,
    ModelError,
    downtime_per_year,
    evaluate_layer,
    format_duration,
    load,
    mtfo_from_csv,
    total_availability,
    with_mtfo,
)


def report(results: list[LayerResult]) -> dict[str, Any]:
    """The figures as a JSON-ready dict."""
    total = total_availability(results)
    return {
        "year_seconds": YEAR_SECONDS,
        "layers": [
            {
                **dataclasses.asdict(r.layer),
                "k": r.k,
                "c": r.c,
                "f_d": r.f_d,
                "f_f": r.f_f,
                "availability": r.availability,
                "downtime_seconds_per_year": downtime_per_year(r.availability),
            }
            for r in results
        ],
        "total": {
            "availability": total,
            "downtime_seconds_per_year": downtime_per_year(total),
        },
    }


def format_table(results: list[LayerResult]) -> str:
    """A readable table: one row per layer and the total."""
    head = (
        f"{'layer':<14}{'n':>3} {'redundancy':<21}{'MTFO s':>9} "
        f"{'F_d':>10} {'F_f':>10} {'availability':>13}  downtime/year"
    )
    rows = [head, "-" * len(head)]
    for r in results:
        ly = r.layer
        mark = "*" if ly.mtfo_source != "file" else " "
        rows.append(
            f"{ly.name:<14}{ly.nodes:>3} {ly.redundancy:<21}"
            f"{ly.mtfo_seconds:>8.3f}{mark} {r.f_d:>10.3e} {r.f_f:>10.3e} "
            f"{r.availability * 100:>12.7f}%  "
            f"{format_duration(downtime_per_year(r.availability))}"
        )
    total = total_availability(results)
    rows.append("-" * len(head))
    rows.append(
        f"{'total':<69}{total * 100:>12.7f}%  "
        f"{format_duration(downtime_per_year(total))}"
    )
    rows += [
        f"* {r.layer.name}: MTFO measured, from {r.layer.mtfo_source}"
        for r in results
        if r.layer.mtfo_source != "file"
    ]
    return "\n".join(rows)


def plot(layers: list[Layer], out: Path) -> None:
    """Cluster availability as each layer's MTFO sweeps 0.1 s to 10^4 s."""
    import matplotlib as mpl  # optional: only for --plot

    mpl.use("Agg")  # files only: no display on a server
    import matplotlib.pyplot as plt

    sweep = [10 ** (e / 20) for e in range(-20, 81)]
    fig, ax = plt.subplots(figsize=(8, 5))
    for layer in layers:
        ys = [
            total_availability(
                [
                    evaluate_layer(ly)
                    for ly in with_mtfo(layers, layer.name, x, "")
                ]
            )
            * 100
            for x in sweep
        ]
        (line,) = ax.plot(sweep, ys, label=f"{layer.name} MTFO varies")
        here = total_availability([evaluate_layer(ly) for ly in layers]) * 100
        ax.plot([layer.mtfo_seconds], [here], "o", color=line.get_color())
    ax.set_xscale("log")
    ax.ticklabel_format(axis="y", useOffset=False)
    ax.set_xlabel("MTFO of the layer (s)")
    ax.set_ylabel("cluster availability (%)")
    ax.grid(visible=True, which="both", alpha=0.3)
    ax.legend()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def main(argv: list[str]) -> int:
    """`mailfilter availability [FILE] [--mtfo-from CSV --layer NAME]...`."""
    parser = argparse.ArgumentParser(
        prog="mailfilter availability",
        description="The seed's availability model for a layered cluster.",
    )
    parser.add_argument("file", nargs="?", type=Path, help="cluster TOML")
    parser.add_argument(
        "--mtfo-from",
        action="append",
        type=Path,
        default=[],
        metavar="CSV",
        help="probe CSV",
    )
    parser.add_argument(
        "--layer",
        action="append",
        default=[],
        help="layer whose MTFO the matching CSV replaces",
    )
    parser.add_argument(
        "--mtfo",
        action="append",
        default=[],
        metavar="LAYER=SECONDS",
        help="a layer's MTFO measured some other way (e.g. a failover "
        "campaign whose runs had no failed send)",
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--plot", type=Path, metavar="PNG")
    args = parser.parse_args(argv)
    if len(args.mtfo_from) != len(args.layer):
        parser.error("give one --layer for each --mtfo-from")
    try:
        layers = load(args.file)
        for csv_path, name in zip(args.mtfo_from, args.layer, strict=True):
            mtfo = mtfo_from_csv(csv_path)
            layers = with_mtfo(layers, name, mtfo, str(csv_path))
        for item in args.mtfo:
            name, seconds = _layer_seconds(item)
            layers = with_mtfo(layers, name, seconds, "--mtfo")
    except ModelError as exc:
        print(f"mailfilter availability: {exc}", file=sys.stderr)
        return 2
    results = [evaluate_layer(layer) for layer in layers]
    if args.json:
        print(json.dumps(report(results), indent=2))
    else:
        print(format_table(results))
    if args.plot is not None:
        try:
            plot(layers, args.plot)
        except ImportError:
            print(
                "mailfilter availability: --plot needs matplotlib "
                "(pip install matplotlib)",
                file=sys.stderr,
            )
            return 1
    return 0


def _layer_seconds(item: str) -> tuple[str, float]:
    """`LAYER=SECONDS` of --mtfo."""
    name, sep, value = item.partition("=")
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not sep or not name or not seconds >= 0:
        raise ModelError(f"--mtfo {item!r}: expected LAYER=SECONDS")
    return name, seconds
