"""raisim: TKI-induced redifferentiation of radioiodine-refractory thyroid cancer, simulated.

TKI exposure → ERK inhibition → NIS re-expression → radioiodine kinetics →
lesion absorbed dose → response. Internal time unit: hours, float64.
"""

import warnings as _warnings

import jax as _jax

_jax.config.update("jax_enable_x64", True)
_warnings.filterwarnings("ignore", category=FutureWarning, module="arviz")

__version__ = "0.1.0"

from .dosimetry import Dosimetry  # noqa: E402
from .errors import InputError  # noqa: E402
from .iodine import Iodine, IodineChannels  # noqa: E402
from .model import PatientModel, Schedule, Solution, solve  # noqa: E402
from .nis import NIS  # noqa: E402
from .outcomes import LesionOutcome, PatientOutcome, ScanReadout  # noqa: E402
from .params import Card, ParameterEntry, all_cards, card_values, load_card  # noqa: E402
from .pathway import TARGETS, Pathway, target_inhibition  # noqa: E402
from .pk import PK, DoseTable, one_compartment_oral_closed_form  # noqa: E402
from .pkpop import closed_form_central_mg, concentration_ng_ml, sample_population, solve_pk  # noqa: E402
from .pkreport import pk_report  # noqa: E402
from .protocol import Protocol, load_protocol, protocol_from_dict, protocol_json_schema  # noqa: E402
from .response import Response, dale_bed_gy, sphere_diameter_mm  # noqa: E402
from .scenarios import STANDARD_REGIMENS, tki_only_protocol  # noqa: E402
from .schedule import Course, build_doses, enumerate_courses  # noqa: E402
from .simulate import SimulationResult, build_model, simulate  # noqa: E402
from .toxicity import Toxicity  # noqa: E402
from .trials import TrialRow, TrialsTable, load_trials, parse_regimen  # noqa: E402
from .tsh import TSHForcing  # noqa: E402

__all__ = [
    "Card",
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
