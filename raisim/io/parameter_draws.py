"""Parameter uncertainty: draws of the population parameters, as per-block overrides.

A *draw* is one set of population (typical) parameter values. Sweeps repeat
every grid cell for each draw with the same virtual patients, so the spread
over draws is the credible band of a cell's outcome. Draws come from

- ``typical``: one draw, the cards' typical values;
- ``prior``: the cards' priors for the named parameters (``card:name``),
  independent, truncated to the prior's bounds; the same seed gives the same
  draws;
- a posterior table (columns ``card:name``, one row per draw) once
  calibration has written one.

Each draw is returned as the ``overrides`` mapping that the model builders take
(:func:`raisim.engine.simulate.build_model`, :func:`raisim.engine.batch.typical_model`).
"""

from __future__ import annotations

import functools
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .cards import load_card
from .errors import InputError
from .files import check_input_file, check_path, read_input_bytes
from .model_identity import warn_if_model_changed
from .vocab import TARGET_IC50_KEYS

#: Parameters varied by ``source: prior`` when a sweep names none: the quantities the
#: reference calls most uncertain (genotype propensity, escape, ERK → NIS, uptake, radiosensitivity).
DEFAULT_PRIOR_PARAMETERS: tuple[str, ...] = (
    "biology/nis.yaml:erk_half_max",
    "biology/nis.yaml:hill",
    "biology/pathway.yaml:adaptive_gain",
    "biology/pathway.yaml:adaptive_t_half_h",
    "biology/iodine.yaml:lesion_uptake_l_per_h_per_g",
    "biology/iodine.yaml:lesion_retention_t_half_h",
    "biology/response.yaml:alpha_per_gy",
    "drugs/trametinib.yaml:ic50_mek_nM",
)

#: Blocks whose cards a draw may override, by card folder/name.
_BLOCK_OF_CARD = {
    "biology/pathway.yaml": "pathway",
    "biology/nis.yaml": "nis",
    "biology/iodine.yaml": "iodine",
    "biology/dosimetry.yaml": "dosimetry",
    "biology/response.yaml": "response",
    "biology/toxicity.yaml": "toxicity",
}


def check_parameter(name: str, source: str = "<input>", field: str = "parameters.vary") -> tuple[str, str]:
    """Split ``card:name`` and check the card and the parameter exist (InputError otherwise)."""
    card, sep, key = name.partition(":")
    if not sep or not card.endswith(".yaml"):
        raise InputError(source, field, "entries like biology/nis.yaml:erk_half_max (card:parameter)", got=name)
    if card not in _BLOCK_OF_CARD and not card.startswith("drugs/"):
        raise InputError(source, field, f"a card in {sorted(_BLOCK_OF_CARD)} or drugs/<drug>.yaml", got=name)
    params = load_card(card).parameters
    if key not in params:
        raise InputError(source, field, f"a parameter of {card}: {', '.join(sorted(params))}", got=name)
    return card, key


#: Cards of a posterior draw that are not model-block parameters: genotype shares (they
#: weight an arm's genotypes, :func:`raisim.protocol.arms.genotype_weights`) and the between-trial SD.
NOT_MODEL_CARDS = ("biology/population.yaml", "calibration/between_trial.yaml")


def overrides_from_values(values: dict[str, float]) -> dict[str, dict]:
    """``{"card:name": value}`` → the per-block overrides of the model builders.

    Drug IC50s go to the pathway block as ``"<key>:<drug>"``; other drug values to
    ``pk`` as ``{drug: {key: value}}``; biology cards to their block. Entries of
    :data:`NOT_MODEL_CARDS` are left out (they are not part of a patient's model).
    Values stay in each card's own unit.
    """
    out: dict[str, dict] = {}
    ic50_keys = set(TARGET_IC50_KEYS.values())
    for name, value in values.items():
        card, _, key = name.partition(":")
        if card in NOT_MODEL_CARDS:
            continue
        if card.startswith("drugs/"):
            drug = card.removeprefix("drugs/").removesuffix(".yaml")
            if key in ic50_keys:
                out.setdefault("pathway", {})[f"{key}:{drug}"] = float(value)
            else:
                out.setdefault("pk", {}).setdefault(drug, {})[key] = float(value)
        else:
            out.setdefault(_BLOCK_OF_CARD[card], {})[key] = float(value)
    return out


def _sample_prior(prior, rng: np.random.Generator, typical: float) -> float:
    kind = prior.dist
    for _ in range(1000):
        if kind == "lognormal":
            x = prior.median * math.exp(math.log(prior.gsd) * rng.standard_normal())
        elif kind == "normal":
            x = prior.mean + prior.sd * rng.standard_normal()
        elif kind == "beta":
            x = rng.beta(prior.a, prior.b)
        elif kind == "uniform":
            x = rng.uniform(prior.low, prior.high)
        else:  # fixed
            return typical
        lo, hi = getattr(prior, "lower", None), getattr(prior, "upper", None)
        if (lo is None or x >= lo) and (hi is None or x <= hi):
            return float(x)
    raise ValueError("could not draw inside the prior's bounds")


