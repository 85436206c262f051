"""Argument parsing and dispatch. User errors exit with status 2 and one line on stderr."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from accelsim import AccelsimError, FaultKind, PeSite, ProtectionMode, __version__
from accelsim.cli import commands
from accelsim.cli.common import parse_floats
from accelsim.cli.inject import inject, parse_faults
from accelsim.cli.run import parse_percents, run_command
from accelsim.cli.simulate import parse_modes, simulate_command


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line (exit 2), like every other user error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"accelsim: error: {self.prog}: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m accelsim",
        description="Cycle-level int8 DNN accelerator simulator for fault-resilience research.",
    )
    parser.add_argument("--version", action="version", version=f"accelsim {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser(
        "run",
        help="the headline: NVF sweep x protection modes, campaigns, cycles, figures, report",
    )
    run.add_argument(
        "arch",
        nargs="?",
        default="pe16x16",
        help="architecture YAML or built-in name (default: pe16x16 = arch/pe16x16.yaml)",
    )
    run.add_argument(
        "workload",
        nargs="?",
        default="lenet5",
        help="workload YAML or built-in name (default: lenet5 = workloads/lenet5.yaml)",
    )
    run.add_argument("--out", help="output folder (default: the workload's output_dir/run-ARCH)")
    run.add_argument(
        "--scale",
        choices=("quick", "paper"),
        default="quick",
        help="quick (default): 1,000 faults x 1,000 images per campaign, NVF over <= 500 "
        "images; paper: Leveugle sample sizes, the full test split, the workload's NVF images",
    )
    run.add_argument(
        "--modes",
        type=parse_modes,
        help="protection modes to sweep (default: the workload's protection.modes)",
    )
    run.add_argument(
        "--thresholds",
        type=parse_percents,
        help="NVF thresholds in %% (comma-separated; default: the workload's thresholds_percent)",
    )
    run.add_argument(
        "--tops",
        type=parse_percents,
        help="also protect the top P %% of neurons (comma-separated; default 1,2,5,10,20,50; "
        "'' for none)",
    )
    run.add_argument("--faults", type=int, help="faults per campaign (overrides the scale)")
    run.add_argument("--test-images", type=int, help="images per campaign (overrides the scale)")
    run.add_argument("--test-split", choices=("train", "test", "sample"), help="campaign split")
    run.add_argument("--nvf-split", choices=("train", "test", "sample"), help="NVF split")
    run.add_argument("--nvf-images", type=int, help="NVF analysis images (overrides the scale)")
    run.add_argument(
        "--nvf", choices=("auto", "exhaustive", "workload", "paper"), default="auto",
        help="how the NVF is computed: auto (default: exhaustive, the ground truth, when its "
        "estimated time fits --nvf-budget, else the workload's analysis settings), exhaustive, "
        "workload, paper (exact search, Algorithm 1's bit mapping, gradient check)",
    )  # fmt: skip
    run.add_argument("--nvf-budget", type=float, default=600.0, metavar="SECONDS",
                     help="time the auto NVF may take (default 600)")  # fmt: skip
    run.add_argument("--workers", type=int, help="local worker processes per campaign")
    run.add_argument("--seed", type=int, help="fault-sampling seed (default: faults.seed)")
    run.add_argument("--resume", action="store_true", help="continue the sweep in --out")
    run.add_argument("--data-dir", help="dataset folder (default: $ACCELSIM_DATA, else cache)")
    run.add_argument("--json", action="store_true", help="print one JSON document")
    run.set_defaults(func=run_command)

    models = sub.add_parser(
        "models", help="list the model zoo: neurons, parameters, MACs, accuracy"
    )
    models.add_argument("--json", action="store_true", help="print one JSON document")
    models.set_defaults(func=commands.models)

    im = sub.add_parser(
        "import", help="a .tflite or .onnx model -> accelsim model files and a workload"
    )
    im.add_argument(
        "model", help="the model file: .tflite (int8, TFLite's converter; tflite extra) or "
        ".onnx (float, quantised by accelsim; onnx extra)"
    )  # fmt: skip
    im.add_argument("--name", help="network name (default: the file's stem)")
    im.add_argument("--out", help="output folder (default: imported/NAME)")
    im.add_argument(
        "--dataset",
        help="mnist, cifar10, a .npz file or an image folder (default: from the input shape, "
        "28x28x1 mnist, 32x32x3 cifar10)",
    )
    im.add_argument("--mean", type=parse_floats, help="per-channel mean: input = (p/255 - "
                    "mean) / std (default 0)")  # fmt: skip
    im.add_argument("--std", type=parse_floats, help="per-channel std (default 1)")
    im.add_argument(
        "--requantization", choices=("tflm", "xnnpack"), default="tflm",
        help="tflm (TFLite Micro's fixed point, default) or xnnpack (LiteRT's default CPU path)",
    )  # fmt: skip
    im.add_argument("--eval-images", type=int, default=1000,
                    help="test images for the accuracy check (default 1000; 0: none)")  # fmt: skip
    im.add_argument("--calibration", help=".onnx: calibration images' dataset (default: "
                    "--dataset; its train split)")  # fmt: skip
    im.add_argument("--calibration-images", type=int, default=500,
                    help=".onnx: calibration images (default 500)")  # fmt: skip
    im.add_argument("--data-dir", help="dataset folder (default: $ACCELSIM_DATA, else cache)")
    im.add_argument("--json", action="store_true", help="print one JSON document")
    im.set_defaults(func=commands.import_command)

    ex = sub.add_parser(
        "export", help="write a network (zoo name or model file) as a .tflite or SCALE-Sim topology"
    )
    ex.add_argument(
        "network", help="zoo name (lenet5, resnet20, ...) or model file (version 1 or 2)"
    )
    ex.add_argument(
        "--tflite", metavar="FILE", help="write a .tflite TFLite Micro runs (tflite extra)"
    )
    ex.add_argument(
        "--scalesim", metavar="DIR",
        help="write SCALE-Sim v3's topology CSV, config (for --arch) and layout file into DIR "
        "(a path ending in .csv: the topology alone)",
    )  # fmt: skip
    ex.add_argument("--arch", default="pe16x16",
                    help="architecture for the SCALE-Sim config (default pe16x16)")  # fmt: skip
    ex.add_argument(
        "--requantization", choices=("tflm", "xnnpack"), help="override the model's setting"
    )
    ex.add_argument("--json", action="store_true", help="print one JSON document")
    ex.set_defaults(func=commands.export)

    ev = sub.add_parser("eval", help="int8 accuracy of a workload's network on its dataset split")
    ev.add_argument("workload", help="workload YAML (e.g. workloads/lenet5.yaml) or a zoo name")
    ev.add_argument("--split", choices=("train", "test", "sample"), help="override dataset.split")
    ev.add_argument("--images", type=int, help="override dataset.images (first N images)")
    ev.add_argument("--batch-size", type=int, default=256, help="images per kernel call")
    ev.add_argument("--data-dir", help="dataset folder (default: $ACCELSIM_DATA, else user cache)")
    ev.add_argument("--json", action="store_true", help="print one JSON document")
    ev.set_defaults(func=commands.evaluate)

    an = sub.add_parser("analyze", help="NVF of every neuron, Table I, CSV and figure")
    an.add_argument("workload", help="workload YAML (e.g. workloads/lenet5.yaml)")
    an.add_argument(
        "--method",
        choices=("linear", "exact", "exact-bits", "exhaustive"),
        help="override analysis.method (exhaustive: every bit flip through the campaign engine)",
    )
    an.add_argument(
        "--mapping", choices=("log2", "paper", "value"), help="override analysis.bit_mapping"
    )
    gc = an.add_mutually_exclusive_group()
    gc.add_argument("--gradient-check", dest="gradient_check", action="store_true", default=None)
    gc.add_argument("--no-gradient-check", dest="gradient_check", action="store_false")
    an.add_argument("--images", type=int, help="override analysis.images")
    an.add_argument("--split", choices=("train", "test", "sample"), help="override analysis.split")
    an.add_argument("--data-dir", help="dataset folder (default: $ACCELSIM_DATA, else user cache)")
    an.add_argument("--output-dir", help="override the workload's output_dir")
    an.add_argument("--workers", type=int, default=1, help="processes for --method exhaustive")
    an.add_argument("--force", action="store_true", help="recompute even if a saved result matches")
    an.add_argument("--json", action="store_true", help="print one JSON document")
    an.set_defaults(func=commands.analyze)

    pr = sub.add_parser("protect", help="protection plans at an NVF threshold: overhead per mode")
    pr.add_argument("workload", help="workload YAML (e.g. workloads/lenet5.yaml)")
    pr.add_argument("--threshold", type=float, default=20.0, help="NVF threshold in percent")
    pr.add_argument("--eval-images", type=int, help="images for the fault-free accuracy check")
    pr.add_argument("--images", type=int, help="override analysis.images (NVF)")
    pr.add_argument("--split", choices=("train", "test", "sample"), help="override analysis.split")
    pr.add_argument("--data-dir", help="dataset folder (default: $ACCELSIM_DATA, else user cache)")
    pr.add_argument("--output-dir", help="override the workload's output_dir")
    pr.add_argument("--json", action="store_true", help="print one JSON document")
    pr.set_defaults(func=commands.protect)

    inj = sub.add_parser(
        "inject", help="statistical fault-injection campaign: accuracy loss, critical faults"
    )
    inj.add_argument("workload", help="workload YAML (e.g. workloads/lenet5.yaml)")
    inj.add_argument(
        "--protection",
        choices=[m.value for m in ProtectionMode],
        default="none",
        help="protect neurons with NVF >= --threshold this way first (default: none)",
    )
    inj.add_argument("--threshold", type=float, default=20.0, help="NVF threshold in percent")
    inj.add_argument(
        "--faults",
        type=parse_faults,
        help="leveugle (sample size from faults.error_margin/confidence/p), exhaustive, or a "
        "count (default: the workload's faults.samples)",
    )
    inj.add_argument("--kind", choices=[k.value for k in FaultKind], help="override faults.kind")
    inj.add_argument("--bits", type=int, help="bits per fault for adjacent_bits/random_bits")
    inj.add_argument("--seed", type=int, help="override faults.seed")
    inj.add_argument(
        "--test-split", choices=("train", "test", "sample"), help="override dataset.split"
    )
    inj.add_argument("--test-images", type=int, help="override dataset.images (first N)")
    inj.add_argument("--images", type=int, help="override analysis.images (NVF, protected runs)")
    inj.add_argument("--split", choices=("train", "test", "sample"), help="override analysis.split")
    inj.add_argument("--workers", type=int, default=1, help="local worker processes (default 1)")
    inj.add_argument("--dask", metavar="tcp://HOST:PORT", help="run on this Dask scheduler")
    inj.add_argument("--batch-size", type=int, help="faults per task (default 64)")
    inj.add_argument("--resume", action="store_true", help="continue the campaign in the database")
    inj.add_argument("--data-dir", help="dataset folder (default: $ACCELSIM_DATA, else user cache)")
    inj.add_argument("--output-dir", help="override the workload's output_dir")
    inj.add_argument("--json", action="store_true", help="print one JSON document")
    inj.set_defaults(func=inject)

    sim = sub.add_parser(
        "simulate", help="cycle-level run on an architecture: cycles, stalls, traffic, overheads"
    )
    sim.add_argument("arch", help="architecture YAML (e.g. arch/pe16x16.yaml)")
    sim.add_argument("workload", help="workload YAML (e.g. workloads/lenet5.yaml)")
    sim.add_argument(
        "--protection",
        type=parse_modes,
        help="comma-separated modes to simulate next to the unprotected run (default: the "
        "workload's protection.modes)",
    )
    sim.add_argument("--threshold", type=float, default=20.0, help="NVF threshold in percent")
    sim.add_argument(
        "--top",
        type=float,
        metavar="PERCENT",
        help="protect the PERCENT %% most vulnerable neurons (sets the threshold from the NVF)",
    )
    sim.add_argument(
        "--ideal-memory",
        action="store_true",
        help="free transfers (SCALE-Sim's InterfaceBandwidth CALC): compute cycles only",
    )
    sim.add_argument("--trace", metavar="FILE", help="write the event log as CSV")
    sim.add_argument(
        "--pe-faults", type=int, help="also run N PE-datapath faults per mode (and N neuron faults)"
    )
    sim.add_argument(
        "--pe-site", choices=[s.value for s in PeSite], default="accumulator",
        help="register the PE faults hit (default: accumulator)",
    )  # fmt: skip
    sim.add_argument(
        "--permanent", action="store_true", help="stuck-at PE faults instead of transient flips"
    )
    sim.add_argument(
        "--test-images", type=int, default=200, help="images per PE fault (default 200)"
    )
    sim.add_argument("--seed", type=int, default=0, help="seed of the PE-fault sample")
    sim.add_argument(
        "--workers", type=int, default=1, help="local worker processes per PE campaign"
    )
    sim.add_argument("--dask", metavar="tcp://HOST:PORT", help="run PE campaigns on this Dask "
                     "scheduler")  # fmt: skip
    sim.add_argument("--resume", action="store_true", help="continue the PE campaigns stored "
                     "under the output folder")  # fmt: skip
    sim.add_argument("--images", type=int, help="override analysis.images (NVF)")
    sim.add_argument("--split", choices=("train", "test", "sample"), help="override analysis.split")
    sim.add_argument("--data-dir", help="dataset folder (default: $ACCELSIM_DATA, else user cache)")
    sim.add_argument("--output-dir", help="override the workload's output_dir")
    sim.add_argument("--json", action="store_true", help="print one JSON document")
    sim.set_defaults(func=simulate_command)

    data = sub.add_parser("data", help="datasets: fetch the official files, show where they are")
    dsub = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    fetch = dsub.add_parser("fetch", help="download and verify the official archives")
    fetch.add_argument("dataset", choices=("mnist", "cifar10"))
    fetch.add_argument("--data-dir", help="destination (default: $ACCELSIM_DATA, else user cache)")
    fetch.add_argument("--json", action="store_true", help="print one JSON document")
    fetch.set_defaults(func=commands.data_fetch)
    info = dsub.add_parser("info", help="which datasets and splits are found, and where")
    info.add_argument(
        "source", nargs="?", help="a .npz file or image folder of your own to inspect instead"
    )
    info.add_argument(
        "--data-dir", help="dataset folder (default: $ACCELSIM_DATA, else user cache)"
    )
    info.add_argument("--json", action="store_true", help="print one JSON document")
    info.set_defaults(func=commands.data_info)
    return parser


_FLAGS = {"top_percent": "--top", "dask_address": "--dask", "nvf_budget_seconds": "--nvf-budget"}


def flag_of(parameter: str) -> str:
    """The command-line flag that sets a library parameter."""
    return _FLAGS.get(parameter, "--" + parameter.replace("_", "-"))


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except AccelsimError as exc:  # the library names its parameters; the CLI, its flags
        message = exc.render(flag_of(exc.parameter)) if exc.parameter else str(exc)
        print(f"accelsim: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("accelsim: interrupted", file=sys.stderr)
        return 130
