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
# # A multimodal VAE over frontal, lateral and text
#
# **Paper:** Klug, Sutter & Vogt, *Multimodal Generative Learning on the MIMIC-CXR Database* (`shared/papers/003_be7a19ce2d92b55d.txt`).
#
# :::{admonition} Status: not yet reproduced
# :class: warning
# This chapter is a placeholder. The data it needs (`mimic-cxr` format) and the shared library
# exist; the experiments below are planned and will replace this page:
# :::
#
# - a MoPoE-VAE over frontal image, lateral image and report text
# - linear probes on the latent representation of every subset of modalities
# - conditionally generated samples

# %% tags=["parameters"]
data_root = None  # a real mimic-cxr root; None: the default synthetic cohort
seed = 0  # global random seed
device = "auto"  # "auto" | "cpu" | "cuda" | "cuda:N"
output_dir = None  # None: outputs/multimodal-vae/

# %%
import mmcxr
from mmcxr import env

PARAMS = env.capture_parameters(globals())
info = env.report(PARAMS, device)
