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
# A classifier can score well on a test set and still fail, reliably, on a subset of it: the
# pneumothorax that has no chest tube yet, the lesion too faint to see. Oakden-Rayner called
# this *hidden stratification*. Cooper & Vainio ask whether a model that has learnt to
# *describe* an image, as a radiologist's report would, gives an embedding in which such
# subsets are better served. Their MEEMS captions an image with a Show, Attend and Tell
# model, concatenates the image features with the captioner's hidden state, embeds the
# result and classifies from the embedding, against a ResNet trained on the pixels alone.
#
# The paper could only *discuss* hidden stratification: MIMIC-CXR does not say which
# pneumothorax has a tube. Our synthetic cohort plants such strata, so this chapter
# rebuilds the pipeline and then *measures* per-stratum performance, and tries to find the
# weak slices without being told where they are.

# %% tags=["parameters"]
data_root = None  # a real MIMIC-CXR (DICOM) root; None: the default synthetic cohort
data_format = "mimic-cxr"  # the release layout the chapter reads (DICOM + reports)
synth_n = 1500  # studies in the synthetic cohort (about one frontal film each)
synth_seed = 0  # seed of the synthetic cohort
synth_image_size = 128  # synthetic image height in pixels
synth_image_difficulty = 0.13  # image conspicuity knob, 0 as drawn .. 1 hardest; calibrated to the paper's ResNet baseline binary AUC (mmcxr.calibration)
seed = 0  # one seed for splits, initialisation, batches and clustering
device = "auto"  # "auto" | "cpu" | "cuda" | "cuda:N"
output_dir = None  # None: outputs/meems-hidden-stratification/
split_shares = [0.25, 0.35, 0.1, 0.3]  # image shares of D_captioning, D_embedding, D_val, D_test (paper: 0.326, 0.650, 0.009, 0.015)
image_size = 64  # side of the square training image (the paper: 224-256)
image_backbone = "resnet10-half"  # MONAI ResNet of mmcxr.models.IMAGE_ENCODERS (paper: resnet50)
attention_stage = "layer3"  # ResNet stage whose map the captioner attends over (4x4 regions at 64 px; at layer2, 8x8, the book-scale captions ignore the film; paper: the last, 7x7 or 8x8)
extractor_epochs = 6  # epochs of the feature extractor on D_captioning (14 labels)
baseline_epochs = 6  # epochs of each ResNet baseline on D_embedding (paper: 20 binary, 9 14-label)
vocab_size = 300  # caption vocabulary, most frequent words of D_captioning (paper: all of its words)
max_words = 30  # caption length in words (longer reports are cut)
word_dim = 50  # word-embedding size (paper: 200, BioWordVec)
word_vectors = None  # local word2vec-format file (e.g. BioWordVec); None: Word2Vec trained on the captioning reports
decoder_dim = 128  # LSTM hidden size (paper, after Show-Attend-Tell: 512)
attention_dim = 64  # attention network size (paper: 512)
caption_epochs = 20  # most captioner epochs (paper: 50)
caption_lr = 0.005  # captioner Adam learning rate (paper: 4e-4; higher here: 12 steps an epoch)
caption_sample = 64  # images per split scored each epoch (paper: 1,000)
beam = 3  # beam width (paper: 3)
embed_dims = [1000, 200]  # multimodal embedder widths (paper: 1,000 -> 200)
classifier_hidden = 50  # embedding classifier hidden width (paper: 50)
classifier_epochs = 30  # most MEEMS classifier epochs (paper: 50)
batch_size = 32  # batch size
lr = 0.001  # Adam learning rate (paper: 4e-4 for every model; higher here for few epochs)
plateau_patience = 3  # epochs without lower validation loss before the rate drops x0.1 (paper: 3)
patience = 5  # early stopping (paper: 5)
slice_clusters = 3  # k-means clusters per class in slice discovery
n_bootstrap = 200  # bootstrap resamples for the 95% intervals
claim_tol = 0.01  # difference below which two numbers count as tied
profile = "custom"  # set by the book's executor (smoke, book or full); "custom" for runs by hand

# %%
# %matplotlib inline
import warnings

import numpy as np
import pandas as pd
from IPython.display import HTML, Markdown, display

import mmcxr
from mmcxr import calibration, data, env, runs
from mmcxr import chapter_page as page
from mmcxr.chapters import meems as mm
from mmcxr.chapters import meems_captions as mc
from mmcxr.chapters import meems_results as mr
from mmcxr.models import captioner as cap
from mmcxr.synth import SynthConfig