def prior_draws(names: list[str], n: int, seed: int) -> pd.DataFrame:
    """``n`` independent draws of the named parameters from their card priors (columns ``card:name``).

    Each value is in its card's unit (e.g. ``ic50_mek_nM`` in nM, ``*_t_half_h`` in h).
    """
    rng = np.random.default_rng([seed, 7])
    rows = []
    for _ in range(n):
        row = {}
        for name in names:
            card, key = check_parameter(name)
            entry = load_card(card).parameters[key]
            row[name] = _sample_prior(entry.prior, rng, entry.value)
        rows.append(row)
    return pd.DataFrame(rows, columns=list(names))


def typical_draws() -> pd.DataFrame:
    """One draw with no overrides: the cards' typical values."""
    return pd.DataFrame([{}])


def load_posterior(path: str | Path) -> pd.DataFrame:
    """Posterior draws of a ``posterior.nc`` as a table with ``card:parameter`` columns (one row per
    draw, values in each card's unit).

    Logs a warning, once per posterior, when the model it was fitted to (the hash in the
    ``manifest.json`` beside it) is not the model running now
    (:func:`raisim.io.model_identity.warn_if_model_changed`).
    """
    try:
        import arviz as az  # imported on use: arviz takes seconds to import

        idata = az.from_netcdf(str(path))
        cards = json.loads(idata.posterior.attrs["card_parameters"])
    except (OSError, KeyError, ValueError) as exc:
        raise InputError(
            path, "posterior", f"a posterior.nc written by raisim calibrate ({type(exc).__name__})"
        ) from None
    warn_if_model_changed(path)
    post = idata.posterior.stack(sample=("chain", "draw"))
    return pd.DataFrame({cards[v]: post[v].to_numpy() for v in cards})


#: The largest draws file read, bytes: a posterior of 4 chains x 1,000 draws of 30 parameters is
#: ~1 MiB, so anything this big is a wrong path.
MAX_DRAWS_FILE_BYTES = 256 << 20


def read_draws(path: str | Path, source: str | Path, field: str) -> pd.DataFrame:
    """A draws table from a ``posterior.nc`` (``raisim calibrate``) or a CSV with ``card:parameter`` columns.

    Values are in each card's unit (natural units, not the prior's normal scores). The table is
    checked by :func:`check_draws`: what a run would use is what ``check`` and ``--dry-run`` check.

    **Raises:**

    - `InputError` naming ``source`` and ``field``: a path that is not a regular file
      (:func:`raisim.io.files.check_input_file`), a file that is not a posterior or a CSV, or a table
      :func:`check_draws` refuses.
    """
    p = check_path(path, source, field)
    if p.suffix == ".nc":
        check_input_file(p, "posterior.nc or draws CSV", MAX_DRAWS_FILE_BYTES, source, field)
        table = load_posterior(p)
    else:
        data = read_input_bytes(p, "posterior.nc or draws CSV", MAX_DRAWS_FILE_BYTES, source, field)
        try:
            table = pd.read_csv(io.BytesIO(data))
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
            raise InputError(
                source, field, f"a readable posterior.nc or draws CSV ({type(exc).__name__})", got=str(p)
            ) from None
    return check_draws(table, source, field, p.name)


def check_draws(table: pd.DataFrame, source: str | Path, field: str, name: str = "draws") -> pd.DataFrame:
    """Check a draws table as a run reads it, and return it.

    **Arguments:**

    - `table`: one row per draw, columns ``card:parameter`` (card units).
    - `source`, `field`, `name`: where the table was given and its file name, for messages.

    **Raises:**

    - `InputError`: no rows; a column that is not a ``card:parameter`` of a model card (or of
      :data:`NOT_MODEL_CARDS`); a value that is not a finite number (a blank or NaN cell would
      silently fall back to the card's typical value).
    """
    if len(table) == 0 or len(table.columns) == 0:
        raise InputError(source, field, f"a draws table with at least one row and column ({name})")
    for column in table.columns:
        text = str(column)
        card, _, key = text.partition(":")
        if card in NOT_MODEL_CARDS:
            params = load_card(card).parameters
            if key not in params:
                raise InputError(
                    source, field, f"a parameter of {card} in {name}: {', '.join(sorted(params))}", got=text
                )
        else:
            check_parameter(text, source, f"{field} ({name} column)")
        values = pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(values)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise InputError(
                source,
                field,
                f"finite numbers in every cell of {name} (column {text}, draw {row})",
                got=str(table[column].iloc[row]),
            )
    return table


def evenly_spaced(table: pd.DataFrame, k: int) -> pd.DataFrame:
    """``k`` rows of ``table`` evenly spaced (all rows if it has fewer)."""
    idx = np.linspace(0, len(table) - 1, min(k, len(table))).round().astype(int)
    return table.iloc[idx].reset_index(drop=True)


