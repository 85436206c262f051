"""``inject``: one statistical fault-injection campaign (``accelsim.prepare_campaign``) with a
progress bar, a summary with 95 % intervals and ``--json``; the library writes the files."""

from __future__ import annotations

import argparse
from pathlib import Path

from tqdm import tqdm

from accelsim import (
    CampaignInterrupted,
    CampaignOptions,
    CampaignResult,
    OutputLock,
    Summary,
    load_workload,
    prepare_campaign,
)
from accelsim.cli.common import emit, nvf_bar, text_table


def parse_faults(text: str) -> str | int:
    """--faults: leveugle, exhaustive or a positive count."""
    if text in ("leveugle", "exhaustive"):
        return text
    if text.isdigit() and int(text) > 0:
        return int(text)
    raise argparse.ArgumentTypeError(
        f"expected leveugle, exhaustive or a positive int, got {text!r}"
    )


def _options(args: argparse.Namespace) -> CampaignOptions:
    return CampaignOptions(
        protection=args.protection, threshold=args.threshold, faults=args.faults, kind=args.kind,
        bits=args.bits, seed=args.seed, test_split=args.test_split, test_images=args.test_images,
        images=args.images, split=args.split, workers=args.workers,
        dask_address=args.dask, batch_size=args.batch_size, resume=args.resume,
        data_dir=args.data_dir, output_dir=args.output_dir,
    )  # fmt: skip


def _summary_row(kind: str, s: Summary) -> list[str]:
    a, c, f = s.accuracy_loss_pp, s.critical_rate, s.faults_with_effect
    return [
        kind,
        s.group,
        f"{s.n_faults:,}",
        f"{a.value:.4f} ± {a.half_width:.4f}",
        f"{100 * c.value:.4f} ± {100 * c.half_width:.4f}",
        f"{100 * f.value:.2f} [{100 * f.lo:.2f}, {100 * f.hi:.2f}]",
    ]


HEADERS = ["group", "", "faults", "accuracy loss (pp)", "critical rate (%)",
           "faults w/ effect (%)"]  # fmt: skip


def inject(args: argparse.Namespace) -> int:
    """The campaign, with the workload's output folder held by this process."""
    options = _options(args)
    spec = load_workload(args.workload)
    with OutputLock(Path(args.output_dir or spec.output_dir)):
        with nvf_bar(spec, options.images) as bar:
            campaign = prepare_campaign(spec, options, on_nvf_progress=bar.update)
        with tqdm(
            total=len(campaign.faults), unit="fault", desc=f"inject {campaign.pnet.net.name} "
            f"({campaign.tag})", disable=None, leave=False, smoothing=0.05,
        ) as bar:  # fmt: skip
            try:
                result = campaign.run(on_progress=bar.update)
            except CampaignInterrupted as stop:
                print(f"\ninterrupted: {stop}; rerun with --resume to finish")
                return 130
    emit(args, result.document(), _lines(campaign.header, result))
    return 0


def _lines(header: str, r: CampaignResult) -> list[str]:
    rate = r.pairs_per_second or 0.0
    summaries = [("all", r.overall), *(("layer", s) for s in r.per_layer),
                 *(("bit", s) for s in r.per_bit)]  # fmt: skip
    return [
        f"{header}; golden accuracy {100 * r.golden_accuracy:.2f} %",
        f"time: {r.seconds:.1f} s ({rate:,.0f} fault x image evaluations/s)",
        f"{100 * r.fault_spec.confidence:g} % confidence intervals (± half-width; [lo, hi] for "
        "proportions)",
        *text_table(HEADERS, [_summary_row(k, s) for k, s in summaries]),
        "wrote: " + ", ".join(map(str, r.files)),
    ]