PARAMS = page.open_chapter(mm.SLUG, globals(), mm.PARAMETERS)
out = env.output_dir(mm.SLUG, output_dir)

# %% [markdown]
# The defaults above are the `book` profile, sized for two CPU cores: a cohort of
# {glue:text}`mm_n_images` frontal films instead of {glue:text}`mm_paper_images`, 64-pixel
# images, a ResNet-10 of half width instead of a ResNet-50, a small vocabulary and few epochs.
# The `full` profile is the paper's recipe for a GPU. The table lists what the profiles
# change:

# %% tags=["remove-input"]
page.profile_table(mm.SLUG, PARAMS)

# %% [markdown]
# ## The cohort and its four splits
#
# The paper cuts MIMIC-CXR into four patient-disjoint sets: $D_{captioning}$ trains the
# captioner (and the feature extractor), $D_{embedding}$ trains the baseline and the MEEMS
# classifier, $D_{val}$ validates everything and $D_{test}$ scores it. Its validation and test
# sets are tiny shares (0.9% and 1.5%) of a huge cohort; at our size those shares would leave a
# few dozen films, so the `book` profile gives them 10% and 30% (the `full` profile uses the
# paper's shares). Splits are dealt by patient, to image shares.

# %%
root = data.resolve_root(data_format, data_root, n=synth_n, seed=synth_seed,
                         image_size=synth_image_size, config=SynthConfig.from_chapter(PARAMS))
images = data.load_mimic_cxr(root, progress=False, check_images=False)
cohort = mm.build_cohort(images, shares=dict(zip(mm.SPLITS, split_shares, strict=True)), seed=seed)
cohort.flow

# %%
mm.split_table(cohort)

# %% [markdown]
# Images are decoded once into the `mmcxr prepare` cache at the training size. The
# synthetic cohort's answer key (which film has a chest tube, which lesion is subtle, which
# film is portable) is read for evaluation only; a real root has none, and the
# stratification section is then skipped.

# %%
cache_dir = mm.image_cache_dir(out, cohort, image_size)
data.prepare(data_format, root, cache_dir, size=image_size,
             table=cohort.table[["dicom_id", "path"]], overwrite="stale")
cache = data.ImageCache(cache_dir)
try:
    gt = data.load_ground_truth(root)
except data.DataError:
    gt = None
store = runs.RunStore(out / "runs")
data_fp = mm.data_fingerprint(cohort, cache)

# %% [markdown]
# How hard the synthetic films are is a setting of the cohort, not an accident of it. A
# cohort whose films are much easier than MIMIC-CXR's would flatter both models and say
# nothing about the paper's comparison, so the image difficulty was calibrated to the paper's
# *image-only* number, the ResNet baseline's binary AUC, and to nothing else (the
# synthetic-cohort chapter shows the curve):

# %% tags=["remove-input"]
display(Markdown(calibration.status_markdown(calibration.chapter_status(mm.SLUG, PARAMS))))

# %% [markdown]
# ## The feature extractor
#
# A ResNet is trained on $D_{captioning}$ to predict the 14 labels, then frozen: its pooled
# vector is MEEMS's image feature, and the map of one of its stages is what the captioner
# attends over.

# %%
extractor = mm.train_image_model("extractor", "14-label", PARAMS, cohort, cache, store, data_fp,
                                 device=device)
features = mm.extract_features(PARAMS, cohort, cache, store, data_fp)
grid = features.predictions["maps"].shape[2:]
pd.DataFrame({"pooled features": [features.predictions["pooled"].shape[1]],
              "attention regions": [f"{grid[0]} x {grid[1]}"],
              "region channels": [features.predictions["maps"].shape[1]]})

# %% [markdown]
# ## The generative captioner
#
# Show, Attend and Tell: an attention network of three fully-connected layers (the last one
# scores each region) and an LSTM decoder with four fully-connected layers (initial hidden and
# cell state, the attention gate, the vocabulary scores). Reports are read as the paper's
# Figure 1 shows them: sections merged, punctuation removed. Word embeddings start from
# Word2Vec trained on the $D_{captioning}$ reports (the paper used BioWordVec; a local file
# loads through `word_vectors`). Training uses teacher forcing, Adam, a learning rate divided
# by ten after three epochs without progress and early stopping after five; captions are
# generated by beam search of width three. The `book` profile attends over the ResNet's third
# stage: over the finer maps of the second, the small book-scale captioner wrote a handful of
# normal templates whatever the film showed (an exercise below tries it). This is the code
# that runs:

# %%
page.show_source(cap.SoftAttention, cap.ShowAttendTell.step, cap.beam_search)

