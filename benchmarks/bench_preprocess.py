"""Benchmark plan & preprocess on a generated CT task and compare with the time to merely read its images.

Prints one JSON object: wall seconds, seconds per case, peak RSS summed over all processes, and the floor
(seconds to read the same images with SimpleITK in one process) with the ratio wall / floor.
Usage: python benchmarks/bench_preprocess.py [--cases 40] [--workers 2] [--size 55 128 128]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import SimpleITK as sitk

from universalclassifier.synthetic import generate_task

REPO = Path(__file__).resolve().parents[1]


def tree_rss(process: psutil.Process) -> int:
    """Resident memory of a process and all its descendants, in bytes."""
    total = 0
    for p in [process, *process.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def run_and_watch(command: list[str]) -> tuple[float, int, int]:
    """Run a command; return (wall seconds, peak summed RSS, exit code)."""
    start = time.perf_counter()
    process = psutil.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    while process.poll() is None:
        peak = max(peak, tree_rss(process))
        time.sleep(0.02)
    wall = time.perf_counter() - start
    if process.returncode:
        sys.stderr.write(process.stderr.read().decode())
    return wall, peak, process.returncode


def read_floor(image_folder: Path) -> float:
    """Seconds to read every image of a folder with SimpleITK into numpy arrays."""
    start = time.perf_counter()
    for path in sorted(image_folder.iterdir()):
        sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=40)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--size", type=int, nargs=3, default=(55, 128, 128), metavar=("Z", "Y", "X"))
    parser.add_argument("--spacing", type=float, nargs=3, default=(2.5, 0.8, 0.8), metavar=("Z", "Y", "X"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        task = generate_task(root, 1, "Bench", num_cases=args.cases, modalities=("CT",), with_roi=False,
                             base_size=args.size, spacing=args.spacing, size_jitter=0.1, seed=0)
        floor = read_floor(task / "imagesTr")
        command = [sys.executable, "-m", "universalclassifier.cli", "plan_and_preprocess", str(root), "-t", "1",
                   "-tf", str(args.workers), "--quiet"]
        wall, peak, code = run_and_watch(command)
        if code:
            raise SystemExit(f"plan & preprocess failed with exit code {code}")
        plans_file = next((root / "preprocessed").glob("*/UniversalClassifierPlansv1.0_plans_3D.json"))
        plans = json.loads(plans_file.read_text())
    print(json.dumps({
        "benchmark": "plan_and_preprocess",
        "cases": args.cases,
        "workers": args.workers,
        "case_size": list(args.size),
        "image_size": plans["image_size"],
        "wall_seconds": round(wall, 2),
        "seconds_per_case": round(wall / args.cases, 3),
        "peak_rss_mb_all_processes": round(peak / 2**20, 1),
        "floor_read_seconds": round(floor, 2),
        "ratio_wall_to_floor": round(wall / floor, 2),
        "cpu_count": psutil.cpu_count(),
    }, indent=2))


if __name__ == "__main__":
    main()
