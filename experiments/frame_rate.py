"""Frame rate: does TP-Net with N = 20 refine real H36M motion better at 10 or at 25 fps?

    python -m experiments.frame_rate --out experiments/results_frame_rate.md
    python -m experiments.frame_rate --render experiments/results_frame_rate.json

The project trains and runs TP-Net at one frame rate, 25 fps (`keras_pose3d.config.
TP_NET_FRAME_RATE`). The paper supports two readings: its H36M evaluation uses "every fifth
frame" of the 50 fps videos (10 fps), which is the evaluation's subsampling; its Fig. 5 says TP-Net's
sensitivity fades for "poses beyond 5 time-steps (or 200 ms time-window)", i.e. 40 ms per step
= 25 fps. With N = 20 a window spans 0.8 s at 25 fps and 2 s at 10 fps.

This command runs the claim-2 setting of `experiments.temporal` (limb-correlated noise
calibrated to 55.5 mm, one real camera per sequence, train S1 S5 S6 S7 S8, test S9 S11) twice,
once per rate, on the same sequences, cameras and placements: at 25 fps the motion as recorded,
at 10 fps resampled by `temporal.resample_motion` (linear interpolation, every 2.5 frames) with
the noise's correlation time kept (`temporal.noise_at_rate`). Everything else is equal: the net
(narrower than the paper's 4096 to fit the CPU budget, `Config`), steps, batches, learning rate
schedule, early stopping, seed. Both rates are scored on all their own test frames and on the
frames at multiples of 200 ms, which both rates hold without interpolation (every 5th frame at
25 fps, every 2nd at 10 fps): the like-for-like figure.

The raw results go to `results_frame_rate.json` beside the Markdown, which is a pure function of
that file (`to_markdown`): `--render` rewrites it without a run.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time

import numpy as np

from experiments import common, temporal

FRAME_RATES = (25.0, 10.0)

# What fits ~15 CPU minutes for both rates on 2 cores: a 1024-wide TP-Net (the paper's is 4096),
# N = 20 online residual (the question) and N = 4 (a window of 160 / 400 ms: how much of the
# effect is the span), limb noise only (the main claim-2 noise).
RUNS = (temporal.TPRun("limb", 20, "online"), temporal.TPRun("limb", 4, "online"))
DEFAULT = temporal.Config(
    runs=RUNS,
    hidden=1024,
    max_epochs=10,
    epoch_windows=32768,  # <= the 10 fps fit set (48k windows): equal steps at both rates
    patience=3,
)
QUICK = dataclasses.replace(temporal.QUICK, runs=(temporal.TPRun("limb", 4, "online"),))


def run(cfg: temporal.Config, motion_dir, frame_rates=FRAME_RATES, log=print) -> dict:
    """One `temporal.run` per frame rate on the same sequences; results keyed by f"{fps:g}"."""
    results: dict = {"frame_rates": list(frame_rates), "rates": {}}
    for fps in frame_rates:
        t0, cpu0 = time.time(), time.process_time()
        rate_cfg = dataclasses.replace(
            cfg, frame_rate=fps, noise=temporal.noise_at_rate(cfg.noise, fps)
        )
        log(f"--- {fps:g} fps (noise rho {rate_cfg.noise.rho:.4f} per frame)")
        train, test = temporal.load_streams(rate_cfg, motion_dir)
        res = temporal.run(rate_cfg, train, test, log=log)
        res["wall_s"] = time.time() - t0
        res["cpu_s"] = time.process_time() - cpu0
        results["rates"][f"{fps:g}"] = res
    return results


def summary(results: dict) -> dict[int, dict[str, dict[str, float]]]:
    """N -> rate key -> MPJPE on the 200 ms frames of the raw poses and of TP-Net online N,
    and TP-Net's gain (TP-Net - raw; negative = TP-Net is better), N largest first."""
    rates = results["rates"]
    windows = sorted(
        {r["window"] for res in rates.values() for r in res["config"]["runs"]}, reverse=True
    )
    out = {}
    for n in windows:
        out[n] = {}
        for key, res in rates.items():
            rows = res["noises"]["limb"]["rows"]
            raw = rows["raw per-frame poses"]["mpjpe_200ms_frames"]
            tp = rows[f"TP-Net online N={n}"]["mpjpe_200ms_frames"]
            out[n][key] = {"raw": raw, "tp_net": tp, "gain": tp - raw}
    return out