# %%
captions = mm.train_captioner(PARAMS, cohort, features, store, data_fp, device=device)
vocab = cap.CaptionVocab(captions.metrics["vocab"])
history = captions.history
history[["epoch", "train_loss", "val_loss", "lr", "val_iou", "val_bleu4", "val_label_agreement"]]

# %% [markdown]
# The paper's Figure 3 shows the loss and the word-set IoU between generated and true captions
# per epoch, on samples of 1,000 images; we add BLEU-4 and a clinical score: the cohort's
# labeller run on the generated caption and on the true report, and the share of the 14
# label decisions on which they agree. The dotted lines are what a "captioner" that ignores
# the film reaches by writing the most common training report for every validation film:
# beating them on IoU and BLEU-4 takes only the reports' phrasing, beating them on label
# agreement takes reading the film.

# %%
constant = mm.constant_caption_scores(cohort, PARAMS)
fig = mc.plot_caption_curves(history, constant)

# %% [markdown]
# Six held-out films, with the generated caption, the report as the captioner reads it, and
# the findings the cohort's labeller finds in each:

# %%
mc.caption_examples(cohort, captions, max_words=max_words)

# %% [markdown]
# ## Attention maps (Figure 4)
#
# The attention of the first ten generated words of a held-out film, overlaid on the image,
# with the generated and the true caption (a film whose caption names a finding it has, when
# there is one). Where the caption names a finding that the film has, that finding's planted
# box is drawn in red.

# %%
t = cohort.table
held = np.flatnonzero(t["split"].isin(["val", "test"]).to_numpy())
alphas, texts = captions.predictions["alphas"], captions.predictions["captions"]
named = [i for i in held if any(mc.FINDING_WORDS.get(w) and t[f"y_{mc.FINDING_WORDS[w]}"].iloc[i] == 1
                                for w in str(texts[i]).split())]
example = named[0] if named else held[0]
box = None
if gt is not None:
    g = gt.set_index("dicom_id").loc[t["dicom_id"].iloc[example]]
    for w in str(texts[example]).split():
        f = mc.FINDING_WORDS.get(w)
        if f and isinstance(g.get(f"box_{f}"), str):
            box = cache.geometry(t["dicom_id"].iloc[example]).map_box(
                data.parse_box(g[f"box_{f}"]))
            break
img = cache.get([t["dicom_id"].iloc[example]])[0]
mmcxr.plots.plot_attention_words(img, alphas[example], str(texts[example]).split(), grid,
                                 truth=" ".join(cap.caption_words(t["text"].iloc[example])),
                                 caption=str(texts[example]), box=box)

# %% [markdown]
# Because the findings are planted with boxes, we can ask what the paper could only look at:
# when the captioner asserts a finding that the film has (the cohort's labeller reads the
# caption as positive for it, so "no effusion" does not count), does the attention of the
# finding's word fall inside the finding's box more than chance? The *mass* is the share of the
# word's attention inside the box (chance: the box's share of the image), the *hit* whether
# the most attended region is inside.

# %%
hits = mc.attention_hits(cohort, captions, gt, cache, grid) if gt is not None else pd.DataFrame()
hit_summary = (hits.groupby("finding")[["mass", "chance mass", "hit"]].mean()
               .assign(n=hits.groupby("finding").size()) if len(hits) else hits)
hit_summary

# %% [markdown]
# In JupyterLab, a viewer steps through the images and the words of their captions; the book
# shows the static figure above.

# %%
if mc.interactive_session():
    sample = held[:50]
    display(mc.attention_viewer(cache.get(t["dicom_id"].iloc[sample].tolist()), alphas[sample],
                                texts[sample], grid))

# %% [markdown]
# ## MEEMS and the baseline
#
# The multimodal embedder concatenates the frozen image features with the captioner's hidden
# state after its beam-searched caption, and maps them through two fully-connected layers
# (1,000 and 200 units, as in the paper); the embedding classifier is an MLP 200 → 50 → out.
# Embedder and classifier are trained together on $D_{embedding}$, once for the binary task
# (Finding / No Finding) and once for the 14 labels. The baseline is the same ResNet trained
# on the raw $D_{embedding}$ films.

# %%
page.show_source(mm.Meems)

# %%
vectors = mm.meems_vectors(features, captions)
trained = {}
for task in mm.TASKS:
    trained[f"baseline-{task}"] = mm.train_image_model("baseline", task, PARAMS, cohort, cache,
                                                       store, data_fp, device=device)
    trained[f"meems-{task}"] = mm.train_meems(task, PARAMS, cohort, vectors, store, data_fp,
                                             device=device)
