"""The main job's table over seeds: mean, std and per-seed values of every figure, and the
paired differences between arms with the number of seeds in which each holds.

    python -m experiments.main_job_seeds --seeds 3
    python -m experiments.main_job_seeds --render experiments/results_main_job_seeds.json

Each seed is the README's main job (`configs/quickstart.yaml`, any `--set` passed through) in
its own process with `train.seed=K` and its own run folder (RUNS/seed_K; a rerun resumes or
reuses a finished one), export off. The synthetic data does not depend on the seed: all seeds
share one `data.data_dir`. What is reported is each run's RUN_DIR/main_job_table.json (the test
split). The raw figures go to results_main_job_seeds.json, and the Markdown is a pure function
of that file (`to_markdown`), so `--render` rewrites it byte for byte.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import time

import numpy as np

from experiments.common import cpu_model, git_commit
from keras_pose3d.evaluation import main_job_table

# The goals, checked on the means (and per seed where a goal says "every seed").
GOAL_SAP_NET_MM = 140.0
GOAL_ILLEGAL_PCT = 8.0
GOAL_TP_NET_GAIN_MM = 10.0


def cpu_flags() -> str:
    """The vector extensions that change TensorFlow's CPU kernels (AVX2 / AVX-512 / AMX)."""
    try:
        text = pathlib.Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown"
    flags = set(text.split("flags", 1)[1].split("\n", 1)[0].split()) if "flags" in text else set()
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")
    return " ".join(f for f in wanted if f in flags) or "none of avx2/avx512/amx"


def run_seed(seed: int, config: str, runs: pathlib.Path, overrides: list[str]) -> dict:
    """One main job in its own process; its table (main_job_table.json) and wall time."""
    run_dir = runs / f"seed_{seed}"
    table = run_dir / "main_job_table.json"
    command = [
        sys.executable,
        "-m",
        "keras_pose3d.train",
        "--config",
        config,
        "--set",
        f"train.seed={seed}",
        "--set",
        f"train.run_dir={run_dir}",
        "--set",
        "export.enabled=false",
        *[a for o in overrides for a in ("--set", o)],
    ]
    t0 = time.time()
    if not table.is_file():
        log = run_dir.with_suffix(".log")
        log.parent.mkdir(parents=True, exist_ok=True)
        print(f"seed {seed}: {' '.join(command[1:])} (log: {log})", flush=True)
        with open(log, "w") as out:
            code = subprocess.call(command, stdout=out, stderr=subprocess.STDOUT)
        if code != 0 or not table.is_file():
            raise RuntimeError(f"seed {seed}: the main job failed (exit {code}); see {log}")
    stored = json.loads(table.read_text())
    return {"seed": seed, "wall_s": round(time.time() - t0, 1), **stored}


def collect(args: argparse.Namespace) -> dict:
    commit = git_commit()  # at the start: other people may commit while the seeds run
    runs = [run_seed(s, args.config, pathlib.Path(args.runs), args.set) for s in args.seeds]
    return {
        "command": "python -m experiments.main_job_seeds " + " ".join(args.argv),
        "git_commit": commit,
        "config": args.config,
        "overrides": args.set,
        "cpu": cpu_model() or "unknown",
        "cpu_flags": cpu_flags(),
        "cores": os.cpu_count(),
        "runs": runs,
    }


# ----------------------------------------------------------------------------------------------
# The Markdown: a pure function of the stored JSON.
# ----------------------------------------------------------------------------------------------
def _stats(values: list[float]) -> str:
    v = np.asarray(values, np.float64)
    spread = f" ± {v.std(ddof=1):.1f}" if len(v) > 1 else ""
    return f"{v.mean():.1f}{spread}"


def _last_stage(rows: list[dict]) -> str:
    stages = [r["name"][len("after ") :] for r in rows if r["name"].startswith("after ")]
    return stages[-1]


def _is_filter_row(name: str) -> bool:
    return name.startswith("SAP-Net + ") and name != main_job_table.TP_NET_ROW


def filter_rows(stored: dict) -> list[str]:
    """The filter arm's row name in each seed: its filter is tuned per seed, so the name (which
    carries the tuned parameters) may differ from seed to seed."""
    return [
        next((r["name"] for r in run["rows"] if _is_filter_row(r["name"])), "")
        for run in stored["runs"]
    ]


def _row_key(name: str, filters: list[str]) -> str:
    """Rows are matched across seeds by this: the name, or for the filter arm one label when
    the seeds tuned different filters."""
    if _is_filter_row(name) and len(set(filters)) > 1:
        return "SAP-Net + causal filter (tuned per seed, below)"
    return name


