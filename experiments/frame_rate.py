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

# What fits ~15 CPU minutes for both rates and 3 seeds on 2 cores: a 1024-wide TP-Net (the
# paper's is 4096), N = 20 online residual (the question) and N = 4 (windows of 160 / 400 ms:
# how much of the effect is the span), limb noise only (the main claim-2 noise).
RUNS = (temporal.TPRun("limb", 20, "online"), temporal.TPRun("limb", 4, "online"))
DEFAULT = temporal.Config(
    runs=RUNS,
    hidden=1024,
    max_epochs=20,
    epoch_windows=32768,  # <= the 10 fps fit set (48k windows): equal steps at both rates
    patience=3,
)
DEFAULT_SEEDS = (0, 1, 2)
QUICK = dataclasses.replace(temporal.QUICK, runs=(temporal.TPRun("limb", 4, "online"),))


def run(
    cfg: temporal.Config, motion_dir, seeds=DEFAULT_SEEDS, frame_rates=FRAME_RATES, log=print
) -> dict:
    """One `temporal.run` per seed and frame rate; a seed fixes the sequences' cameras and
    placements (the same at both rates), the noise draws, the net's initialisation and batches.

    Returns:
        {"seeds", "frame_rates", "runs": {f"{seed}": {f"{fps:g}": temporal results + wall_s,
        cpu_s}}}.
    """
    results: dict = {"seeds": list(seeds), "frame_rates": list(frame_rates), "runs": {}}
    for seed in seeds:
        per_rate = results["runs"][str(seed)] = {}
        for fps in frame_rates:
            t0, cpu0 = time.time(), time.process_time()
            rate_cfg = dataclasses.replace(
                cfg, seed=seed, frame_rate=fps, noise=temporal.noise_at_rate(cfg.noise, fps)
            )
            log(f"--- seed {seed}, {fps:g} fps (noise rho {rate_cfg.noise.rho:.4f} per frame)")
            train, test = temporal.load_streams(rate_cfg, motion_dir)
            res = temporal.run(rate_cfg, train, test, log=log)
            res["wall_s"] = time.time() - t0
            res["cpu_s"] = time.process_time() - cpu0
            per_rate[f"{fps:g}"] = res
    return results


def method(name: str) -> str:
    """A row name without its tuned parameters ("1-Euro (fc=1.0 Hz, beta=0.001)" -> "1-Euro"):
    filters are tuned per seed and rate, so rows are matched across seeds by method."""
    return name if name.startswith(("TP-Net", "raw")) else name.split(" (", 1)[0]


def _rows(res: dict) -> dict[str, dict]:
    return {method(name): row for name, row in res["noises"]["limb"]["rows"].items()}


def summary(results: dict) -> dict[int, dict[str, dict[str, list[float]]]]:
    """N -> rate key -> per-seed MPJPE on the 200 ms frames of the raw poses and of TP-Net
    online N, and TP-Net's gain (TP-Net - raw; negative = TP-Net is better); N largest first."""
    runs = list(results["runs"].values())
    windows = sorted(
        {r["window"] for res in runs[0].values() for r in res["config"]["runs"]}, reverse=True
    )
    out = {}
    for n in windows:
        out[n] = {}
        for key in runs[0]:
            raw = [_rows(r[key])["raw per-frame poses"]["mpjpe_200ms_frames"] for r in runs]
            tp = [_rows(r[key])[f"TP-Net online N={n}"]["mpjpe_200ms_frames"] for r in runs]
            gain = [t - w for t, w in zip(tp, raw, strict=True)]
            out[n][key] = {"raw": raw, "tp_net": tp, "gain": gain}
    return out


