"""Benchmark complaint-photo processing against the ImageMagick pipeline FixMyStreet uses.

Generates realistic 12 MP phone JPEGs (4000x3000, gradients, shapes and sensor noise, EXIF orientation,
GPS and camera tags) in a temporary directory, then in the same run and on the same files measures:

* throughput of ``backend.media.process`` in a process pool of ``--workers`` (default 2), and
* throughput of ``convert IN -auto-orient -resize '2048x2048>' -strip OUT``, ``--workers`` at a time;

rounds alternate between the two so that a busy machine slows both alike.  It also measures the peak
memory of ``process`` on one 48 MP photo (8000x6000) in a fresh interpreter, and the same for ``convert``.

    .venv/bin/python bench/bench_photos.py                  # markdown report on stdout
    .venv/bin/python bench/bench_photos.py --json           # the same figures as JSON on stdout
    .venv/bin/python bench/bench_photos.py --json out.json  # markdown on stdout, JSON to a file
    .venv/bin/python bench/bench_photos.py --count 24 --rounds 5 --magick-threads 1

The headline figures are also saved to bench/out/photos.json (``bench.common.save``).

Needs ImageMagick's ``convert`` (``apt-get install -y imagemagick``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "fixtures"))

from media_images import jpeg, make_exif, photo_like  # noqa: E402

from bench.common import Figure, machine, save, table  # noqa: E402

ORIENTATIONS = (1, 6, 3, 8)
MAGICK_ARGS = ("-auto-orient", "-resize", "2048x2048>", "-strip")

# VmHWM (this address space's peak RSS) rather than ru_maxrss, which Linux carries over from the
# parent across fork+exec: the benchmark parent holds the generated 48 MP picture in memory.
_MEMORY_PROBE_OURS = """
import sys, time
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
from backend.media.processing import process
data = open(sys.argv[1], "rb").read()
base = hwm()
started = time.perf_counter()
result = process(data)
seconds = time.perf_counter() - started
print(base, hwm(), seconds, result.display.width, result.display.height)
"""

_MEMORY_PROBE_MAGICK = """
import resource, subprocess, sys, time
started = time.perf_counter()
subprocess.run(sys.argv[1:], check=True)
seconds = time.perf_counter() - started
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, seconds)
"""


@dataclass
class PipelineResult:
    name: str
    photos: int
    round_seconds: list[float] = field(default_factory=list)
    round_cpu_seconds: list[float] = field(default_factory=list)
    output_bytes: int = 0

    @property
    def median_seconds(self) -> float:
        return statistics.median(self.round_seconds)

    @property
    def cpu_ms_per_photo(self) -> float:
        return 1000 * statistics.median(self.round_cpu_seconds) / self.photos

    @property
    def photos_per_second(self) -> float:
        return self.photos / self.median_seconds

    def as_dict(self) -> dict[str, object]:
        return {
            **asdict(self),
            "median_seconds": round(self.median_seconds, 3),
            "best_seconds": round(min(self.round_seconds), 3),
            "photos_per_second": round(self.photos_per_second, 3),
            "ms_per_photo_per_worker": round(1000 * self.median_seconds / self.photos, 1),
            "cpu_ms_per_photo": round(self.cpu_ms_per_photo, 1),
            "mean_output_kb": round(self.output_bytes / self.photos / 1024, 1),
        }


def generate(directory: Path, count: int, width: int, height: int) -> list[Path]:
    """Write ``count`` photo-like JPEGs of ``width`` x ``height`` with phone-style EXIF."""
    paths = []
    for i in range(count):
        exif = make_exif(
            orientation=ORIENTATIONS[i % len(ORIENTATIONS)],
            latitude=22.54 + i * 0.001,
            longitude=114.05 + i * 0.001,
            altitude=12.0,
        )
        path = directory / f"photo-{width}x{height}-{i:03d}.jpg"
        path.write_bytes(jpeg(photo_like(width, height, seed=i), exif=exif, quality=92))
        paths.append(path)
    return paths


def _ours(job: tuple[str, str]) -> tuple[int, float]:
    """Process one file as a worker would (read, process, write both renditions); return size and CPU s."""
    from backend.media.processing import process

    started = time.process_time()
    source, out_dir = job
    result = process(Path(source).read_bytes())
    stem = Path(out_dir) / Path(source).stem
    Path(f"{stem}.display.jpg").write_bytes(result.display.data)
    Path(f"{stem}.thumb.jpg").write_bytes(result.thumbnail.data)
    return len(result.display.data), time.process_time() - started


def _warm_worker(_: int) -> int:
    from backend.media.processing import process

    process(jpeg(photo_like(320, 240, seed=1)))
    return os.getpid()


def _magick(convert: str, env: dict[str, str]) -> Callable[[tuple[str, str]], tuple[int, float]]:
    def run(job: tuple[str, str]) -> tuple[int, float]:
        source, out_dir = job
        target = Path(out_dir) / f"{Path(source).stem}.magick.jpg"
        subprocess.run([convert, source, *MAGICK_ARGS, str(target)], check=True, env=env)
        return target.stat().st_size, 0.0  # CPU time is taken from RUSAGE_CHILDREN for the round

    return run


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _timed(
    executor: Executor,
    func: Callable[[tuple[str, str]], tuple[int, float]],
    jobs: Sequence[tuple[str, str]],
    result: PipelineResult,
) -> None:
    """Run one round and record its wall time, CPU time and output size in ``result``."""
    children_before = _children_cpu()
    started = time.perf_counter()
    outcomes = list(executor.map(func, jobs))
    result.round_seconds.append(time.perf_counter() - started)
    worker_cpu = sum(cpu for _, cpu in outcomes)
    result.round_cpu_seconds.append(worker_cpu or _children_cpu() - children_before)
    result.output_bytes = sum(size for size, _ in outcomes)


def find_convert() -> str:
    """Return the path of a real ImageMagick ``convert`` or exit with advice."""
    for candidate in ("/usr/bin/convert", shutil.which("convert")):
        if not candidate or not Path(candidate).exists():
            continue
        probe = subprocess.run([candidate, "-version"], capture_output=True, text=True, check=False)
        if probe.returncode == 0 and "ImageMagick" in probe.stdout:
            return candidate
    sys.exit("ImageMagick's convert was not found: apt-get install -y imagemagick")


def magick_version(convert: str) -> str:
    out = subprocess.run([convert, "-version"], capture_output=True, text=True, check=True).stdout
    return out.splitlines()[0].removeprefix("Version: ImageMagick ").strip()


def memory_ours(path: Path) -> dict[str, float]:
    """Peak RSS of ``process`` on ``path`` in a fresh interpreter (ru_maxrss, KiB on Linux)."""
    out = subprocess.run(
        [sys.executable, "-c", _MEMORY_PROBE_OURS, str(path)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout.split()
    base, peak, seconds = int(out[0]), int(out[1]), float(out[2])
    return {
        "baseline_mb": round(base / 1024, 1),
        "peak_rss_mb": round(peak / 1024, 1),
        "above_baseline_mb": round((peak - base) / 1024, 1),
        "seconds": round(seconds, 3),
    }


def memory_magick(convert: str, path: Path, out_dir: Path, env: dict[str, str]) -> dict[str, float]:
    """Peak RSS of one ``convert`` run on ``path`` (its own process)."""
    target = out_dir / "big.magick.jpg"
    out = subprocess.run(
        [sys.executable, "-c", _MEMORY_PROBE_MAGICK, convert, str(path), *MAGICK_ARGS, str(target)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stdout.split()
    return {"peak_rss_mb": round(int(out[0]) / 1024, 1), "seconds": round(float(out[1]), 3)}


def run(args: argparse.Namespace) -> dict[str, object]:
    convert = find_convert()
    env = dict(os.environ)
    if args.magick_threads:
        env["MAGICK_THREAD_LIMIT"] = str(args.magick_threads)
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-photos-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.perf_counter()
        photos = generate(work, args.count, 4000, 3000)
        big = None if args.skip_48mp else generate(work, 1, 8000, 6000)[0]
        generate_seconds = time.perf_counter() - t0
        out_ours, out_magick = work / "out-ours", work / "out-magick"
        out_ours.mkdir(exist_ok=True)
        out_magick.mkdir(exist_ok=True)
        ours = PipelineResult("gongping process() (Pillow: draft decode + bicubic)", len(photos))
        magick = PipelineResult(f"convert {' '.join(MAGICK_ARGS)}", len(photos))
        load_before = os.getloadavg()
        with ProcessPoolExecutor(args.workers) as pool, ThreadPoolExecutor(args.workers) as threads:
            list(pool.map(_warm_worker, range(args.workers)))  # long-lived workers, as under Celery
            magick_run = _magick(convert, env)
            magick_run((str(photos[0]), str(out_magick)))  # warm the page cache and the binary
            for _ in range(args.rounds):
                _timed(pool, _ours, [(str(p), str(out_ours)) for p in photos], ours)
                _timed(threads, magick_run, [(str(p), str(out_magick)) for p in photos], magick)
        load_after = os.getloadavg()
        report: dict[str, object] = {
            "machine": machine(),
            "photos": len(photos),
            "photo_size": "4000x3000",
            "mean_input_mb": round(sum(p.stat().st_size for p in photos) / len(photos) / 1e6, 2),
            "workers": args.workers,
            "rounds": args.rounds,
            "cpu_count": os.cpu_count(),
            "load_average_before_after": [round(load_before[0], 2), round(load_after[0], 2)],
            "generate_seconds": round(generate_seconds, 1),
            "imagemagick": magick_version(convert),
            "magick_thread_limit": args.magick_threads or "default",
            "ours": ours.as_dict(),
            "magick": magick.as_dict(),
            "speedup": round(magick.median_seconds / ours.median_seconds, 2),
            "cpu_speedup": round(magick.cpu_ms_per_photo / ours.cpu_ms_per_photo, 2),
        }
        if big is not None:
            report["memory_48mp"] = {
                "input_mb": round(big.stat().st_size / 1e6, 2),
                "ours": memory_ours(big),
                "magick": memory_magick(convert, big, out_magick, env),
            }
        return report
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def figures(report: dict[str, object]) -> list[Figure]:
    """The headline figures against their targets, in the shape of the other benchmarks."""
    speedup, cpu_speedup = report["speedup"], report["cpu_speedup"]
    assert isinstance(speedup, float) and isinstance(cpu_speedup, float)
    result = [
        Figure(
            "12 MP photos/s, ours vs convert (wall, 2 workers)", speedup, "×", 2.0, "≥ 2× convert", "higher"
        ),
        Figure("CPU per 12 MP photo, convert / ours", cpu_speedup, "×", 2.0, "≥ 2× convert", "higher"),
    ]
    memory = report.get("memory_48mp")
    if isinstance(memory, dict):
        result.append(
            Figure(
                "peak RSS, one 48 MP photo", memory["ours"]["peak_rss_mb"], "MB", 400.0, "≤ 400 MB", "lower"
            )
        )
    return result


def markdown(report: dict[str, object]) -> str:
    ours, magick = report["ours"], report["magick"]
    assert isinstance(ours, dict) and isinstance(magick, dict)
    lines = [
        table("Complaint photos: headline figures", figures(report)),
        "",
        f"Machine: {report['machine']}",
        "",
        f"### Complaint photos: {report['photos']} x {report['photo_size']} JPEG "
        f"(mean {report['mean_input_mb']} MB), {report['workers']} at a time, "
        f"median of {report['rounds']} rounds",
        "",
        "| pipeline | median wall s | best wall s | photos/s | wall ms/photo/worker | CPU ms/photo "
        "| mean output KB |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in (ours, magick):
        lines.append(
            f"| {row['name']} | {row['median_seconds']} | {row['best_seconds']} | {row['photos_per_second']} "
            f"| {row['ms_per_photo_per_worker']} | {row['cpu_ms_per_photo']} | {row['mean_output_kb']} |"
        )
    load = report["load_average_before_after"]
    assert isinstance(load, list)
    lines += [
        "",
        f"**Speed-up (ImageMagick wall time / ours): {report['speedup']}x** (target >= 2x); "
        f"CPU time per photo: {report['cpu_speedup']}x less.",
        "",
        f"ImageMagick {report['imagemagick']}, thread limit {report['magick_thread_limit']}; "
        f"{report['cpu_count']} CPUs, 1-min load average {load[0]} before, {load[1]} after.",
    ]
    memory = report.get("memory_48mp")
    if isinstance(memory, dict):
        mine, theirs = memory["ours"], memory["magick"]
        lines += [
            "",
            f"### One 48 MP photo (8000x6000 JPEG, {memory['input_mb']} MB), fresh process",
            "",
            "| pipeline | peak RSS MB | above baseline MB | seconds |",
            "| --- | ---: | ---: | ---: |",
            f"| ours | {mine['peak_rss_mb']} | {mine['above_baseline_mb']} "
            f"(baseline {mine['baseline_mb']}) | {mine['seconds']} |",
            f"| convert | {theirs['peak_rss_mb']} | - | {theirs['seconds']} |",
        ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=12, help="12 MP photos to generate (default 12)")
    parser.add_argument("--workers", type=int, default=2, help="parallel jobs for each pipeline (default 2)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating timed rounds (default 3)")
    parser.add_argument("--magick-threads", type=int, default=0, help="MAGICK_THREAD_LIMIT (default: unset)")
    parser.add_argument("--skip-48mp", action="store_true", help="skip the 48 MP memory measurement")
    parser.add_argument("--keep", metavar="DIR", help="generate into DIR and keep it")
    parser.add_argument("--json", nargs="?", const="-", default=None, help="emit JSON (to stdout, or a file)")
    args = parser.parse_args(argv)
    report = run(args)
    save("photos", figures(report), extra={"report": report})
    text = json.dumps(report, ensure_ascii=False, indent=2)
    if args.json == "-":
        print(text)
        return 0
    print(markdown(report))
    if args.json:
        Path(args.json).write_text(text, "utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
