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
# Most chest X-ray studies come with more than one film and a report, and most of them carry
# no curated label. Klug, Sutter & Vogt ask whether a generative model trained on all three
# modalities without any label, the MoPoE-VAE of Sutter et al., learns a latent space in
# which findings can be told apart, whatever subset of the modalities is at hand, and
# whether it can generate one modality from the others. Their evidence is a table of linear
# probes on the latent space of each of the seven subsets of {frontal, lateral, text}, and a
# figure of generated samples: with the frontal film among the inputs, they say, the
# samples are less blurry.
#
# This chapter rebuilds the study on the book's data: the cohort of complete studies, the
# model with its generalised ELBO (and, from the same code, the two joints the MoPoE paper
# compares it with), the probe table beside the paper's with bootstrap intervals, the
# generated samples, and two measurements the paper leaves to the eye: whether generated
# samples carry their study's finding (coherence) and how blurry they are (sharpness).

# %% tags=["parameters"]
data_root = None  # a real MIMIC-CXR (DICOM + reports) root; None: the default synthetic cohort
data_format = "mimic-cxr"  # the release layout the chapter reads (the DICOM release)
seed = 0  # one seed for the split, initialisation, batches, sampling and bootstrap
device = "auto"  # "auto" | "cpu" | "cuda" | "cuda:N" | "mps"
output_dir = None  # None: outputs/multimodal-vae/ under MMCXR_HOME or the checkout
synth_n = 1200  # studies in the synthetic cohort
synth_seed = 0  # seed of the synthetic cohort
synth_image_size = 64  # synthetic image height in pixels
synth_report_difficulty = 1.0  # report informativeness knob, 0 .. 1 least; set against the paper's T-alone probe, whose curve comes closest at 1 (mmcxr.calibration)
synth_image_difficulty = 0.0  # image conspicuity knob, 0 as drawn .. 1 hardest; not calibrated: the F-alone probe is already below the paper's at 0
split_fractions = [0.6, 0.15, 0.25]  # patient shares of train, validation and test
text_field = "findings_impression"  # report text modelled: findings + impression, report, findings or impression
image_size = 32  # side of the square films the VAE sees (the reference code: 128)
max_length = 48  # words per report, padded or cut (a multiple of 8; the median report here has 30)
vocab_size = 1000  # most frequent training-report words kept (the rest: <unk>)
min_word_count = 2  # a word enters the vocabulary if seen in this many training reports
latent_dim = 32  # size of the shared latent space
image_channels = 8  # channels of the first image convolution (doubling per level)
text_channels = 32  # word-embedding and text-convolution channels
likelihood_weighting = "size"  # per-modality likelihood weights: "size" (the reference code's rule) or "equal"
beta = 1.0  # weight of the KL term
laplace_scale = 0.75  # scale of the Laplace image likelihood
joints = ["mopoe", "poe", "moe"]  # joint posteriors trained: MoPoE (the paper), PoE (MVAE), MoE (MMVAE)
epochs = 40  # most training epochs (the book profile stops well before convergence)
batch_size = 32  # studies per batch
lr = 0.002  # Adam learning rate
patience = 5  # epochs without a lower validation loss before stopping
probe_c = 1.0  # inverse regularisation of the logistic-regression probes
n_bootstrap = 300  # bootstrap resamples of the test set for the 95% intervals
n_examples = 4  # test studies shown in the Figure 1 analogue
claim_tol = 0.0  # margin within which two numbers count as tied (the paper's own gaps are 0.001)
num_workers = 0  # worker processes for the image cache and the DataLoader
profile = "custom"  # set by the book's executor (smoke, book or full); "custom" for runs by hand

# %%
# %matplotlib inline
import pandas as pd
from IPython.display import Markdown, display

from mmcxr import calibration, claims, data, env, metrics, models, plots, runs
from mmcxr import chapter_page as page
from mmcxr.chapters import multimodal_vae as mv
from mmcxr.chapters import multimodal_vae_calibration as mvc
from mmcxr.chapters import multimodal_vae_results as mvr
from mmcxr.models import mvae
from mmcxr.synth import SynthConfig

PARAMS = page.open_chapter(mv.SLUG, globals(), mv.PARAMETERS)
out = env.output_dir(mv.SLUG, output_dir)

# %% [markdown]
# The defaults in the parameters cell are the `book` profile, sized for two CPU cores and a
# few minutes: 32-pixel films, a 32-dimensional latent space and a few epochs. `smoke` is a
# seconds-long check for the test suite and `full` the reference configuration for a GPU.
# The table lists every parameter on which the profiles differ, beside this run's values.

# %% tags=["remove-input"]
page.profile_table(mv.SLUG, PARAMS)