pd.DataFrame({n: r.metrics for n, r in trained.items()}).T

# %% [markdown]
# ## Results beside the paper's
#
# Test metrics with 95% bootstrap intervals ({glue:text}`mm_n_test` test films). AUC is the
# mean over classes (for the binary task, the paper's "average of the No Finding and Finding
# AUC", which equals the one AUC); micro AUC flattens the binarised label matrix; F1 is the
# mean over classes at 0.5; FNR and FPR are at the argmax (0.5) operating point, over all
# label decisions for the 14-label task. Our 14 labels are multi-label (a film may carry
# several), scored per label.

# %%
with warnings.catch_warnings():
    warnings.simplefilter("ignore", RuntimeWarning)
    results = mr.results_table(trained, n_boot=n_bootstrap, seed=seed)
mmcxr.metrics.style_comparison(mr.paper_table(results))

# %%
per_class = mr.per_class_auroc(trained, cohort)
per_class

# %% [markdown]
# ROC curves (Figures 6 and 7) and argmax confusion matrices (Figures 6 and 8; for the 14
# labels each film's true class is its first positive finding):

# %%
fig = mr.plot_rocs(trained)

# %%
fig = mr.plot_confusions(trained)

# %% [markdown]
# ## The embedding space (Figure 5)
#
# The 200-d MEEMS embeddings (of the 14-label model) of up to 1,000 $D_{embedding}$ films,
# normalised and projected by PCA to two and three dimensions, coloured by each film's first
# positive label, then the per-class grid. The paper judged the separation of No Finding by
# eye; we also measure it on $D_{test}$: a cross-validated linear probe and the silhouette of
# the two groups.

# %%
emb_idx = np.flatnonzero(t["split"].to_numpy() == "embedding")[:1000]
emb_all = trained["meems-14-label"].predictions["embedding_all"]
pca_2d_3d, pca_per_class = mr.plot_pca(emb_all[emb_idx], cohort.targets("14-label")[emb_idx])
display(pca_2d_3d, pca_per_class)

# %% [markdown]
# The paper also turned the 3-D view round; so does this player (it runs in the page):

# %%
HTML(mmcxr.plots.animate_embedding_pca(emb_all[emb_idx],
                                       mr.primary_label(cohort.targets("14-label")[emb_idx]),
                                       mm.LABELS))

# %%
separation = mr.embedding_separation(trained, cohort, seed=seed)
pd.Series(separation)

# %% [markdown]
# ## Hidden stratification, measured
#
# Each planted stratum pair is scored separately: pneumothorax with and without a chest tube
# (positives of the stratum against every film without pneumothorax, on the Pneumothorax
# output), obvious and subtle lung lesions (likewise), and the Finding task within portable
# AP and within department PA films. The *gap* is the easy stratum's AUROC minus the hard
# one's; a model less prone to hidden stratification has a smaller gap.

# %%
if gt is not None:
    strata = mr.strata_table(trained, cohort, gt, n_boot=n_bootstrap, seed=seed)
    slices = mr.discover_slices(trained, cohort, gt, k=slice_clusters, seed=seed)
else:
    strata = slices = None
strata

# %% [markdown]
# Then without the stratum labels: each class's positive test films are clustered (k-means on
# the model's own representation: MEEMS's embedding, the baseline's pooled ResNet features),
# the cluster with the highest mean error is taken as the discovered slice, and only then is
# it compared with the planted strata. A stratum counts as recovered when the slice holds a
# share of the hard stratum at least ten points above its share among all positives.

# %%
slices

# %% [markdown]
# ## Claims
#
# Each finding of the paper as a test, run on the paper's numbers and on ours. The paper gives
# no number for the embedding space, the minority classes or the strata, so those claims are
# undecided on its side. Of the {glue:text}`mm_claims_total` claims,
# {glue:text}`mm_claims_hold` hold here and {glue:text}`mm_claims_fail` do not.

# %%
ours = mr.claim_table(results, separation=separation, per_class=per_class, strata=strata,
                      slices=slices)
verdicts = mr.evaluate_claims(ours, tol=claim_tol)
extra = {"hit_rate": float(hits["hit"].mean()) if len(hits) else float("nan"),
         "hit_mass": float(hits["mass"].mean()) if len(hits) else float("nan"),
         "hit_chance": float(hits["chance mass"].mean()) if len(hits) else float("nan"),
         "n_hits": len(hits), **separation,
         **mc.caption_numbers(captions, cohort, constant, PARAMS),
         "strata_min_positives": int(strata["positives"].min()) if strata is not None else 0}
