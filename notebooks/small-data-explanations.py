# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: mmcxr (Python 3.11)
#     language: python
#     name: mmcxr
# ---

# %% [markdown]
# # Small data: multimodal classification and detection with explanations
#
# **Paper:** *Multimodal classification and detection in small data* (`shared/papers/002_fec24d92fd86ae33.txt`).
#
# :::{admonition} Status: not yet reproduced
# :class: warning
# This chapter is a placeholder. The data it needs (`openi` format) and the shared library
# exist; the experiments below are planned and will replace this page:
# :::
#
# - a 1-D CNN text model initialised from Word2Vec
# - a DenseNet121 image model pretrained on ChestX-ray14, then transferred
# - the concatenation multimodal model against both single-modality models
# - integrated gradients + unsupervised clustering ('sight sensitivity') for images, per-word scores for text

# %% tags=["parameters"]
data_root = None  # a real openi root; None: the default synthetic cohort
seed = 0  # global random seed
device = "auto"  # "auto" | "cpu" | "cuda" | "cuda:N"
output_dir = None  # None: outputs/small-data-explanations/

# %%
import mmcxr
from mmcxr import env

PARAMS = env.capture_parameters(globals())
info = env.report(PARAMS, device)