# %% [markdown]
# ## The cohort
#
# A study enters when it has a frontal film (PA, or AP when there is no PA), a lateral film
# and report text (the findings and impression sections: the header lines name the
# examination, which would hand the text a shortcut). The generalised ELBO is defined for
# any subset of modalities, so incomplete studies *could* train the model; we keep complete
# ones, as the reference code does, so that every study enters every one of the seven
# probes and the figure. The label "Finding" is 1 when any of the 13 pathologies of the
# CheXpert labeller is marked 1.0. Patients are split, stratified by that label, into
# training, validation and test studies.

# %%
root = data.resolve_root(data_format, data_root, n=synth_n, seed=synth_seed,
                         image_size=synth_image_size, config=SynthConfig.from_chapter(PARAMS))
# the metadata table answers for view and orientation (same values as the headers, see
# mmcxr.data.mimic); every selected film is decoded into the image cache below, which stops
# on a damaged one, so the loader need not read every header first
images = data.load_mimic_cxr(root, check_images=False)
cohort = mv.build_cohort(images, seed=seed, split_fractions=split_fractions,
                         text_field=text_field)
cohort.flow

# %% [markdown]
# {glue:text}`mv_n_studies` studies are complete, {glue:text}`mv_finding_share` of them with
# a finding. The paper does not give its cohort's size; its random baseline
# ({glue:text}`mv_paper_random`) says that about a quarter of its test studies had a finding,
# against {glue:text}`mv_test_finding_share` of ours. Average precision depends on that
# share, so the random row of each table is the yardstick, not the paper's numbers.

# %%
cohort.split_counts().style.format({"finding share": "{:.1%}"})

# %% [markdown]
# ### How hard the synthetic data are
#
# The synthetic cohort can make each modality as easy or as hard as one likes, and Table 1
# means something only when each modality alone tells about as much as in the paper. So one
# input is calibrated and nothing else: the report knob, measured against the probe on the
# report's latent alone, with the chapter's own `book` run at several knob values and seeds
# (`python -m mmcxr.calibration multimodal-vae`). Because average precision moves with the
# share of positives, the paper's numbers and ours are compared *normalised*, as the share
# of the way from random to perfect, (AP - random) / (1 - random). The knob weakens the
# report as evidence of the film: findings go unreported or only hedged. The CheXpert labels
# are read from the text, so they follow it, "Finding" grows rarer, and the films, drawn as
# before, now show findings the label does not count.

# %% tags=["remove-input"]
display(Markdown(mvc.status_markdown(PARAMS)))
calibration.plot_curve(mv.SLUG, title="T-alone probe against the report knob")

# %% [markdown]
# Films are decoded once into the `mmcxr prepare` cache at the training size; the word
# vocabulary is learnt from the training reports only. Three studies as the model sees them
# (frontal above, lateral below):

# %%
cache_dir = mv.image_cache_dir(out, cohort, image_size)
data.prepare(data_format, root, cache_dir, size=image_size, table=mv.image_table(cohort),
             workers=num_workers, overwrite="stale")
cache = data.ImageCache(cache_dir)
splits = mv.make_splits(cohort, cache, max_length=max_length, vocab_size=vocab_size,
                        min_count=min_word_count)
shown = mv.example_cases(cohort, 3, seed=seed)
plots.plot_image_grid(
    [splits.test.display_images(v)[i] for v in ("frontal", "lateral") for i in shown],
    [f"{v} ({'finding' if splits.test.labels[i] else 'no finding'})"
     for v in ("frontal", "lateral") for i in shown], ncols=3, panel_size=1.6, value_range=(0, 1))

# %% [markdown]
# ## The method
#
# Each modality has its own encoder to a Gaussian posterior and its own decoder: strided
# convolutions for the films, word embeddings and convolutions along the sequence for the
# reports (categorical likelihood per word, Laplace for pixels). The posteriors of a subset
# of modalities are multiplied (a product of experts has a closed form for Gaussians), and
# the joint posterior is a mixture over subsets. Which subsets enter the mixture is the only
# difference between the three methods:

# %%
page.show_source(mvae.poe, mvae.mixture_components)

# %% [markdown]
# The generalised ELBO reconstructs every modality from one sample of the joint posterior
# and penalises the KL of each mixture component from the prior. Likelihoods are weighted
# per modality (by the reference code's rule, the number of pixels of a film over the number
# of elements of the modality, so that a report is not drowned by the pixels):

# %%
page.show_source(mvae.MultimodalVAE.forward)

# %% [markdown]
# The MoPoE model of this run, on two test studies:

# %%
example = next(splits.test.batches(2))
models.model_summary(mv.build_model("mopoe", PARAMS, len(splits.vocab)), example, depth=2)

