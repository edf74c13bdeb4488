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
# :::{admonition} Status: not yet reproduced
# :class: warning
# This chapter is a placeholder. The data it needs (`mimic-cxr` format) and the shared library
# exist; the experiments listed in the opening below are planned and will replace this page.
# Until then the chapter writes no `claims.json`, and the
# [scorecard](../generated/scorecard.md) lists it as not yet reproduced.
# :::

# %% tags=["parameters"]
data_root = None  # a real mimic-cxr root; None: the default synthetic cohort
seed = 0  # global random seed
device = "auto"  # "auto" | "cpu" | "cuda" | "cuda:N"
output_dir = None  # None: outputs/multimodal-vae/
profile = "custom"  # set by the book's executor (smoke, book or full); "custom" for runs by hand

# %%
from mmcxr import chapter_page as page
from mmcxr.params import common

PARAMS = page.open_chapter("multimodal-vae", globals(), common())

# %% [markdown]
# ## Exercises
#
# Each exercise changes one thing and asks what happens; the command under it makes the change.

# %% tags=["remove-input"]
page.exercises("multimodal-vae", [
    page.Exercise(
        "Which rows of the parameter table in the opening change, and which profile does "
        "the table now name?", profile="smoke"),
    page.Exercise(
        "What does the environment report under the opening say about the device and the "
        "number of CPU threads, and why does the `book` profile leave the choice to `auto`?",
        parameter="device", value="cpu"),
    page.Exercise(
        "The paper probes the latent space of every subset of modalities with a linear "
        "classifier. Read its Table 1: which subset should win if the report text carries the"
        " label, as it does by construction in the synthetic cohort? Write it as the claim "
        "this chapter's `claims.json` would carry."),
], PARAMS)
