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
# # That's the wrong lung: are image-text alignments interpretable?
#
# **Paper:** *That's the Wrong Lung! Evaluating and Improving the Interpretability of Unsupervised Multimodal Encoders for Medical Data* (`shared/papers/004_c2f9737dcadaeb0b.txt`).
#
# :::{admonition} Status: not yet reproduced
# :class: warning
# This chapter is a placeholder. The data it needs (`mimic-cxr` format) and the shared library
# exist; the experiments below are planned and will replace this page:
# :::
#
# - a GLoRIA-style image-text encoder with local (region-word) alignments
# - alignment quality against Chest ImaGenome gold boxes (pixel AUROC, top-k IoU)
# - text perturbations (left/right swaps, shuffles) and subsets
# - retrained variants, including entity masking

# %% tags=["parameters"]
data_root = None  # a real mimic-cxr root; None: the default synthetic cohort
seed = 0  # global random seed
device = "auto"  # "auto" | "cpu" | "cuda" | "cuda:N"
output_dir = None  # None: outputs/alignment-interpretability/

# %%
import mmcxr
from mmcxr import env

PARAMS = env.capture_parameters(globals())
info = env.report(PARAMS, device)