# %% [markdown]
# ## Three runs
#
# The same code with three joints: MoPoE (the paper), PoE only (MVAE) and MoE only (MMVAE).
# Each is trained by `mmcxr.train.fit` (Adam, early stopping on the validation ELBO, the best
# epoch's weights kept), checkpointed under the output folder: re-executing the chapter with
# the same parameters and data reuses finished runs.

# %%
store = runs.RunStore(out / "runs")
trained = mv.train_runs(PARAMS, splits, store, mv.data_fingerprint(cohort, cache), device=device)
pd.DataFrame({mv.JOINT_NAMES[j]: r.result.metrics for j, r in trained.items()}).T[
    ["best_epoch", "epochs_run", "best_val_loss"]]

# %% [markdown]
# Every term of the ELBO per epoch, on the validation studies (solid) and on as many training
# studies (dashed); the dot marks the epoch whose weights were kept. The KL grows as the
# posteriors move away from the prior, while the three reconstruction terms fall.

# %%
mvr.plot_curves(mv.histories(trained))

# %% [markdown]
# ## Table 1: what a linear probe reads from each subset
#
# For every run and subset, the latent representation (the posterior mean given only that
# subset) of the training studies fits a logistic regression for "Finding", scored by
# average precision on the test studies, with a 95% bootstrap interval. The random row is
# the test set's share of studies with a finding, the average precision a random score
# comes to. The paper's MoPoE row stands beside ours.

# %%
long = mv.latent_probe_predictions(trained, splits, c=probe_c)
table1 = mvr.table1_results(long, n_boot=n_bootstrap, seed=seed)
metrics.style_comparison(mvr.table1_comparison(table1))

# %%
mvr.plot_table1(table1)

# %% [markdown]
# From all three modalities the MoPoE probe reaches {glue:text}`mv_mopoe_lft_ap` (the paper:
# {glue:text}`mv_paper_lft_ap`), from the report alone {glue:text}`mv_mopoe_t_ap`
# ({glue:text}`mv_paper_t_ap`) and from the frontal film alone {glue:text}`mv_mopoe_f_ap`
# ({glue:text}`mv_paper_f_ap`), against a random {glue:text}`mv_random_ap`
# ({glue:text}`mv_paper_random`).
#
# ## Figure 1: generated samples
#
# Test studies (columns): their films above, then the films MoPoE generates from one
# posterior sample given (L, T), then given (F, L, T). Given (L, T) the frontal film is
# *generated* from the lateral and the report; given (F, L, T) it is reconstructed. Where the
# generated films of different studies look alike, the decoders have learnt little more than
# the average film: the blur the paper describes, taken to its end. The few epochs of the
# `book` profile leave the model there; the `full` profile trains it for long.

# %%
cases = mv.example_cases(cohort, n_examples, seed=seed)
fig1, texts = mvr.figure1(trained["mopoe"] if "mopoe" in trained else next(iter(trained.values())),
                          splits, cases, seed=seed)
fig1

# %% [markdown]
# The reports of the same studies, as the model reads them (its vocabulary, `<unk>` for the
# rest) and as it generates them (the most likely word at each position; padding is not
# shown, so a report generated as nothing but padding is marked so):

# %%
texts.style.set_properties(**{"white-space": "normal", "font-size": "0.8em"})

# %% [markdown]
# ## Beyond the paper: coherence and sharpness
#
# Two judges are trained on real training studies only: a logistic regression on the pixels
# of frontal films and one on the words of reports. Each then scores what a model generates
# for the test studies, given each subset; the AUROC with which the judge's score recovers
# the *conditioning* study's "Finding" label is the coherence of the generation (0.5: the
# sample says nothing about its study; the real test data's row is the ceiling). A value
# well below 0.5 is no better: the judge then reacts to something in the samples (their
# length, their brightness) that runs against the label, as it can when the samples are far
# from anything the judge was trained on.

# %%
judges = mv.train_judges(splits, seed=seed)
generation = mv.generation_table(trained, splits, judges, seed=seed, n_boot=n_bootstrap)
mvr.style_generation(generation, "coherence")

# %% [markdown]
# Sharpness is the mean gradient magnitude (Sobel) of the generated films over that of the
# same test studies' real films: a blurry film has weak edges, so "less blurry" becomes a
# larger number (1: as sharp as real films). Each interval resamples the test studies, a
# study's real and generated films together.

# %%
mvr.style_generation(generation, "sharpness")

# %% [markdown]
# Every subset and every study can be looked at in the same way. In JupyterLab the cell below
# is an explorer (choose a model, the conditioning subset and a test study); in the book it
# shows MoPoE's generations for the first and the last study of Figure 1 (one with a
# finding, one without) given each of the seven subsets, films above and reports below.

# %%
if page.interactive_session():
    display(mvr.explorer(trained, splits, seed=seed))
