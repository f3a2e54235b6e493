"""Random streams: every draw of a virtual patient from ``(seed, stream, patient number)``.

A patient's draws never depend on the cohort size, its lane, batch, chunk or
device count, or the other streams: each stream is named (``pk:<drug>``,
``scan:<name>``, ``toxicity``, ``doses:<drug>``, the cohort's covariates) and
a patient's key is folded from the seed, the stream and its number. One
patient simulated alone (``raisim simulate --patient i``) and row ``i`` of a
cohort therefore draw the same numbers (common random numbers across
protocols too, so comparisons between durations are paired).
"""

from __future__ import annotations

import hashlib

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array


def stream_id(name: str) -> int:
    """A stable 31-bit integer for a stream name (drug, scan or purpose)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "little") & 0x7FFFFFFF


def patient_keys(seed: int, stream: str, index: np.ndarray) -> Array:
    """One PRNG key per patient number in ``index`` for the named stream."""
    base = jax.random.fold_in(jax.random.PRNGKey(seed), stream_id(stream))
    return jax.vmap(lambda i: jax.random.fold_in(base, i))(jnp.asarray(index, dtype=jnp.uint32))


def patient_normals(seed: int, stream: str, index: np.ndarray, k: int) -> np.ndarray:
    """Standard normals (dimensionless), shape ``(len(index), k)``; row i depends only on (seed, stream, index[i])."""
    keys = patient_keys(seed, stream, index)
    return np.asarray(jax.vmap(lambda key: jax.random.normal(key, (k,), dtype=jnp.float64))(keys))


def patient_uniforms(seed: int, stream: str, index: np.ndarray, k: int) -> np.ndarray:
    """Uniforms on [0, 1), shape ``(len(index), k)``; row i depends only on (seed, stream, index[i])."""
    keys = patient_keys(seed, stream, index)
    return np.asarray(jax.vmap(lambda key: jax.random.uniform(key, (k,), dtype=jnp.float64))(keys))


__all__ = ["patient_keys", "patient_normals", "patient_uniforms", "stream_id"]
