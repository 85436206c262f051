"""accelsim: a cycle-level simulator of an int8 DNN accelerator for fault-resilience research.

The public API is the names below; the CLI and ``experiments/`` use nothing else (a test
parses their imports; docs/api.md documents them). Grouped by what they are for:

- inputs: architecture and workload specs, datasets, the int8 network and its model files;
- graph networks: TFLite int8 ops over named tensors (``Graph``), model files version 2, and
  ``.tflite`` export (``graph_to_tflite``) and import (``import_tflite``, ``import_model``);
- NVF: ``compute_nvf`` and its records, the cache (``save_nvf`` / ``load_nvf``), statistics;
- protection: plans from the NVF, the protected network, what a plan costs;
- campaigns: fault populations and samples, fault sources (neuron outputs, PE datapath), one
  engine (``run_campaign`` / ``run_stored``) and its SQLite store, summaries with intervals;
- timing: schedules, the SimPy model, the accelerator's fold-by-fold values, PE faults;
- the study: ``run_study`` (the headline sweep) and one call per CLI command
  (``analyze_workload``, ``protect_workload``, ``prepare_campaign`` / ``run_injection``,
  ``simulate_workload``), with frozen option records and result objects.
"""

from __future__ import annotations

__version__ = "0.1.0"

from types import ModuleType as _ModuleType

from accelsim import files
from accelsim.analysis.exhaustive import every_bit_flip
from accelsim.analysis.graph_nvf import (
    graph_every_bit_flip,
    graph_exhaustive_nvf,
    graph_nvf_variants,
)
from accelsim.analysis.graph_slopes import graph_logit_slopes
from accelsim.analysis.stats import (
    SetAgreement,
    critical_set_agreement,
    mean_absolute_error_pp,
    spearman,
    top_k_overlap,
)
from accelsim.analysis.store import analysis_key, load_nvf, save_nvf
from accelsim.analysis.store import write_csv as write_nvf_csv
from accelsim.analysis.vulnerability import LayerNvf, NvfResult, compute_nvf, compute_nvf_variants
from accelsim.config.arch import ArchSpec, Dataflow, PEArraySpec, load_arch
from accelsim.config.workload import (
    GRAPH_ZOO_NAMES,
    ZOO_NAMES,
    BitMapping,
    FaultKind,
    FaultSite,
    FaultSpec,
    NvfMethod,
    ProtectionMode,
    WorkloadSpec,
    load_workload,
)
from accelsim.datasets import DATASET_NAMES, SPLITS, Dataset, load_dataset, resolve_data_dir
from accelsim.datasets.fetch import fetch_dataset
from accelsim.errors import (
    AccelsimError,
    ConfigError,
    DatasetError,
    ModelFormatError,
    ParameterError,
    ShapeError,
    positive_int,
)
from accelsim.faults.campaign import (
    CampaignInputs,
    CampaignInterrupted,
    FaultSource,
    StoredCampaign,
    campaign_settings,
    evaluate_faults,
    fault_source,
    golden_state,
    neuron_faults,
    run_campaign,
    run_stored,
)
from accelsim.faults.graph_campaign import (
    GraphCampaignInputs,
    faulty_graph_classes,
    faulty_graph_output,
    graph_n_neurons,
    graph_neuron_nodes,
    sample_graph_faults,
)
from accelsim.faults.metrics import Estimate, Summary, summarize
from accelsim.faults.model import Fault, FaultBatch, fault_batch
from accelsim.faults.sampling import Population, build_population, sample_faults, sample_size
from accelsim.faults.store import FaultRows, open_store, read_rows
from accelsim.files import OutputLock
from accelsim.functional.graph import (
    Graph,
    GraphError,
    Node,
    TensorInfo,
    graph_forward,
    graph_from_network,
    quantize_graph_images,
    run_graph,
)
from accelsim.functional.graph_quantize import (
    asymmetric_params,
    float_graph_accuracy,
    float_graph_forward,
    quantize_graph,
    random_graph_weights,
)
from accelsim.functional.graphio import graph_hash, load_graph, save_graph
from accelsim.functional.layers import Conv2D, Dense, Flatten, MaxPool2D
from accelsim.functional.modelio import ZOO_DIR, load_network, network_hash, save_network
from accelsim.functional.models import (
    AnyNetwork,
    input_shape,
    layer_name,
    layer_sizes,
    load_model,
    model_hash,
    model_logits,
    model_predict,
    quantize_inputs,
)
from accelsim.functional.network import (
    Accuracy,
    Network,
    classify,
    forward,
    forward_all,
    predict,
    quantize_images,
    replace_neurons,
    resume,
)
from accelsim.functional.quantize import float_accuracy, quantize_network, with_tflite_multipliers
from accelsim.functional.reference import quantize_multiplier, tflite_multiplier
from accelsim.interop.model_import import ImportedModel, import_model
from accelsim.interop.scalesim_export import export_scalesim, scalesim_config
from accelsim.interop.tflite_file import export_tflite, graph_to_tflite, network_to_tflite
from accelsim.interop.tflite_import import ImportResult, ModelImportError, import_tflite
from accelsim.protection.graph_protected import (
    graph_ranges,
    protected_graph_classes,
    protected_graph_tensors,
    protected_graph_values,
    split_refusal,
)
from accelsim.protection.overhead import NetworkOverhead, network_overhead
from accelsim.protection.plan import (
    ProtectionPlan,
    load_plan,
    plan_from_neurons,
    plan_from_nvf,
    save_plan,
    splittable,
    threshold_for_top,
)
from accelsim.protection.protected import (
    ProtectedNetwork,
    profile_ranges,
    protected_layer,
    protected_logits,
    unprotected,
)
from accelsim.protection.tables import CorrectionCounts, lcu_table, voter_table
from accelsim.report.tables import (
    PAPER_TABLE_I,
    PAPER_THRESHOLDS,
    critical_table,
    fine_thresholds,
    format_critical_table,
)
from accelsim.timing.accelerator import LayerTiming, TimingReport
from accelsim.timing.graph_schedule import (
    graph_compute_cycles,
    graph_topology_csv,
    held_bytes,
    node_gemms,
    schedule_graph,
)
from accelsim.timing.graph_values import GraphPeCampaignInputs, graph_accelerator_logits
from accelsim.timing.pe_campaign import PeCampaignInputs, pe_fault_batch, pe_population, pe_source
from accelsim.timing.pe_faults import PeFault, PeSite, sample_pe_faults
from accelsim.timing.schedule import Schedule
from accelsim.timing.simulate import TimingOverhead, plan_schedule, simulate, timing_overhead
from accelsim.timing.values import accelerator_logits
from accelsim.zoo.architectures import ARCHITECTURES
from accelsim.zoo.graph_architectures import GRAPH_ARCHITECTURES

