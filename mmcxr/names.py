"""The names of the files that mark and describe a synthetic cohort, spelled once.

Three layers must agree on them: :mod:`mmcxr.synth` writes the files at a cohort's root,
:mod:`mmcxr.data` reads them (cache staleness, the ground-truth loader) and
:mod:`mmcxr.provenance` tells a synthetic root from a real one by the first. The data layer
must not import the generator (it reads real releases without it) and the publishing guard
must import neither, so the names live in this module, which imports nothing. They are part
of what the generator writes, so :func:`mmcxr.synth.fingerprint.generator_fingerprint`
hashes this file too: renaming one regenerates every cached cohort instead of leaving it
with files under the old name.
"""

from __future__ import annotations

__all__ = ["CONFIG_FILE", "GROUND_TRUTH_FILE"]

CONFIG_FILE = "synthetic_config.json"
"""At a synthetic root only: the planted structure (``config``), the generator's arguments and
its fingerprint. Its presence is what makes a root synthetic."""

GROUND_TRUTH_FILE = "synthetic_ground_truth.csv.gz"
"""At a synthetic root only: what was drawn in each image (the answer key real data lacks)."""