def draws_as_overrides(table: pd.DataFrame) -> list[dict[str, dict]]:
    """One overrides mapping per row of a draws table (empty row = typical values)."""
    return [overrides_from_values({k: v for k, v in row.items() if pd.notna(v)}) for row in table.to_dict("records")]


def merge_overrides(base: dict[str, dict] | None, extra: dict[str, dict] | None) -> dict[str, dict]:
    """``extra`` applied on top of ``base`` (both ``{block: {name: value}}``; ``pk``: ``{drug: {key: value}}``)."""
    out: dict[str, dict] = {k: dict(v) for k, v in (base or {}).items()}
    for block, values in (extra or {}).items():
        if block == "pk":
            pk = {d: dict(v) for d, v in out.get("pk", {}).items()}
            for drug, kv in values.items():
                pk.setdefault(drug, {}).update(kv)
            out["pk"] = pk
        else:
            out.setdefault(block, {}).update(values)
    return out


@dataclass(frozen=True)
class ParameterSet:
    """Where one patient's population parameters come from.

    ``source``: ``"typical"`` (the cards) or ``"posterior"``; ``draw``: the posterior draw's row
    number (None for typical); ``overrides``: the values as per-block overrides (card units);
    ``n_draws``: the posterior's draws (a count); ``central``: the draw is the one nearest the
    median (:func:`central_draw`); ``describe()``: one line for headers and manifests.
    """

    source: str
    draw: int | None
    overrides: dict
    path: str | None = None
    n_draws: int | None = None
    central: bool = False

    def describe(self) -> str:
        """One line, e.g. ``posterior draw 647 of 4000, nearest the median (posterior.nc)``."""
        if self.source == "typical":
            return "typical values (parameter cards)"
        which = ", nearest the median" if self.central else ""
        return f"posterior draw {self.draw} of {self.n_draws}{which} ({self.path})"


def shipped_posterior() -> Path:
    """The posterior that ships with raisim (``models/posterior/posterior.nc``)."""
    from .cards import card_path

    return card_path("posterior/posterior.nc")


def central_draw(table: pd.DataFrame) -> int:
    """The row of a draws table nearest the posterior median, in the priors' normal scores.

    Each ``card:parameter`` column is scored on its prior's scale (log-normal: ln(value/median)/ln gsd;
    normal: (value − mean)/sd; other priors and non-card columns: standardised by the draws' own
    spread); the row with the smallest sum of squared distances from the columns' medians wins.
    """
    scores = []
    for col in table.columns:
        v = table[col].to_numpy(dtype=float)
        prior = None
        card, sep, key = col.partition(":")
        if sep:
            try:
                prior = load_card(card).parameters[key].prior
            except (KeyError, InputError, OSError):
                prior = None
        if prior is not None and prior.dist == "lognormal" and np.all(v > 0):
            z = np.log(v / prior.median) / math.log(prior.gsd)
        elif prior is not None and prior.dist == "normal":
            z = (v - prior.mean) / prior.sd
        else:
            sd = np.std(v)
            z = (v - np.median(v)) / sd if sd > 0 else np.zeros_like(v)
        scores.append(z - np.median(z))
    if not scores:
        return 0
    return int(np.argmin(np.sum(np.square(np.stack(scores, axis=1)), axis=1)))


@functools.lru_cache(maxsize=4)
def _posterior_table(path: str) -> pd.DataFrame:
    return read_draws(path, path, "posterior")


def parameter_set(parameters: str | int = "posterior", posterior: str | Path | None = None) -> ParameterSet:
    """The parameters of one simulated patient.

    **Arguments:**

    - `parameters`: ``"typical"`` (the cards' values), ``"posterior"`` (the draw nearest the
      posterior median, :func:`central_draw`) or a draw number (a row of the posterior).
    - `posterior`: a ``posterior.nc`` or draws CSV (default: the shipped one).

    **Returns:**

    The :class:`ParameterSet`.

    **Raises:**

    - `InputError`: an unknown name or a draw number outside the posterior.
    """
    if parameters == "typical":
        return ParameterSet("typical", None, {})
    path = Path(posterior) if posterior is not None else shipped_posterior()
    table = _posterior_table(str(path))
    if parameters == "posterior":
        draw = central_draw(table)
    elif isinstance(parameters, int | np.integer) and not isinstance(parameters, bool):
        draw = int(parameters)
        if not 0 <= draw < len(table):
            raise InputError(path, "--draw", f"a draw number from 0 to {len(table) - 1}", got=draw)
    else:
        raise InputError("<parameters>", "parameters", "typical, posterior or a posterior draw number", got=parameters)
    row = {k: float(v) for k, v in table.iloc[draw].items() if pd.notna(v)}
    return ParameterSet("posterior", draw, overrides_from_values(row), path.name, len(table), parameters == "posterior")
