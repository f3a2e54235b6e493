"""The biology blocks, one per module, each an ``equinox.Module`` built from its parameter card.

PK (``pk``, ``population_pk``) → pathway (target inhibition, ERK, HER3 escape) →
``nis`` (re-expression) with ``tsh`` → ``iodine`` (radioiodine kinetics) →
``dosimetry`` (absorbed dose) → ``response`` (kill, regrowth, RECIST) and
``toxicity``. A block never imports another block; the blocks import only jax
and the card reader (:mod:`raisim.io`). :mod:`raisim.core` couples them.
"""
