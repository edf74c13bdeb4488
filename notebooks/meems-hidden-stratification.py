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
# # MEEMS: multimodal semantic embeddings against hidden stratification
#
# **Paper:** Cooper & Vainio, *Multimodal Semantic Embeddings to Reduce Hidden Stratification in Medical Imaging Data* (`shared/papers/000_e6028d3d5c486beb.txt`).
#
# :::{admonition} Status: not yet reproduced
# :class: warning
# This chapter is a placeholder. The data it needs (`mimic-cxr` format) and the shared library
# exist; the experiments below are planned and will replace this page:
# :::
#
# - a Show-Attend-Tell captioner trained on frontal images and report text
# - the multimodal embedder and the MEEMS-embedding classifier against a ResNet-50 image baseline, binary and 14-label
# - attention maps over images, caption word-set IoU
# - PCA and clustering of the embedding space, and the hidden strata it uncovers

# %% tags=["parameters"]
data_root = None  # a real mimic-cxr root; None: the default synthetic cohort
seed = 0  # global random seed
device = "auto"  # "auto" | "cpu" | "cuda" | "cuda:N"
output_dir = None  # None: outputs/meems-hidden-stratification/

# %%
import mmcxr
from mmcxr import env

PARAMS = env.capture_parameters(globals())
info = env.report(PARAMS, device)