else:
    mopoe_run = trained["mopoe"] if "mopoe" in trained else next(iter(trained.values()))
    explored, explored_texts = mvr.plot_generations(mopoe_run, splits, [cases[0], cases[-1]],
                                                    seed=seed)
    display(explored)
    display(explored_texts.style.set_properties(**{"white-space": "normal", "font-size": "0.8em"}))

# %% [markdown]
# Given (L, T), MoPoE's generated frontal films have {glue:text}`mv_mopoe_f_sharpness_given_lt`
# of the real films' edge strength, and {glue:text}`mv_mopoe_f_sharpness_given_lft` given
# (F, L, T); its lateral films {glue:text}`mv_mopoe_l_sharpness_given_lt` and
# {glue:text}`mv_mopoe_l_sharpness_given_lft`. The frontal judge reads the finding from
# generated frontal films with an AUROC of {glue:text}`mv_mopoe_f_coherence_given_lt` given
# (L, T), from real ones with {glue:text}`mv_real_f_coherence`.
#
# ## Claims
#
# Each finding of the paper is a test on a results table, run on the paper's numbers and on
# ours. The generation claim has no number in the paper (its Figure 1 is judged by eye), so
# it is decided on ours only. Of the {glue:text}`mv_claims_total` claims,
# {glue:text}`mv_claims_hold` hold here and {glue:text}`mv_claims_fail` do not.

# %%
verdicts = mvr.evaluate_claims(table1, generation, tol=claim_tol)
claims_file = mvr.write_outputs(out, PARAMS, cohort=cohort, table1=table1,
                                generation=generation, runs=trained, verdicts=verdicts)
claims.show_claims(claims_file)

# %% tags=["remove-cell"]
for name, value in mvr.headline(cohort, table1, generation, verdicts).items():
    fmt = ".1%" if name.endswith("share") else ".3f" if isinstance(value, float) else "d"
    page.glue_value(f"mv_{name}", value, fmt)

# %% [markdown]
# ## Reading the verdicts
#
# - **What the data make easy, and what the knob cannot do.** The labels are read from the
#   report, here as on MIMIC-CXR, so the report carries the label by construction; the
#   report knob makes its words weaker evidence only where a small text model fails to
#   tell a hedge from a statement, and how often it fails changes from seed to seed. At the
#   knob's end the report's probe still stands at {glue:text}`mv_mopoe_t_nap` of the way from
#   random to perfect in this run (the paper: {glue:text}`mv_paper_t_nap`), the frontal
#   film's at {glue:text}`mv_mopoe_f_nap` ({glue:text}`mv_paper_f_nap`). The paper's seven
#   numbers lie within {glue:text}`mv_paper_spread` of each other, ours within
#   {glue:text}`mv_mopoe_spread`: the ordering among subsets decides the "all three highest"
#   claim, and a difference inside the bootstrap intervals is not a finding.
# - **Random features are not nothing.** A linear probe on the posterior mean of a briefly
#   trained (even an untrained) encoder is a probe on random projections of the input, which
#   already separate the classes somewhat; beating random says the input carries the label,
#   not that the VAE learnt it. The MVAE and MMVAE rows are the fairer yardstick for MoPoE.
# - **Reconstruction is not generation.** Given (F, L, T) the frontal film is reconstructed
#   from its own encoding, so a sharper frontal film there is expected of any VAE; the
#   lateral film is reconstructed in both conditions, which makes its sharpness the cleaner
#   test of whether the extra input helps.
# - **What the sharpness ratio can and cannot say.** Edge strength falls with blur but rises
#   with noise and with the chequerboard of transposed convolutions, and the claim compares
#   point values: where the intervals of (L, T) and (F, L, T) overlap, as they do when the
#   generated films are near the average film, the gap is not evidence either way,
#   whichever way the verdict falls.
#
# ## Exercises

# %% tags=["remove-input"]
page.exercises(mv.SLUG, [
    page.Exercise(
        "Model the whole report, header lines (examination, indication) included. Which "
        "rows of Table 1 move, and why would the examination line help the text-only probe?",
        parameter="text_field", value="report"),
    page.Exercise(
        "Give every modality the same likelihood weight, so that the report weighs as many "
        "nats per word as a film per pixel: what happens to the text coherence and to the subsets with T in Table 1?",
        parameter="likelihood_weighting", value="equal"),
    page.Exercise(
        "Train at 64 pixels. Are the generated films sharper relative to the real ones, and "
        "does the frontal film's probe gain on the report's?", parameter="image_size",
        value=64),
    page.Exercise(
        "Set the report knob back to 0, so that every finding on a film is stated plainly in "
        "its report. How far above the paper's do the subsets with T go, how common does "
        "'Finding' become, and which claims change?", parameter="synth_report_difficulty",
        value=0.0),
], PARAMS)
