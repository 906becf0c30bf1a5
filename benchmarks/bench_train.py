"""Benchmark training on a generated 2-head task: step time split into waiting for data vs compute, and learning.

Speed (default): plans and preprocesses a generated task, trains fold 0 for `--epochs` short epochs at the planned
batch size and reports, from the epochs after the first (warm-up), seconds per iteration, the share spent
waiting for augmented batches, iterations per second and peak RSS over all processes.
Learning (`--learn`): trains fold 0 with the given budget and reports the validation AUC of both heads.
CPU variants (`--cpu_variants`): times training steps of the planned network (forward, backward, optimizer step on
the planned batch) in fp32, with bf16 autocast, in channels_last_3d memory format and compiled with torch.compile,
each as a ratio to fp32 measured in the same run.
Prints one JSON object. Example: python benchmarks/bench_train.py --learn --epochs 20 --batches 25
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from bench_preprocess import run_and_watch
from universalclassifier.network.i3d import network_for
from universalclassifier.paths import TRAINER, TaskPaths
from universalclassifier.planning.plan_and_preprocess import plan_and_preprocess
from universalclassifier.plans import Plans
from universalclassifier.synthetic import generate_task
from universalclassifier.training.recipes import recipe_for


def _per_iteration(log: dict, epochs: list[int], batches: int) -> float | None:
    return round(sum(log["train_seconds"][e] for e in epochs) / (batches * len(epochs)), 3) if epochs else None


def _step_seconds(plans: Plans, variant: str, steps: int) -> float:
    """Median seconds of one all-layer training step of the planned network on random inputs, in `variant`."""
    torch.manual_seed(0)
    network = network_for(plans, recipe_for(TRAINER).to_dict())
    x = torch.rand(plans.batch_size, plans.num_modalities + 1, *plans.image_size)
    if variant == "channels_last_3d":
        network = network.to(memory_format=torch.channels_last_3d)
        x = x.to(memory_format=torch.channels_last_3d)
    model = torch.compile(network) if variant == "compile" else network
    optimizer = torch.optim.AdamW(network.parameters(), lr=1e-4)
    times = []
    for step in range(steps + 2):  # two warm-up steps (compilation happens there)
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=variant == "bf16"):
            loss = sum(output.float().square().mean() for output in model(x))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step >= 2:
            times.append(time.perf_counter() - start)
    return float(sorted(times)[len(times) // 2])


def cpu_variants(plans: Plans, steps: int) -> dict:
    """Seconds per training step of each CPU variant and its ratio to fp32, measured one after the other."""
    seconds = {}
    for variant in ("fp32", "bf16", "channels_last_3d", "compile"):
        try:
            seconds[variant] = round(_step_seconds(plans, variant, steps), 4)
        except Exception as exc:  # a variant this machine cannot run (e.g. no compiler for torch.compile)
            seconds[variant] = f"failed: {type(exc).__name__}: {str(exc)[:200]}"
    return {
        "threads": torch.get_num_threads(), "steps": steps, "seconds_per_step": seconds,
        "ratio_to_fp32": {
            variant: round(value / seconds["fp32"], 3) for variant, value in seconds.items()
            if isinstance(value, float) and isinstance(seconds["fp32"], float)
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=40)
    parser.add_argument("--size", type=int, nargs=3, default=(24, 64, 64), metavar=("Z", "Y", "X"))
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batches", type=int, default=10, help="training batches per epoch")
    parser.add_argument("--val_batches", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--learn", action="store_true", help="report validation AUCs of the trained fold")
    parser.add_argument("--fp32", action="store_true", help="no mixed precision on CUDA")
    parser.add_argument("--cpu_variants", action="store_true", help="only time fp32, bf16, channels_last_3d, compile")
    parser.add_argument("--steps", type=int, default=8, help="timed training steps per CPU variant")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        generate_task(root, 1, "BenchTrain", num_cases=args.cases, with_roi=True, base_size=args.size, seed=7)
        plans = plan_and_preprocess(root, 1, num_workers=2, show_progress=False)
        if args.cpu_variants:
            variants = cpu_variants(plans, args.steps)
            print(json.dumps({"benchmark": "train_cpu_variants", "image_size": plans.image_size,
                              "batch_size": plans.batch_size, **variants}, indent=2))
            return
        command = [
            sys.executable, "-m", "universalclassifier.cli", "train", str(root), "3d_fullres", TRAINER, "1",
            "0", "--max_num_epochs", str(args.epochs), "--num_batches_per_epoch", str(args.batches),
            "--num_val_batches_per_epoch", str(args.val_batches), "--num_workers", str(args.workers), "--quiet",
        ] + (["--fp32"] if args.fp32 else [])
        wall, peak, code = run_and_watch(command)
        if code:
            raise SystemExit(f"training failed with exit code {code}")
        fold = TaskPaths.find(root, 1).trainer_folder() / "fold_0"
        metadata = json.loads((fold / "model_final_checkpoint.model.json").read_text())
        summary = json.loads((fold / "validation" / "summary.json").read_text())["heads"]
    log = metadata["log"]
    measured = range(1 if args.epochs > 1 else 0, args.epochs)
    train_seconds = sum(log["train_seconds"][e] for e in measured)
    waited = sum(log["data_wait_seconds"][e] for e in measured)
    iterations = args.batches * len(measured)
    recipe = recipe_for(TRAINER)
    frozen = [e for e in measured if recipe.backbone_frozen_at(e, args.epochs)]
    full = [e for e in measured if e not in frozen]
    result = {
        "benchmark": "train",
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "mixed_precision": metadata["mixed_precision"],
        "image_size": plans.image_size,
        "batch_size": plans.batch_size,
        "workers": args.workers,
        "seconds_per_iteration": round(train_seconds / iterations, 3),
        "data_wait_seconds_per_iteration": round(waited / iterations, 4),
        "compute_seconds_per_iteration": round((train_seconds - waited) / iterations, 3),
        "data_wait_fraction": round(waited / train_seconds, 4),
        "iterations_per_second": round(iterations / train_seconds, 3),
        # the default recipe trains the heads alone (no backward pass through the backbone) in the first epochs
        "seconds_per_iteration_heads_only": _per_iteration(log, frozen, args.batches),
        "seconds_per_iteration_all_layers": _per_iteration(log, full, args.batches),
        "measured_epochs_heads_only": len(frozen),
        "peak_rss_mb_all_processes": round(peak / 2**20, 1),
        "wall_seconds_training_run": round(wall, 1),
        "epochs": args.epochs,
        "batches_per_epoch": args.batches,
    }
    if args.learn:
        result["validation_auc"] = {head: metrics["auc"] for head, metrics in summary.items()}
        result["validation_balanced_accuracy"] = {
            head: metrics["balanced_accuracy"] for head, metrics in summary.items()
        }
        result["validation_cases"] = summary[next(iter(summary))]["num_cases"]
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
