"""raisim: TKI-induced redifferentiation of radioiodine-refractory thyroid cancer, simulated.

TKI exposure → ERK inhibition → NIS re-expression → radioiodine kinetics →
lesion absorbed dose → response. Internal time unit: hours, float64.
"""

import os as _os
import warnings as _warnings


def _tune_xla_cpu() -> None:
    """Turn off XLA CPU's experimental "ynn" fusions for the pinned jaxlib (0.10.2).

    Measured on the 2-core CPU (BENCHMARKS.md): batched Tsit5 solves run ~2x faster
    without them. Set before jax starts its backend; skipped when XLA_FLAGS already
    names the option, when ``RAISIM_NO_XLA_TUNING=1``, or for another jaxlib (an XLA
    build that does not know the flag would abort).
    """
    from importlib.metadata import PackageNotFoundError, version

    flags = _os.environ.get("XLA_FLAGS", "")
    if _os.environ.get("RAISIM_NO_XLA_TUNING") == "1" or "ynn_fusion_type" in flags:
        return
    try:
        if version("jaxlib") != "0.10.2":
            return
    except PackageNotFoundError:
        return
    _os.environ["XLA_FLAGS"] = (flags + " --xla_cpu_experimental_ynn_fusion_type=").strip()


_tune_xla_cpu()

import jax as _jax  # noqa: E402

_jax.config.update("jax_enable_x64", True)
_warnings.filterwarnings("ignore", category=FutureWarning, module="arviz")

__version__ = "0.1.0"

from .arms import arm_protocol, genotype_weights  # noqa: E402
from .batch import SolverSettings, run_cohort, simulate_cohort  # noqa: E402
from .calibrate import (  # noqa: E402
    CalibrationConfig,
    fit_posterior,
    load_calibration_config,
    load_posterior,
    posterior_diagnostics,
    posterior_params,
    predictive_table,
    prior_params,
)
from .cohort import Cohort, cohort_from_patient, sample_cohort  # noqa: E402
from .devices import use_cpu_cores  # noqa: E402
from .dosimetry import Dosimetry  # noqa: E402
from .emulator import ArmEmulator, fit_emulator, parameter_space, simulate_design  # noqa: E402
from .errors import InputError  # noqa: E402
from .iodine import Iodine, IodineChannels  # noqa: E402
from .likelihood import TableLikelihood, numpyro_model  # noqa: E402
from .model import PatientModel, Schedule, Solution, solve  # noqa: E402
from .nis import NIS  # noqa: E402
from .outcomes import LesionOutcome, PatientOutcome, ScanReadout  # noqa: E402
from .params import Card, ParameterEntry, all_cards, card_values, load_card  # noqa: E402
from .pathway import TARGETS, Pathway, target_inhibition  # noqa: E402
from .pk import PK, DoseTable, one_compartment_oral_closed_form  # noqa: E402
from .pkpop import closed_form_central_mg, concentration_ng_ml, sample_population, solve_pk  # noqa: E402
from .pkreport import pk_report  # noqa: E402
from .plots import predictive_figure  # noqa: E402
from .predict import predict_table  # noqa: E402
from .protocol import Protocol, load_protocol, protocol_from_dict, protocol_json_schema  # noqa: E402
from .response import Response, dale_bed_gy, sphere_diameter_mm  # noqa: E402
from .runner import read_chunks, run_sweep  # noqa: E402
from .scenarios import STANDARD_REGIMENS, tki_only_protocol  # noqa: E402
from .schedule import Course, build_doses, enumerate_courses  # noqa: E402
from .simulate import SimulationResult, build_model, simulate  # noqa: E402
from .summary import summarise  # noqa: E402
from .sweep import load_sweep  # noqa: E402
from .targets import arm_probabilities, table_targets  # noqa: E402
from .toxicity import Toxicity, without_adverse_events  # noqa: E402
from .trials import TrialRow, TrialsTable, load_trials, parse_regimen  # noqa: E402
from .tsh import TSHForcing  # noqa: E402
from .uncertainty import overrides_from_values, prior_draws, read_draws  # noqa: E402

__all__ = [
    "overrides_from_values",
    "predictive_figure",
    "read_chunks",
    "ArmEmulator",
    "CalibrationConfig",
    "TableLikelihood",
    "arm_probabilities",
    "fit_emulator",
    "fit_posterior",
    "load_calibration_config",
    "load_posterior",
    "numpyro_model",
    "parameter_space",
    "posterior_diagnostics",
    "posterior_params",
    "predictive_table",
    "prior_draws",
    "prior_params",
    "read_draws",
    "simulate_design",
    "table_targets",
    "Card",
    "Cohort",
    "SolverSettings",
    "arm_protocol",
    "cohort_from_patient",
    "genotype_weights",
    "load_sweep",
    "predict_table",
    "run_cohort",
    "run_sweep",
    "sample_cohort",
    "simulate_cohort",
    "use_cpu_cores",
    "summarise",
    "Course",
    "DoseTable",
    "Dosimetry",
    "InputError",
    "Iodine",
    "IodineChannels",
    "LesionOutcome",
    "NIS",
    "PK",
    "ParameterEntry",
    "Pathway",
    "PatientModel",
    "PatientOutcome",
    "Protocol",
    "Response",
    "ScanReadout",
    "Schedule",
    "STANDARD_REGIMENS",
    "SimulationResult",
    "Solution",
    "TARGETS",
    "TSHForcing",
    "Toxicity",
    "without_adverse_events",
    "TrialRow",
    "TrialsTable",
    "all_cards",
    "build_doses",
    "build_model",
    "card_values",
    "closed_form_central_mg",
    "concentration_ng_ml",
    "dale_bed_gy",
    "enumerate_courses",
    "load_card",
    "load_protocol",
    "load_trials",
    "one_compartment_oral_closed_form",
    "parse_regimen",
    "pk_report",
    "protocol_from_dict",
    "protocol_json_schema",
    "sample_population",
    "simulate",
    "solve",
    "solve_pk",
    "sphere_diameter_mm",
    "target_inhibition",
    "tki_only_protocol",
]
