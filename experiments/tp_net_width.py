"""TP-Net's width: does a narrower net than the paper's 2 x 4096 refine real motion as well?

    python -m experiments.tp_net_width --out experiments/results_tp_net_width.md
    python -m experiments.tp_net_width --render experiments/results_tp_net_width.json

TP-Net's batch-1 latency on a CPU is bounded by reading its weights (84 MB in float32 at 2 x
4096, N = 20), and the paper's width is one choice, not a finding. This command trains TP-Net
(online, N = 20, residual) at several widths in the claim-2 setting of `experiments.temporal`
(real H36M motion at 25 fps, limb-correlated noise calibrated to 55.5 mm, one real camera per
sequence, train S1 S5 S6 S7 S8, test S9 S11), paired: in one seed every width sees the same
noisy copies, batches and validation frames (the random generator is rewound before each
width). Its serving latency per width is `benchmarks/serving.py --tp-hidden`.

The raw results go to `results_tp_net_width.json` beside the Markdown, which is a pure function
of that file (`to_markdown`): `--render` rewrites it without a run.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time

import numpy as np

from experiments import common, temporal

WIDTHS = (4096, 2048, 1024)
SPEC = temporal.TPRun("limb", 20, "online")
# Half the epoch size of experiments.temporal (32768 windows, like experiments.frame_rate) so
# that three widths over three seeds fit about 20 CPU minutes on 2 cores.
DEFAULT = temporal.Config(runs=(SPEC,), max_epochs=20, epoch_windows=32768, patience=3)
DEFAULT_SEEDS = (0, 1, 2)
QUICK = dataclasses.replace(temporal.QUICK, runs=(temporal.TPRun("limb", 4, "online"),))


def run_seed(cfg: temporal.Config, train, test, widths, log=print) -> dict:
    """One seed: the noise calibrated and drawn once, then TP-Net at every width from the same
    generator state. Returns {"sigma_mm", "rows": {name: metrics}, "curves": {name: info}}."""
    spec = cfg.runs[0]
    fit, val = temporal.split_validation(train, cfg.val_every)
    rng = np.random.default_rng(cfg.seed)
    noise = dataclasses.replace(cfg.noise, kind=spec.noise)
    sigma = noise.calibrate([noise.unit_draw(s.gt, rng) for s in fit])
    val_noisy = temporal.noisy_sequences(val, noise, sigma, rng)
    test_noisy = temporal.noisy_sequences(test, noise, sigma, rng)
    out = {
        "sigma_mm": sigma,
        "rows": {"raw per-frame poses": temporal.evaluate(test_noisy, test, cfg.frame_rate)},
        "curves": {},
        "parameters": {},
    }
    state = rng.bit_generator.state
    for width in widths:
        rng.bit_generator.state = state  # the same training noise and windows for every width
        wcfg = dataclasses.replace(cfg, hidden=width)
        model, refine, info = temporal.train_tp_net(
            fit, val, val_noisy, noise, sigma, spec, wcfg, rng, log
        )
        name = row_name(width)
        out["rows"][name] = temporal.evaluate(refine(test_noisy), test, cfg.frame_rate)
        out["curves"][name] = info
        out["parameters"][name] = int(model.count_params())
        log(
            f"seed {cfg.seed} {name}: MPJPE {out['rows'][name]['mpjpe_frame_mean']:.1f} mm "
            f"({info['train_s']:.0f} s)"
        )
    return out


def row_name(width: int) -> str:
    return f"TP-Net 2 x {width}"


def run(cfg: temporal.Config, motion_dir, seeds=DEFAULT_SEEDS, widths=WIDTHS, log=print) -> dict:
    """{"seeds", "widths", "runs": {f"{seed}": run_seed(...) + n_*_frames, wall_s, cpu_s}}."""
    results: dict = {"seeds": list(seeds), "widths": list(widths), "runs": {}}
    for seed in seeds:
        t0, cpu0 = time.time(), time.process_time()
        seed_cfg = dataclasses.replace(cfg, seed=seed)
        log(f"--- seed {seed}")
        train, test = temporal.load_streams(seed_cfg, motion_dir)
        res = run_seed(seed_cfg, train, test, widths, log)
        fit, val = temporal.split_validation(train, cfg.val_every)
        res.update(
            config=dataclasses.asdict(seed_cfg),
            n_fit_frames=sum(len(s.gt) for s in fit),
            n_val_frames=sum(len(s.gt) for s in val),
            n_test_frames=int(sum(len(s.gt) for s in test)),
            wall_s=time.time() - t0,
            cpu_s=time.process_time() - cpu0,
        )
        results["runs"][str(seed)] = res
    return results


def paired(results: dict, metric: str = "mpjpe_frame_mean") -> dict[int, list[float]]:
    """width -> per-seed `metric` of that width minus the widest's (negative: narrower is
    better), for every width but the widest."""
    widths = results["widths"]
    widest = row_name(max(widths))
    runs = [results["runs"][str(s)] for s in results["seeds"]]
    return {
        w: [r["rows"][row_name(w)][metric] - r["rows"][widest][metric] for r in runs]
        for w in widths
        if w != max(widths)
    }


COLUMNS = (
    ("MPJPE", "mpjpe_frame_mean"),
    ("PA-MPJPE", "pa_mpjpe"),
    ("bone std", "bone_std_mean_mm"),
    ("accel err", "accel_error"),
)


def to_markdown(stored: dict) -> str:
    """The results Markdown: a pure function of the stored JSON (`common.write_results`)."""
    results = stored["results"]
    seeds, widths = results["seeds"], results["widths"]
    runs = [results["runs"][str(s)] for s in seeds]
    cfg, nm = runs[0]["config"], runs[0]["config"]["noise"]
    spec = cfg["runs"][0]
    lines = [
        "# TP-Net's width: 2 x 4096 (the paper's) against narrower nets on real H36M motion",
        "",
        f"Command: `{stored['command']}`",
        "",
        (
            f"Setting: `experiments.temporal`'s claim 2 at {cfg['frame_rate']:g} fps, "
            f"{spec['noise']}-correlated noise calibrated to {nm['target_mpjpe']} mm MPJPE; TP-Net "
            f"{spec['mode']}, N = {spec['window']}, "
            f"{'residual' if spec['residual'] else 'direct'}, "
            f"{'mixed bfloat16' if cfg['bf16'] else 'float32'}, at most {cfg['max_epochs']} "
            f"epochs of {cfg['epoch_windows']} random windows, batch {cfg['batch']}, peak lr "
            f"{cfg['learning_rate']}, best validation epoch kept, stop after {cfg['patience']} "
            f"epochs without improvement. Paired: in a seed every width trains on the same noisy "
            f"copies and batches and is scored on the same noisy test poses. Seeds "
            f"{', '.join(map(str, seeds))}. Frames (fit / validation / test): "
            f"{runs[0]['n_fit_frames']} / {runs[0]['n_val_frames']} / "
            f"{runs[0]['n_test_frames']}."
        ),
        "",
        f"Mean ± sample std over seeds ({len(seeds)}), mm (accel err: mm/frame²):",
        "",
        "| model | parameters | " + " | ".join(c for c, _ in COLUMNS) + " |",
        "|---|---|" + "---|" * len(COLUMNS),
    ]
    for name in runs[0]["rows"]:
        params = runs[0]["parameters"].get(name)
        cells = [
            common.mean_std([r["rows"][name][key] for r in runs], 2 if "accel" in key else 1)
            for _, key in COLUMNS
        ]
        lines.append(
            f"| {name} | {'' if params is None else f'{params:,}'} | " + " | ".join(cells) + " |"
        )
    lines += [
        "",
        (
            f"Paired MPJPE difference, width minus 2 x {max(widths)} in the same seed (negative: "
            "the narrower net is better), per seed and mean ± std, and in how many seeds the "
            "narrower net is within 0.5 mm or better:"
        ),
        "",
        "| model | per seed | mean | seeds within 0.5 mm or better |",
        "|---|---|---|---|",
    ]
    for width, diffs in paired(results).items():
        lines.append(
            f"| {row_name(width)} | {', '.join(f'{d:+.1f}' for d in diffs)} | "
            f"{common.mean_std(diffs)} | {sum(d <= 0.5 for d in diffs)}/{len(diffs)} |"
        )
    lines += [
        "",
        "Validation MPJPE (mm) after each epoch:",
        "",
        "| seed | model | validation MPJPE per epoch | best epoch | training wall / CPU (s) |",
        "|---|---|---|---|---|",
    ]
    for seed, r in zip(seeds, runs):
        for name, info in r["curves"].items():
            curve = " → ".join(f"{v:.1f}" for v in info["val_curve"])
            lines.append(
                f"| {seed} | {name} | {curve} | {info['best_epoch']} | "
                f"{info['train_s']:.0f} / {info['train_cpu_s']:.0f} |"
            )
    lines += [
        "",
        "Per seed, wall / process CPU time (s): "
        + ", ".join(f"seed {s} {r['wall_s']:.0f} / {r['cpu_s']:.0f}" for s, r in zip(seeds, runs))
        + ".",
        "",
        common.run_footer(stored),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    common.add_results_arguments(parser, "experiments/results_tp_net_width.md")
    parser.add_argument("--widths", type=int, nargs="+", default=list(WIDTHS))
    parser.add_argument("--max-epochs", type=int, default=DEFAULT.max_epochs)
    parser.add_argument("--epoch-windows", type=int, default=DEFAULT.epoch_windows)
    parser.add_argument("--seeds", type=int, nargs="+", default=list(DEFAULT_SEEDS))
    parser.add_argument("--quick", action="store_true", help="tiny smoke run (seconds)")
    parser.add_argument("--motion-dir", default=str(common.MOTION_DIR))
    args = parser.parse_args(argv)
    if args.render:
        print(common.render(args.render, to_markdown))
        return {}
    if min(args.widths) < 1:
        parser.error(f"--widths must be positive unit counts. Received: {args.widths}")
    cfg = (
        QUICK
        if args.quick
        else dataclasses.replace(
            DEFAULT, max_epochs=args.max_epochs, epoch_windows=args.epoch_windows
        )
    )
    motion_dir = common.pathlib.Path(args.motion_dir)
    if not common.motion_available(motion_dir):
        print(f"real motion not found under {motion_dir}; nothing to do", file=sys.stderr)
        return {}
    seeds = (0,) if args.quick else tuple(args.seeds)
    widths = tuple(sorted(set(args.widths), reverse=True))
    return common.run_and_write(
        "experiments.tp_net_width",
        argv,
        lambda: run(cfg, motion_dir, seeds, widths),
        to_markdown,
        args.out,
    )


if __name__ == "__main__":
    main()