def summarise(stored: dict) -> dict:
    """Per-row figure lists over seeds, paired effects over seeds and the goal checks."""
    runs = stored["runs"]
    filters = filter_rows(stored)
    figures = main_job_table.FIGURES
    per_row = {
        _row_key(row["name"], filters): {
            f: [
                next(
                    r
                    for r in run["rows"]
                    if _row_key(r["name"], filters) == _row_key(row["name"], filters)
                )[f]
                for run in runs
            ]
            for f in figures
        }
        for row in runs[0]["rows"]
    }
    last = _last_stage(runs[0]["rows"])
    effects = [main_job_table.effects(run["rows"], last) for run in runs]
    paired = {
        key: {f: [e[key][f] for e in effects] for f in figures}
        for key in effects[0]
        if all(key in e for e in effects)
    }
    final = per_row[f"after {last}"]
    goals = {
        f"SAP-Net (after {last}) <= {GOAL_SAP_NET_MM:g} mm, mean": float(np.mean(final["mpjpe"]))
        <= GOAL_SAP_NET_MM,
        f"SAP-Net <= {GOAL_ILLEGAL_PCT:g} % illegal, mean": float(np.mean(final["illegal_pct"]))
        <= GOAL_ILLEGAL_PCT,
    }
    if "structure_vs_control" in paired:
        sc = paired["structure_vs_control"]
        goals["structure arm below control in % illegal, every seed"] = all(
            v < 0 for v in sc["illegal_pct"]
        )
        goals["structure arm below control in L/R diff, every seed"] = all(
            v < 0 for v in sc["lr_diff_mean"]
        )
        goals["structure arm no worse than control in MPJPE, mean"] = (
            float(np.mean(sc["mpjpe"])) <= 0
        )
    if "tp_net_vs_sap_net" in paired:
        goals[f"TP-Net >= {GOAL_TP_NET_GAIN_MM:g} mm below SAP-Net, mean"] = (
            float(np.mean(paired["tp_net_vs_sap_net"]["mpjpe"])) <= -GOAL_TP_NET_GAIN_MM
        )
    if "tp_net_vs_filter" in paired:
        goals["TP-Net below the filter arm in MPJPE, mean"] = (
            float(np.mean(paired["tp_net_vs_filter"]["mpjpe"])) < 0
        )
    return {"per_row": per_row, "paired": paired, "goals": goals}


def to_markdown(stored: dict) -> str:
    runs = stored["runs"]
    seeds = [r["seed"] for r in runs]
    s = summarise(stored)
    figures = main_job_table.FIGURES
    labels = main_job_table.FIGURE_LABELS
    lines = [
        "# The main job over seeds",
        "",
        f"Command: `{stored['command']}`  ",
        f"Config: `{stored['config']}`"
        + (f" with `--set {' '.join(stored['overrides'])}`" if stored["overrides"] else "")
        + "  ",
        f"Machine: {stored['cpu']} ({stored['cpu_flags']}), {stored['cores']} cores  ",
        *([f"Commit: {stored['git_commit'][:10]}  "] if stored.get("git_commit") else []),
        f"Seeds: {', '.join(map(str, seeds))}; split: {runs[0]['split']} (held out: never used "
        "to choose anything). Wall time per seed: "
        + ", ".join(f"{r['wall_s']:.0f} s" for r in runs)
        + " (0 when an earlier finished run was reused).",
        "",
        "Mean ± standard deviation over seeds (mm; % for illegal elbows/knees):",
        "",
        "| model | " + " | ".join(labels[f] for f in figures) + " |",
        "|---|" + "---|" * len(figures),
    ]
    for name, values in s["per_row"].items():
        lines.append(f"| {name} | " + " | ".join(_stats(values[f]) for f in figures) + " |")
    lines += [
        "",
        (
            "Paired differences (same seed; negative: the first arm is lower), mean ± std, "
            "and in how many seeds the first arm is lower:"
        ),
        "",
        "| difference | " + " | ".join(labels[f] for f in figures) + " |",
        "|---|" + "---|" * len(figures),
    ]
    for key, values in s["paired"].items():
        cells = [
            f"{_stats(values[f])} ({sum(v < 0 for v in values[f])}/{len(seeds)})" for f in figures
        ]
        lines.append(f"| {main_job_table.EFFECT_LABELS[key]} | " + " | ".join(cells) + " |")
    lines += ["", "Per seed (MPJPE / % illegal / L/R diff):", ""]
    lines.append("| model | " + " | ".join(f"seed {k}" for k in seeds) + " |")
    lines.append("|---|" + "---|" * len(seeds))
    for name, values in s["per_row"].items():
        cells = [
            f"{values['mpjpe'][i]:.1f} / {values['illegal_pct'][i]:.1f} / "
            f"{values['lr_diff_mean'][i]:.1f}"
            for i in range(len(seeds))
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    filters = filter_rows(stored)
    if len(set(filters)) > 1:
        lines += [
            "",
            "Filter arm per seed (chosen on the validation subjects): "
            + "; ".join(f"seed {k}: {name}" for k, name in zip(seeds, filters))
            + ".",
        ]
    lines += ["", "Goals (issue 21):", ""]
    lines += [f"- {'holds' if ok else 'FAILS'}: {goal}" for goal, ok in s["goals"].items()]
    return "\n".join(lines) + "\n"


def write(stored: dict, json_path: pathlib.Path) -> pathlib.Path:
    json_path.write_text(json.dumps(stored, indent=1) + "\n")
    md = json_path.with_suffix(".md")
    # From the file as stored: what --render and the byte test read back.
    md.write_text(to_markdown(json.loads(json_path.read_text())))
    return md


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--config", default="configs/quickstart.yaml")
    parser.add_argument("--runs", default="runs/seeds", help="one run folder per seed here")
    parser.add_argument("--set", action="append", default=[], help="override for every seed")
    parser.add_argument("--out", default="experiments/results_main_job_seeds.json")
    parser.add_argument("--render", metavar="JSON", help="only rewrite JSON's Markdown")
    args = parser.parse_args(argv)
    if args.render:
        path = pathlib.Path(args.render)
        print(write(json.loads(path.read_text()), path).read_text())
        return 0
    args.seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    args.argv = argv
    md = write(collect(args), pathlib.Path(args.out))
    print(md.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