# The study (and through it matplotlib) loads on first use, not with ``import accelsim``:
# campaign workers and scripts that only run the engine do not pay for the figures.
_STUDY = {
    "accelsim.study.headline": ("ROW_HEADERS", "TABLE_I_HEADERS", "NvfChoice", "Scale", "Study",
                                "StudyOptions", "StudyResult", "prepare_study", "row_cells",
                                "run_study"),
    "accelsim.study.nvf": ("WorkloadNvf", "workload_nvf"),
    "accelsim.study.analysis": ("AnalysisResult", "analyze_workload"),
    "accelsim.study.protection": ("ModeProtection", "ProtectionOptions", "ProtectionResult",
                                  "protect_workload"),
    "accelsim.study.campaign": ("Campaign", "CampaignOptions", "CampaignResult",
                                "prepare_campaign", "run_injection", "summary_document"),
    "accelsim.study.simulation": ("ModeRun", "PeFaultRow", "SimulationOptions",
                                  "SimulationResult", "simulate_workload"),
}  # fmt: skip
_LAZY = {name: module for module, names in _STUDY.items() for name in names}

__all__ = sorted(  # every name imported above (subpackages aside, ``files`` kept) and the study's
    [name for name, value in globals().items() if not name.startswith("_")
     and name != "annotations" and (name == "files" or not isinstance(value, _ModuleType))]
    + list(_LAZY) + ["__version__"]
)  # fmt: skip


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'accelsim' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