numbers = mr.headline(cohort, results, verdicts, extra=extra)
tables = {"per_class": per_class, "attention_hits": hits}
if strata is not None:
    tables |= {"strata": strata, "slices": slices}
claims_file = mr.write_outputs(out, PARAMS, cohort=cohort, results=results, tables=tables,
                               runs={"extractor": extractor, "captioner": captions, **trained},
                               verdicts=verdicts, headline_numbers=numbers)
mmcxr.claims.show_claims(claims_file)

# %% tags=["remove-cell"]
for name, value in numbers.items():
    page.glue_value(f"mm_{name}", value, ".3f" if isinstance(value, float) else "d")
page.glue_value("mm_hit_sentence", mc.hit_sentence(hits))
page.glue_value("mm_paper_images", sum(mm.reference.SPLITS.values()), ",d")

# %% [markdown]
# ## Reading the results
#
# - **Captions.** The captioner kept (epoch {glue:text}`mm_caption_best_epoch`, the lowest
#   validation loss) reaches a word-set IoU of {glue:text}`mm_val_iou` and a BLEU-4 of
#   {glue:text}`mm_val_bleu4` on the {glue:text}`mm_n_val` validation films, against
#   {glue:text}`mm_const_iou` and {glue:text}`mm_const_bleu4` for the most common training
#   report written for every one of them: the synthetic reports are templated, and those two
#   scores mostly measure their phrasing. The label agreement, {glue:text}`mm_val_label_agreement`
#   against {glue:text}`mm_const_label_agreement` for the most common report, is the test of
#   whether a caption says what *this* film shows; the captioner wrote
#   {glue:text}`mm_caption_distinct` distinct captions for {glue:text}`mm_n_held` held-out
#   films.
# - **Attention.** {glue:text}`mm_hit_sentence`
# - **Classification.** Binary AUC: baseline {glue:text}`mm_baseline_binary_auroc`, MEEMS
#   {glue:text}`mm_meems_binary_auroc` (the paper: {glue:text}`mm_paper_baseline_binary_auroc`
#   and {glue:text}`mm_paper_meems_binary_auroc`); 14-label mean AUC: baseline
#   {glue:text}`mm_baseline_14label_auroc`, MEEMS {glue:text}`mm_meems_14label_auroc` (the
#   paper: {glue:text}`mm_paper_baseline_14label_auroc` and
#   {glue:text}`mm_paper_meems_14label_auroc`). MEEMS reads a ResNet trained on
#   $D_{captioning}$ plus what the captioner says; the baseline is trained on the
#   $D_{embedding}$ films of its own task. With {glue:text}`mm_n_test` test films, differences
#   inside the intervals are not findings.
# - **Embedding.** A linear probe separates No Finding with AUROC {glue:text}`mm_probe_auroc`
#   (silhouette {glue:text}`mm_silhouette`).
# - **Strata.** The planted strata are small in the `book` cohort (the smallest has
#   {glue:text}`mm_strata_min_positives` test positives; see the positives column): a
#   per-stratum AUROC on a handful of films has an interval as wide as the gap it measures,
#   which is the paper's difficulty in another form: hidden strata are rare. The `full`
#   profile, or a larger `synth_n`, is where the gaps can be told apart.
#
# What this page leaves out: the paper's supplementary training curves of every classifier
# (their histories are in `metrics.json`). The `book` profile cuts the cohort, image size, network, vocabulary and
# epochs as listed in the profile table.
#
# ## Exercises

# %% tags=["remove-input"]
page.exercises(mm.SLUG, [
    page.Exercise(
        "Caption with greedy decoding instead of a beam of three. Do IoU, BLEU-4 and label "
        "agreement change, and does MEEMS's AUC move with them?", parameter="beam", value=1),
    page.Exercise(
        "Attend over the last ResNet stage (2 x 2 regions at 64 pixels) instead of layer3. What "
        "happens to the attention hit rate, and why must it drift towards chance?",
        parameter="attention_stage", value="layer4"),
    page.Exercise(
        "Attend over layer2 (8 x 8 regions, finer but less abstract features). Do the captions "
        "still change from film to film, and what happens to the label agreement and to the "
        "number of asserted findings?", parameter="attention_stage", value="layer2"),
    page.Exercise(
        "Give the captioner a tiny vocabulary. Which finding words drop out of the captions, "
        "and what does that do to the label agreement and to the MEEMS classifier?",
        parameter="vocab_size", value=40),
    page.Exercise(
        "Use more clusters in slice discovery. Are more planted strata recovered, or do the "
        "worst clusters just get smaller and noisier?", parameter="slice_clusters", value=6),
], PARAMS)