def _row_cells(r: dict) -> str:
    common_frames = r["mpjpe_200ms_frames"]
    return (
        f"{r['mpjpe_frame_mean']:.1f} | {common_frames:.1f} | {r['pa_mpjpe']:.1f} | "
        f"{r['bone_std_mean_mm']:.1f} | {r['lag_ms']:.0f} | {r['latency']}"
    )


def to_markdown(stored: dict) -> str:
    """The results Markdown: a pure function of the stored JSON (`common.write_results`)."""
    results = stored["results"]
    rates = results["rates"]
    first = next(iter(rates.values()))
    cfg = first["config"]
    nm = cfg["noise"]
    lines = [
        "# Frame rate: TP-Net at 10 vs 25 fps on real H36M motion",
        "",
        f"Command: `{stored['command']}`",
        "",
        (
            'The two readings of the paper: H36M is evaluated on "every fifth frame" (10 fps of '
            "the 50 fps videos: the evaluation's subsampling); TP-Net's sensitivity fades for "
            '"poses beyond 5 time-steps (or 200 ms time-window)" (40 ms per step: 25 fps, the '
            "project's `TP_NET_FRAME_RATE`)."
        ),
        "",
        (
            f"Setting: `experiments.temporal` with limb-correlated noise calibrated to "
            f"{nm['target_mpjpe']} mm MPJPE at each rate ({nm['corr_share']:.0%} AR(1) with a "
            f"correlation time of {-1.0 / (cfg['frame_rate'] * np.log(nm['rho'])):.2f} s at both "
            "rates, the rest white per frame), the same sequences, cameras and placements; 10 fps "
            "= the 25 fps motion linearly interpolated every 2.5 frames. TP-Net residual, online, "
            f"two FC-{cfg['hidden']} ReLU layers (the paper's: 4096; narrower for the CPU budget), "
            f"{'mixed bfloat16' if cfg['bf16'] else 'float32'}, at most {cfg['max_epochs']} "
            f"epochs of {cfg['epoch_windows']} random windows (the same steps at both rates), "
            f"batch {cfg['batch']}, peak lr {cfg['learning_rate']}, best validation epoch kept, "
            f"stop after {cfg['patience']} epochs without improvement, seed {cfg['seed']}. Filters "
            "tuned at each rate on fit sequences."
        ),
        "",
        "Frames (fit / validation / test): "
        + "; ".join(
            f"{k} fps {r['n_fit_frames']} / {r['n_val_frames']} / {r['n_test_frames']}"
            for k, r in rates.items()
        )
        + ".",
        "",
        (
            "MPJPE (Protocol 1, mm) on every test frame of each rate and on the frames at "
            "multiples of 200 ms (held by both rates without interpolation: the like-for-like "
            "column). Bone std: per-sequence std of limb bone lengths (mm). Lag: ms (positive = "
            "trails). Latency: future frames."
        ),
        "",
        (
            "| fps | method | window span | MPJPE all frames | MPJPE 200 ms frames | PA-MPJPE | "
            "bone std | lag (ms) | latency |"
        ),
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key, res in rates.items():
        fps = res["config"]["frame_rate"]
        for kind in res["noises"].values():
            for name, r in kind["rows"].items():
                span = ""
                if name.startswith("TP-Net"):
                    n = int(name.rsplit("N=", 1)[1])
                    span = f"{1000.0 * n / fps:.0f} ms"
                lines.append(f"| {key} | {name} | {span} | {_row_cells(r)} |")
    lines += [
        "",
        (
            "On the 200 ms frames (mm): raw -> TP-Net and TP-Net's gain over the raw poses per "
            "rate, and 10 fps minus 25 fps (negative: 10 fps is better). The raw poses differ a "
            "little between the rates (independent noise draws), so the gain is the fairer "
            "comparison:"
        ),
        "",
        "| N | "
        + " | ".join(f"{k} fps: raw -> TP-Net (gain)" for k in rates)
        + " | 10 - 25 fps: TP-Net | 10 - 25 fps: gain |",
        "|---|" + "---|" * (len(rates) + 2),
    ]
    for n, per_rate in summary(results).items():
        cells = [
            f"{v['raw']:.1f} -> {v['tp_net']:.1f} ({v['gain']:+.1f})" for v in per_rate.values()
        ]
        if {"10", "25"} <= per_rate.keys():
            lo, hi = per_rate["10"], per_rate["25"]
            cells += [f"{lo['tp_net'] - hi['tp_net']:+.1f}", f"{lo['gain'] - hi['gain']:+.1f}"]
        else:
            cells += ["–", "–"]
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Validation MPJPE (mm) after each epoch (on each rate's own validation frames):",
        "",
        "| fps | model | validation MPJPE per epoch | best epoch | training wall / CPU (s) |",
        "|---|---|---|---|---|",
    ]
    for key, res in rates.items():
        for name, info in res["noises"]["limb"]["curves"].items():
            curve = " → ".join(f"{v:.1f}" for v in info["val_curve"])
            lines.append(
                f"| {key} | {name} | {curve} | {info['best_epoch']} | "
                f"{info['train_s']:.0f} / {info['train_cpu_s']:.0f} |"
            )
    lines += [
        "",
        "Per rate, wall / process CPU time (s): "
        + ", ".join(f"{k} fps {r['wall_s']:.0f} / {r['cpu_s']:.0f}" for k, r in rates.items())
        + ".",
        "",
        common.run_footer(stored),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--out",
        default="experiments/results_frame_rate.md",
        help="results Markdown; the raw results go to the .json beside it",
    )
    parser.add_argument(
        "--render",
        metavar="JSON",
        help="only rewrite the Markdown beside this stored results JSON (no run)",
    )
    parser.add_argument("--hidden", type=int, default=DEFAULT.hidden)
    parser.add_argument("--max-epochs", type=int, default=DEFAULT.max_epochs)
    parser.add_argument("--epoch-windows", type=int, default=DEFAULT.epoch_windows)
    parser.add_argument("--seed", type=int, default=DEFAULT.seed)
    parser.add_argument("--quick", action="store_true", help="tiny smoke run (seconds)")
    parser.add_argument("--motion-dir", default=str(common.MOTION_DIR))
    args = parser.parse_args(argv)
    if args.render:
        print(common.render(args.render, to_markdown))
        return {}
    if args.quick:
        cfg = QUICK
    else:
        cfg = dataclasses.replace(
            DEFAULT,
            hidden=args.hidden,
            max_epochs=args.max_epochs,
            epoch_windows=args.epoch_windows,
            seed=args.seed,
        )
    motion_dir = common.pathlib.Path(args.motion_dir)
    if not common.motion_available(motion_dir):
        print(f"real motion not found under {motion_dir}; nothing to do", file=sys.stderr)
        return {}
    t0, cpu0, commit = time.time(), time.process_time(), common.git_commit()
    results = run(cfg, motion_dir)
    stored = common.make_record(
        "experiments.frame_rate",
        argv,
        results,
        wall_s=time.time() - t0,
        cpu_s=time.process_time() - cpu0,
        provenance="a run of the command above; every figure is this run's output.",
        commit=commit,
    )
    common.write_results(stored, to_markdown, args.out)
    return results


if __name__ == "__main__":
    main()
