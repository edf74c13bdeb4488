"""Numbers reported by Klug, Sutter & Vogt, *Multimodal Generative Learning on the MIMIC-CXR
Database* (shared/papers/003_be7a19ce2d92b55d.txt), typed once.

Table 1: mean average precision of a linear classifier for the label "Finding" on the MoPoE
latent representation of every subset of modalities (F frontal, L lateral, T text report),
on the test set, and the random baseline. Figure 1 (generated samples given (L, T) and
(F, L, T)) carries no number: the paper's verdict on it, "less blurry", is qualitative.
"""

from __future__ import annotations

import pandas as pd

#: Table 1, MoPoE row, by the paper's column names.
TABLE1: dict[str, float] = {
    "F": 0.467,
    "L": 0.460,
    "T": 0.473,
    "L,F": 0.476,
    "F,T": 0.493,
    "L,T": 0.475,
    "L,F,T": 0.494,
}
#: Table 1, "Random" row (one value spanning the columns).
RANDOM = 0.235

#: What the paper says of Figure 1 (no number is reported).
FIGURE1 = (
    "Figure 1: samples generated from (L, T) and from (F, L, T); with F as input the samples "
    "'are less blurry and smaller details are recognisable' (qualitative, no number)"
)

#: The reference configuration of the `full` profile: the paper defers to Sutter et al.
#: (ICLR 2021) and its public code for the method; image size and modalities from the issue.
RECIPE = {"image_size": 128, "modalities": ("frontal", "lateral", "text"), "joint": "mopoe"}


def table1() -> pd.DataFrame:
    """Table 1 as a tidy table: ``joint, subset, average_precision`` (+ the random row)."""
    rows = [{"joint": "mopoe", "subset": s, "average_precision": v} for s, v in TABLE1.items()]
    rows.append({"joint": "random", "subset": "-", "average_precision": RANDOM})
    return pd.DataFrame(rows)