def to_markdown(stored: dict) -> str:
    """The results Markdown: a pure function of the stored JSON (`common.write_results`)."""
    results = stored["results"]
    seeds = results["seeds"]
    runs = [results["runs"][str(seed)] for seed in seeds]
    rate_keys = list(runs[0])
    first = runs[0][rate_keys[0]]
    cfg, nm = first["config"], first["config"]["noise"]
    n_seeds = len(seeds)
    seed_text = ", ".join(map(str, seeds))
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
            "rates, the rest white per frame), the same sequences, cameras and placements at both "
            "rates; 10 fps = the 25 fps motion linearly interpolated every 2.5 frames. TP-Net "
            f"residual, online, two FC-{cfg['hidden']} ReLU layers (the paper's: 4096; narrower "
            f"for the CPU budget), {'mixed bfloat16' if cfg['bf16'] else 'float32'}, at most "
            f"{cfg['max_epochs']} epochs of {cfg['epoch_windows']} random windows (the same steps "
            f"at both rates), batch {cfg['batch']}, peak lr {cfg['learning_rate']}, best "
            f"validation epoch kept, stop after {cfg['patience']} epochs without improvement. "
            f"Seeds {seed_text} (a seed sets the cameras and placements, the noise draws, the "
            "net's initialisation and batches). Filters tuned per seed and rate on fit sequences."
        ),
        "",
        "Frames (fit / validation / test): "
        + "; ".join(
            f"{k} fps {r['n_fit_frames']} / {r['n_val_frames']} / {r['n_test_frames']}"
            for k, r in runs[0].items()
        )
        + ".",
        "",
        (
            f"Mean ± sample std over seeds ({n_seeds}). MPJPE (Protocol 1, mm) on every test "
            "frame of each rate and on the frames at multiples of 200 ms (held by both rates "
            "without interpolation: the like-for-like column). Bone std: per-sequence std of limb "
            "bone lengths (mm). Lag: ms (positive = trails). Latency: future frames (per seed "
            "when the tuned filters differ)."
        ),
        "",
        (
            "| fps | method | window span | MPJPE all frames | MPJPE 200 ms frames | PA-MPJPE | "
            "bone std | lag (ms) | latency |"
        ),
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key in rate_keys:
        fps = runs[0][key]["config"]["frame_rate"]
        for name in _rows(runs[0][key]):
            rows = [_rows(r[key])[name] for r in runs]
            span = f"{1000.0 * int(name.rsplit('N=', 1)[1]) / fps:.0f} ms" if "N=" in name else ""
            latency = "/".join(dict.fromkeys(str(r["latency"]) for r in rows))
            lines.append(
                f"| {key} | {name} | {span} | "
                f"{common.mean_std([r['mpjpe_frame_mean'] for r in rows])} | "
                f"{common.mean_std([r['mpjpe_200ms_frames'] for r in rows])} | "
                f"{common.mean_std([r['pa_mpjpe'] for r in rows])} | "
                f"{common.mean_std([r['bone_std_mean_mm'] for r in rows])} | "
                f"{common.mean_std([r['lag_ms'] for r in rows], 0)} | {latency} |"
            )
    lines += [
        "",
        "Tuned filters per seed: "
        + "; ".join(
            f"seed {seed} {key} fps: "
            + ", ".join(n for n in run[key]["noises"]["limb"]["rows"] if method(n) != n)
            for seed, run in zip(seeds, runs)
            for key in rate_keys
        )
        + ".",
        "",
        (
            "On the 200 ms frames (mm): raw -> TP-Net and TP-Net's gain over the raw poses per "
            "rate (means over seeds), and the paired difference 10 fps minus 25 fps in the same "
            "seed (negative: 10 fps is better), per seed and mean ± std, with the number of seeds "
            "in which 10 fps is better. The raw poses differ a little between the rates "
            "(independent noise draws), so the gain is the fairer comparison:"
        ),
        "",
        "| N | "
        + " | ".join(f"{k} fps: raw -> TP-Net (gain)" for k in rate_keys)
        + " | 10 - 25 fps: TP-Net | 10 - 25 fps: gain | seeds 10 fps better (gain) |",
        "|---|" + "---|" * (len(rate_keys) + 3),
    ]
    for n, per_rate in summary(results).items():
        cells = [
            f"{np.mean(v['raw']):.1f} -> {np.mean(v['tp_net']):.1f} ({np.mean(v['gain']):+.1f})"
            for v in per_rate.values()
        ]
        if {"10", "25"} <= per_rate.keys():
            lo, hi = per_rate["10"], per_rate["25"]
            for field in ("tp_net", "gain"):
                d = [a - b for a, b in zip(lo[field], hi[field], strict=True)]
                per_seed = ", ".join(f"{v:+.1f}" for v in d)
                mean = f"{np.mean(d):+.1f}" + (f" ± {np.std(d, ddof=1):.1f}" if n_seeds > 1 else "")
                cells.append(f"{mean} ({per_seed})")
            d_gain = [a - b for a, b in zip(lo["gain"], hi["gain"], strict=True)]
            cells.append(f"{sum(v < 0 for v in d_gain)}/{n_seeds}")
        else:
            cells += ["–", "–", "–"]
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Validation MPJPE (mm) after each epoch (on each rate's own validation frames):",
        "",
        "| seed | fps | model | validation MPJPE per epoch | best epoch | training wall / CPU (s) |",
        "|---|---|---|---|---|---|",
    ]
    for seed, run in zip(seeds, runs):
        for key, res in run.items():
            for name, info in res["noises"]["limb"]["curves"].items():
                curve = " → ".join(f"{v:.1f}" for v in info["val_curve"])
                lines.append(
                    f"| {seed} | {key} | {name} | {curve} | {info['best_epoch']} | "
                    f"{info['train_s']:.0f} / {info['train_cpu_s']:.0f} |"
                )
    lines += [
        "",
        "Per seed and rate, wall / process CPU time (s): "
        + ", ".join(
            f"seed {seed} {k} fps {r['wall_s']:.0f} / {r['cpu_s']:.0f}"
            for seed, run in zip(seeds, runs)
            for k, r in run.items()
        )
        + ".",
        "",
        common.run_footer(stored),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    common.add_results_arguments(parser, "experiments/results_frame_rate.md")
    parser.add_argument("--hidden", type=int, default=DEFAULT.hidden)
    parser.add_argument("--max-epochs", type=int, default=DEFAULT.max_epochs)
    parser.add_argument("--epoch-windows", type=int, default=DEFAULT.epoch_windows)
    parser.add_argument("--seeds", type=int, nargs="+", default=list(DEFAULT_SEEDS))
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
        )
    motion_dir = common.pathlib.Path(args.motion_dir)
    if not common.motion_available(motion_dir):
        print(f"real motion not found under {motion_dir}; nothing to do", file=sys.stderr)
        return {}
    seeds = (0,) if args.quick else tuple(args.seeds)
    return common.run_and_write(
        "experiments.frame_rate", argv, lambda: run(cfg, motion_dir, seeds), to_markdown, args.out
    )


if __name__ == "__main__":
    main()
