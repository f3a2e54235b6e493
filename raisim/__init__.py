"""raisim: TKI-induced redifferentiation of radioiodine-refractory thyroid cancer, simulated.

TKI exposure → ERK inhibition → NIS re-expression → radioiodine kinetics →
lesion absorbed dose → response. Internal time unit: hours, float64.

Importing raisim has no side effects; call :func:`raisim.configure` once, before
the first computation (float64, the XLA CPU flag, one CPU device per core)::

    import raisim
    raisim.configure()

The package is layered, each layer importing only those below it (enforced by
import-linter, ``pyproject.toml``): ``cli`` → ``sweep`` | ``calibration`` →
``engine`` → ``core`` → ``biology`` | ``protocol`` → ``runtime`` → ``io``.
The names below are the public API, re-exported from the layers.
"""

from ._version import __version__
from .biology.dosimetry import Dosimetry
from .biology.iodine import Iodine, IodineChannels
from .biology.nis import NIS
from .biology.pathway import TARGETS, Pathway, target_inhibition
from .biology.pk import PK, DoseTable, one_compartment_oral_closed_form
from .biology.population_pk import closed_form_central_mg, concentration_ng_ml, sample_population, solve_pk
from .biology.response import Response, dale_bed_gy, sphere_diameter_mm
from .biology.toxicity import Toxicity, without_adverse_events
from .biology.tsh import TSHForcing
from .calibration.emulator import ArmEmulator, fit_emulator, parameter_space, simulate_design
from .calibration.fit import (
    CalibrationConfig,
    fit_posterior,
    load_calibration_config,
    load_posterior,
    posterior_diagnostics,
    posterior_params,
    predictive_table,
    prior_params,
)
from .calibration.likelihood import TableLikelihood, numpyro_model
from .calibration.predict import predict_table
from .calibration.targets import arm_probabilities, table_targets
from .cli.pk_report import pk_report
from .cli.plots import predictive_figure
from .core.model import PatientModel, Schedule, Solution, solve
from .engine.batch import SolverSettings, run_cohort, simulate_cohort
from .engine.cohort import Cohort, cohort_from_patient, sample_cohort
from .engine.outcomes import LesionOutcome, PatientOutcome, ScanReadout
from .engine.simulate import SimulationResult, build_model, simulate
from .io.cards import Card, ParameterEntry, all_cards, card_values, load_card
from .io.errors import InputError
from .io.parameter_draws import overrides_from_values, prior_draws, read_draws
from .io.trials import TrialRow, TrialsTable, load_trials, parse_regimen
from .protocol.arms import arm_protocol, genotype_weights
from .protocol.scenarios import STANDARD_REGIMENS, tki_only_protocol
from .protocol.schedule import Course, build_doses, enumerate_courses
from .protocol.schema import Protocol, load_protocol, protocol_from_dict, protocol_json_schema
from .runtime import RuntimeNotConfigured, configure, require_x64, use_cpu_cores
from .sweep.config import load_sweep
from .sweep.runner import read_chunks, run_sweep
from .sweep.summary import summarise

__all__ = [
    "__version__",
    "configure",
    "require_x64",
    "RuntimeNotConfigured",
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
