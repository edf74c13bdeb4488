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
# A GLoRIA-style model learns, without labels, to pair chest films with the sentences of
# their reports. Along the way each word attends over the regions of the film, and a map of
# that attention looks like an explanation: here is the effusion the sentence talks about.
# The "Wrong Lung" paper asks whether such maps deserve that reading. It scores them against
# Chest ImaGenome's gold boxes (which regions each sentence is about), then perturbs the text
# (left and right swapped, other sentences, other conditions) to see whether the attention
# moves with it, and retrains GLoRIA four ways to see what helps.
#
# This chapter rebuilds the study on the synthetic MIMIC-CXR cohort, whose ImaGenome-format
# gold set has exact boxes: the encoder pair, the five models, the gold-set metrics, the
# perturbations and subsets, and a verdict on each of the paper's findings, computed from the
# numbers on this page.

# %% tags=["parameters"]
data_root = None  # a real MIMIC-CXR (DICOM + reports) root; None: the default synthetic cohort
data_format = "mimic-cxr"  # the release layout the chapter reads (the DICOM release)
imagenome_root = None  # a real Chest ImaGenome root; None: the one inside data_root (synthetic)
seed = 0  # one seed for initialisation, sentence draws, perturbations and bootstrap
device = "auto"  # "auto" | "cpu" | "cuda" | "cuda:N" | "mps"
output_dir = None  # None: outputs/alignment-interpretability/ under MMCXR_HOME or the checkout
synth_n = 1600  # studies in the synthetic cohort (half of its frontal films form the gold set)
synth_seed = 0  # seed of the synthetic cohort
synth_image_size = 96  # synthetic image height in pixels
gloria_synth_n = 800  # studies of the separate cohort the GLoRIA stand-in trains on
gloria_no_finding = 0.0886  # "No Finding" share of that cohort (CheXpert's, which GLoRIA was trained on)
gloria_checkpoint = None  # GLoRIA's released weights (chexpert_resnet50.ckpt), a local file; needs bert_path
gold_images = 120  # gold images evaluated, drawn at random (None: all; the paper: 1,000)
image_size = 64  # side of the square film the models see (GLoRIA: 224, resized to 299 inside)
image_backbone = "resnet10-half"  # MONAI ResNet of mmcxr.models.IMAGE_ENCODERS (GLoRIA: resnet50)
image_weights = None  # local torchvision-format ResNet state dict (e.g. ImageNet); None: random
local_stage = "layer2"  # stage whose map gives the local regions (GLoRIA: layer3, 19 x 19; here 8 x 8)
bert_path = None  # local BERT folder (e.g. Bio_ClinicalBERT); None: a small BERT pretrained here
max_length = 32  # tokens per sentence (GLoRIA: 97)
vocab_size = 800  # WordPiece vocabulary learnt from the reports
bert_hidden = 64  # hidden size of the small BERT, also the shared embedding size (GLoRIA: 768)
bert_layers = 2  # transformer layers of the small BERT
bert_heads = 2  # attention heads of the small BERT
bert_last_layers = 2  # last hidden states summed into word vectors (GLoRIA: 4)
mlm_epochs = 4  # masked-language-model pretraining epochs of the small BERT
mlm_lr = 0.001  # masked-language-model learning rate
temp1 = 4.0  # eq. 1's inverse temperature 1/tau of the word-to-region attention (GLoRIA: 4)
temp2 = 5.0  # sharpness of the word-context cosine in the local similarity (GLoRIA: 5)
temp3 = 10.0  # logit scale of both contrastive losses (GLoRIA: 10)
word_softmax = True  # normalise each region over the words first, as GLoRIA's code does
mask_vocabulary = "findings"  # entities masked for w/ Masking: "findings" or "findings+anatomy"
epochs = 8  # most training epochs (the paper: 50; from scratch, 20 would start to learn)
patience = 5  # epochs without a lower validation loss before stopping (the paper: 10)
batch_size = 16  # images per batch, each other's negatives (GLoRIA: 48)
lr = 0.001  # Adam learning rate (GLoRIA: 5e-5, from pretrained encoders)
weight_decay = 1e-06  # Adam weight decay (GLoRIA: 1e-6)
grad_clip = 0.25  # gradient norm clip (GLoRIA: 0.25)
n_bootstrap = 200  # bootstrap resamples of the gold instances for the 95% intervals
claim_tol = 0.01  # AUROC difference below which two models count as tied
num_workers = 0  # DataLoader worker processes
profile = "custom"  # set by the book's executor (smoke, book or full); "custom" for runs by hand

# %%
# %matplotlib inline
import time

import numpy as np
import pandas as pd
import transformers
from IPython.display import display

import mmcxr
from mmcxr import alignment as al
from mmcxr import chapter_page as page
from mmcxr import data, env, metrics, models, pretrain, runs
from mmcxr.chapters import alignment as ch
from mmcxr.chapters import alignment_results as ar
from mmcxr.models import gloria
from mmcxr.synth import SynthConfig

transformers.logging.disable_progress_bar()
PARAMS = page.open_chapter(ch.SLUG, globals(), ch.PARAMETERS)
started = time.time()
out = env.output_dir(ch.SLUG, output_dir)

# %% [markdown]
# The defaults above are the `book` profile, sized for two CPU cores: 64-pixel films, a
# ResNet-10 of half width and a two-layer BERT of width 64 instead of a ResNet-50 and
# Bio_ClinicalBERT, {glue:text}`al_train_images` training films instead of MIMIC-CXR's
# 200,000, a few epochs, and {glue:text}`al_gold_images` of the gold images. The `full`
# profile is the paper's configuration for a GPU. The table lists what the profiles change:

# %% tags=["remove-input"]
page.profile_table(ch.SLUG, PARAMS)

# %% [markdown]
# ## The data
#
# GLoRIA trains on pairs of a film and one sentence of its report. The training films are the
# frontal images of ImaGenome's silver train and valid splits; the gold images, on which the
# attention is scored, are on ImaGenome's list of images to avoid, so no model ever trains on
# them. Each report's FINDINGS and IMPRESSION are split into sentences and cleaned as GLoRIA
# cleans them (lower case, words only). A sentence counts as *abnormal* when the image's
# silver scene graph marks it so (an `nlp|yes|abnormal` attribute): the training material of
# Retrained w/ Abnormal.

# %%
root = data.resolve_root(data_format, data_root, n=synth_n, seed=synth_seed,
                         image_size=synth_image_size, config=SynthConfig.from_chapter(PARAMS))
imagenome = imagenome_root or root
images = data.load_mimic_cxr(root, progress=False, check_images=False)
main = ch.build_corpus(images, imagenome, "main")
main.flow

# %% [markdown]
# GLoRIA's released weights were trained on CheXpert, whose films carry far more findings than
# MIMIC-CXR's (8.86% "No Finding"). Without those weights the GLoRIA row of every table is a
# stand-in: the same architecture trained on a separate synthetic cohort (another seed) whose
# generator draws normal studies at CheXpert's rate. With `gloria_checkpoint` (and
# `bert_path`) the released model is loaded instead.

# %%
synthetic_root = data_root is None
corpora = {"main": main}
if synthetic_root and not gloria_checkpoint:
    standin_root = data.resolve_root("mimic-cxr", None, n=gloria_synth_n, seed=synth_seed + 1,
                                     image_size=synth_image_size,
                                     config=ch.standin_config(gloria_no_finding))
    corpora["gloria"] = ch.build_corpus(
        data.load_mimic_cxr(standin_root, progress=False, check_images=False), standin_root, "gloria")
names = [m for m in ch.MODELS if m != "gloria" or "gloria" in corpora or gloria_checkpoint]
ar.corpus_table(corpora)

# %% [markdown]
# ## The gold set
#
# ImaGenome's gold set links each report sentence to the anatomical boxes it refers to, with
# each condition it names and whether it is asserted or negated. One *instance* is an (image,
# sentence) pair; its target is the union of its boxes. The paper's three subsets: **Abnormal**
# (a condition in a positive context), **One Lung** (the boxes hold the left or the right lung,
# not both) and **MDRB** (the 10% of instances whose boxes overlap least with the other
# sentences of their report). Films are resized into the model's square (letterboxed), and
# the boxes with them.

# %%
gold_boxes, gold_sentences = data.load_imagenome_gold(imagenome)
gold, gold_flow = ch.build_gold(gold_boxes, gold_sentences, images, max_images=gold_images, seed=seed)
cache_rows = pd.concat([main.images[["dicom_id", "path"]],
                        images[images["dicom_id"].isin(gold["dicom_id"])][["dicom_id", "path"]]])
cache_rows = cache_rows.drop_duplicates("dicom_id").reset_index(drop=True)
cache_dir = ch.image_cache_dir(out, "main", cache_rows, image_size)
data.prepare(data_format, root, cache_dir, size=image_size, table=cache_rows, overwrite="stale",
             progress=False)
caches = {"main": data.ImageCache(cache_dir)}
if "gloria" in corpora:
    g_dir = ch.image_cache_dir(out, "gloria", corpora["gloria"].images, image_size)
    data.prepare("mimic-cxr", standin_root, g_dir, size=image_size,
                 table=corpora["gloria"].images[["dicom_id", "path"]], overwrite="stale", progress=False)
    caches["gloria"] = data.ImageCache(g_dir)
masks = al.box_masks(gold["dicom_id"], gold["boxes"], gold_boxes, caches["main"])
gold = ch.perturb(gold, masks, seed)
gold_flow

# %%
pd.DataFrame({"instances": [gold[s].sum() for s in ch.SUBSETS],
              "share": [gold[s].mean() for s in ch.SUBSETS]},
             index=[ar.SUBSET_NAMES[s] for s in ch.SUBSETS])

# %% [markdown]
# ### Synthetic sentences (Table 1, and Table 11's examples)
#
# To swap conditions in a controlled way, the paper also writes a *synthetic* sentence for
# every instance from ImaGenome's labels: "There is {condition} in the {locations}." for an
# asserted condition ("The {locations} is/are {condition}." for normal/abnormal), "There is
# no {condition}." for a negated one, one sentence per condition, left and right boxes of the
# same structure merged ("left lung" and "right lung": "lungs"). This is the code, and a few
# instances:

# %%
page.show_source(al.location_list, al.synthetic_sentence)

# %%
examples = gold.groupby("abnormal", group_keys=False).head(4)
pd.DataFrame({"sentence": examples["sentence"],
              "conditions": [", ".join(f"{n} ({'+' if c == 'yes' else '-'})" for n, c, _ in cs)
                             for cs in examples["conditions"]],
              "boxes": [", ".join(b) for b in examples["boxes"]],
              "synthetic sentence": examples["synthetic"],
              "swapped conditions": examples["synthetic_swapped"]})

# %% [markdown]
# ## The encoder pair
#
# The image encoder is a single-channel MONAI ResNet: the map after `local_stage` (GLoRIA:
# layer3) is embedded by a 1x1 convolution into one vector per region, and the pooled last
# stage linearly into a global vector. The text encoder is a BERT whose last hidden states are
# summed; the tokens of a word are summed into one vector per word, and the sentence vector is
# the mean of its words. Unless `bert_path` names a local Bio_ClinicalBERT, the BERT is a small
# one pretrained here by masked-language modelling on the training reports (no weights are
# downloaded).

# %%
mlm_corpus = [" ".join(g["text"]) for c in corpora.values()
              for _, g in c.sentences[c.sentences["split"] == "train"].groupby("dicom_id")]
text_dir, mlm_losses = pretrain.text_encoder_dir(mlm_corpus, PARAMS, out, bert_path=bert_path,
                                                 device=device, progress=False)
pd.Series(mlm_losses, index=pd.RangeIndex(1, len(mlm_losses) + 1, name="epoch"),
          name="MLM loss").to_frame().T

# %% [markdown]
# Each word attends over the regions of the film with the paper's eq. 1,
# $a_{ij} = \exp(t_i^\top v_j/\tau) / \sum_k \exp(t_i^\top v_k/\tau)$, here with
# $1/\tau$ = `temp1`; GLoRIA's code first normalises each region's scores over the sentence's
# words (`word_softmax`). The attention-weighted regions give each word a context vector;
# their cosine with the words, pooled over the sentence, is the *local* similarity of an image
# and a sentence, and the cosine of the two global vectors the *global* one. Both enter a
# contrastive loss in both directions, every other item of the batch serving as a negative:

# %%
page.show_source(gloria.word_region_attention, gloria.local_similarity, gloria.paired_local_similarity,
                 gloria.Gloria.forward)

# %% [markdown]
# The model of this run, layer by layer, on two training items:

# %%
_, tokenizer = models.load_text_model(text_dir)
probe_ds, _ = ch.datasets(main, main.sentences, caches["main"], tokenizer, PARAMS)
probe = mmcxr.train.collate_items([probe_ds[i] for i in range(2)])
models.model_summary(ch.build_model(PARAMS, text_dir), probe, depth=3)

# %% [markdown]
# ## Five models
#
# As the paper's section 4.1: **GLoRIA** (the stand-in above), **Retrained** on all training
# sentences, **Retrained w/ Abnormal** on the abnormal ones only, **Retrained w/ Masking** with
# the clinical entities of every training sentence replaced by `[MASK]`, and **Retrained w/
# Rand Sents** with every sentence replaced by a random one of the corpus. Each epoch pairs
# every training film with one of its sentences drawn at random, as GLoRIA's pretraining does.
# Early stopping watches the validation loss with `patience` epochs; as the paper, we keep the
# *last* epoch trained, not the best one. Runs are keyed by their parameters and data:
# re-executing reuses finished runs, and an interrupted one resumes.
#
# The paper found clinical entities with SciSpaCy's UMLS entity linker, which cannot be
# installed offline. We use a rule-based longest-match phrase matcher (the kind of literal
# target rule medspaCy's `TargetMatcher` applies) over a vocabulary of findings, diseases and
# devices (`mask_vocabulary="findings+anatomy"` adds anatomy; sides are never masked):

# %%
page.show_source(al.EntityMatcher)
matcher = ch.mask_matcher(mask_vocabulary)
abn = main.sentences[main.sentences["abnormal"]].drop_duplicates("text").head(6)
pd.DataFrame({"sentence": abn["text"], "masked": [matcher.mask(t) for t in abn["text"]]})

# %%
store = runs.RunStore(out / "runs")
trained = ch.train_models(PARAMS, corpora, caches, text_dir, store, device=device, names=names)
pd.DataFrame({ar.MODEL_NAMES[n]: (t.run.metrics if t.run is not None else {"released": True})
              for n, t in trained.items()}).T

# %%
histories = pd.concat([t.run.history.assign(model=n) for n, t in trained.items() if t.run is not None])
ar.plot_training(histories)

# %% [markdown]
# ## Scoring the attention
#
# For each instance the attention of the sentence's words (eq. 1) is averaged over the words,
# upsampled bilinearly to the film's pixels and ranked against the pixels of the target boxes:
# pixel **AUROC**, **average precision**, and the **IoU** and **precision** of the top 5, 10
# and 30% of pixels. The **Random Attention KL** is the symmetric KL divergence between the
# attention a film gets with its own sentence and with a random sentence of another report;
# **retrieval accuracy** how often the film is more similar (local or global similarity) to
# its own sentence than to that random one (50%: chance). Every number comes with a 95%
# bootstrap interval over the instances; the paper gives none.

# %%
pixels = caches["main"].get(gold["dicom_id"].tolist())
scores = ch.evaluate_all(trained, gold, pixels, PARAMS, store, caches["main"], device=device)
lesion = None
if synthetic_root:
    lesion = ch.lesion_masks(gold, data.load_ground_truth(root), caches["main"])
long = ch.instance_table(scores, gold, masks, lesion)
summary = al.subset_summary(long, ar.METRICS, ch.SUBSETS, n_boot=n_bootstrap, seed=seed)
deltas = al.paired_deltas(long, ("auroc", "average_precision"), ch.SUBSETS, n_boot=n_bootstrap, seed=seed)
ours = ar.claim_table(summary, deltas)

# %% [markdown]
# ### GLoRIA on the gold set (Tables 2 and 3)
#
# Real sentences are the report's own; synthetic ones are written by the Table 1 rules.

# %%
metrics.style_comparison(ar.table(ours, "2"))

# %%
metrics.style_comparison(ar.table(ours, "3"))

# %% [markdown]
# The stand-in GLoRIA reaches a pixel AUROC of {glue:text}`al_gloria_auroc` on the gold set
# (the paper's GLoRIA: {glue:text}`al_paper_gloria_auroc`), {glue:text}`al_gloria_auroc_one_lung`
# on One Lung and {glue:text}`al_gloria_auroc_mdrb` on MDRB (the paper:
# {glue:text}`al_paper_gloria_auroc_one_lung` and {glue:text}`al_paper_gloria_auroc_mdrb`).
#
# ### The retrained models (Tables 4 and 7)

# %%
metrics.style_comparison(ar.table(ours, "4"))

# %%
metrics.style_comparison(ar.table(ours, "7"))

# %% [markdown]
# ### Precision and IoU at 5, 10 and 30% (Tables 13 and 14)

# %%
metrics.style_comparison(ar.table(ours, "13"))

# %%
metrics.style_comparison(ar.table(ours, "14"))

# %% [markdown]
# ### Does the text move the attention? Random Attention KL (Tables 5 and 8)

# %%
metrics.style_comparison(pd.concat([ar.table(ours, "5"), ar.table(ours, "8")]))

# %% [markdown]
# ### Retrieval accuracy (Tables 6 and 9)

# %%
metrics.style_comparison(pd.concat([ar.table(ours, "6"), ar.table(ours, "9")]))

# %% [markdown]
# ### Attention entropy (Table 10)
#
# The entropy of the sentence-averaged attention, divided by its maximum, the log of the
# number of regions (ln 361 for GLoRIA's 19 x 19 grid, ln 64 for our 8 x 8): 1 is a uniform
# map.

# %%
metrics.style_comparison(ar.table(ours, "10"))

# %% [markdown]
# ## Perturbations (Figures 4, 5 and 7-9)
#
# Each perturbation's change of AUROC against the unperturbed instances (paired: the same
# instance before and after), per model and subset. **Swap Left Right** swaps the two words;
# **Shuffle BBoxes** gives each sentence the boxes of another sentence of its report;
# **Random Sentences** replaces the sentence by one of another report; **Random BBoxes**
# replaces the target by the boxes of another film (the only perturbation that leaves the
# attention unchanged and moves the target); **Synthetic w/ Swapped Conditions** writes the
# synthetic sentence with another condition seen in the same boxes elsewhere. A model whose
# attention follows the text loses AUROC under the first three and the last; one that looks at
# the film alone loses it only under Random BBoxes.

# %%
ar.plot_deltas(deltas, "auroc")

# %% [markdown]
# The same for average precision (Figures 8 and 9):

# %%
ar.plot_deltas(deltas, "average_precision")

# %% [markdown]
# Swapping left and right moves the stand-in GLoRIA's AUROC by
# {glue:text}`al_delta_gloria_swap_left_right_one_lung` on One Lung, where it should matter most,
# and Retrained w/ Masking's by {glue:text}`al_delta_masking_swap_left_right_one_lung`; Random
# BBoxes moves GLoRIA's by {glue:text}`al_delta_gloria_random_bboxes_all` on the gold set.
#
# ### One sentence and its mirror image (Figure 6)
#
# The paper shows one cherry-picked sentence. We draw a One Lung instance with an abnormal
# sentence at random (seeded) and show each model's attention for it and for its swapped
# version, with the target boxes outlined.

# %%
pool = np.flatnonzero((gold["one_lung"] & gold["abnormal"] & (gold["swap"] != gold["text"])).to_numpy())
pool = pool if len(pool) else np.arange(len(gold))
pick = int(np.random.default_rng(seed).choice(pool))
ar.plot_swap_example(pixels[pick], masks[pick],
                           {m: (s["attention_real"][pick], s["attention_swap"][pick]) for m, s in scores.items()},
                           gold["text"].iloc[pick], gold["swap"].iloc[pick])

# %% [markdown]
# In JupyterLab, a viewer steps through the gold instances, the kinds of sentence and target
# and the models; the book shows the static figure above.

# %%
if ar.interactive_session():
    display(ar.explorer(pixels, masks, gold, scores))

# %% [markdown]
# ### What the similarities, the entropy and the scores share (Table 12)
#
# Pearson correlations over the gold instances (real sentences), ours beside the paper's.

# %%
ar.correlation_comparison(ch.correlations(long))

# %% [markdown]
# ## Beyond the paper: the box is not the lesion
#
# The paper explains its low IoU by the size of the anatomical boxes, much larger than what a
# sentence is about. On the synthetic cohort the lesion itself is known, so the same attention
# can be scored against the lesion's own box. The last column is the best IoU@10% *any* map
# could reach (a map that is exactly the target: min(10%, share) / max(10%, share)); a target
# covering 40% of the film caps it at 0.25.

# %%
lesion_summary = ar.lesion_table(long) if lesion is not None else pd.DataFrame()
lesion_summary

# %% [markdown]
# ## Claims
#
# Each finding of the paper is a test on the tables above, run on the paper's numbers and on
# ours. The paper shows the perturbation changes as bar charts without numbers, so claims that
# need them are undecided on its side. "Barely moves" means a change of AUROC smaller than 0.02;
# "clearly lowers" a drop larger than 0.02. Of the {glue:text}`al_claims_total` claims,
# {glue:text}`al_claims_hold` hold here and {glue:text}`al_claims_fail` do not.

# %%
verdicts = ar.evaluate_claims(ours, tol=claim_tol)
extra = {"gold_images": int(gold["dicom_id"].nunique()), "gold_instances": len(gold),
         "train_images": int((main.images["split"] == "train").sum()),
         "chance_loss": 4 * np.log(batch_size), "wall_minutes": (time.time() - started) / 60}
numbers = ar.headline(summary, deltas, verdicts, extra)
claims_file = ar.write_outputs(
    out, PARAMS, cohort={"main": main.summary(), **({"gloria": corpora["gloria"].summary()} if "gloria" in corpora else {}),
                         "gold_flow": mmcxr.results.records(gold_flow)},
    summary=summary, deltas=deltas,
    tables={"correlations": ch.correlations(long), "lesion": lesion_summary.reset_index()},
    runs={n: t.run for n, t in trained.items()}, verdicts=verdicts, headline_numbers=numbers)
mmcxr.claims.show_claims(claims_file)

# %% tags=["remove-cell"]
for name, value in numbers.items():
    fmt = ".1f" if name in ("wall_minutes", "chance_loss") else ".3f" if isinstance(value, float) else "d"
    page.glue_value(f"al_{name}", value, fmt)

# %% [markdown]
# ## Reading the verdicts
#
# - **How much the models learnt.** Contrastive training from random weights needs far more
#   steps than a CPU gives in a few minutes: with {glue:text}`al_train_images` training films
#   and a few epochs, the `book` models tell an image's own sentence from a random one in a
#   share {glue:text}`al_retrained_retrieval_global` of cases (Retrained; 0.5 is chance, the
#   paper's Retrained: {glue:text}`al_paper_retrained_retrieval_global`), and their validation
#   loss stays near its chance level ({glue:text}`al_chance_loss`: four cross-entropies over a
#   batch of `batch_size`; the training curves above). They are, in effect,
#   untrained encoders, and every verdict below is about such encoders; the `full` profile
#   (or the released GLoRIA weights) is where the paper's question is answered. How little
#   the verdicts mean at this scale shows in how easily they move: running the same chapter
#   with two PyTorch threads instead of one (the same seeds and data; only the order of the
#   floating-point sums changes) moved Retrained's pixel AUROC from well above chance to well
#   below it and flipped several of the verdicts below.
# - **What an untrained attention map looks like.** It still draws a plausible-looking heat
#   map (the figure above): the paper's warning in its plainest form. The stand-in GLoRIA's
#   AUROC is {glue:text}`al_gloria_auroc` and the model trained on random pairs scores
#   {glue:text}`al_randsents_auroc`; the paper's random-pair model scored
#   {glue:text}`al_paper_randsents_auroc`, below chance: a map that follows the film's
#   brightness avoids the dark lungs that most gold boxes cover.
# - **The text barely moves the attention.** The stand-in's Random Attention KL is
#   {glue:text}`al_gloria_kl` (the paper's GLoRIA: {glue:text}`al_paper_gloria_kl`): the maps
#   of untrained encoders follow the film, and the changes under the text perturbations stay
#   within a few AUROC points (the figure above). Whether a claim holds or fails here, it does
#   so by small margins that say little about trained models. Training on abnormal sentences
#   only gives a KL of {glue:text}`al_abnormal_kl` and an AUROC of
#   {glue:text}`al_abnormal_auroc`, against Retrained's {glue:text}`al_retrained_kl` and
#   {glue:text}`al_retrained_auroc`.
# - **What the boxes reward.** Most gold sentences are about a lung, or both, which cover much
#   of the film: attention on the lungs, whatever the sentence, scores well. That is why the
#   paper's One Lung and MDRB subsets matter, and why Random BBoxes, whose targets come from
#   another film, is the perturbation that the film alone can feel. The lesion table shows how
#   much of a low IoU is the box's fault: the best IoU@10% any map could reach is set by the
#   target's size.
# - **Intervals.** The paper gives none. With {glue:text}`al_gold_instances` instances ours
#   are about a point of AUROC wide; a verdict resting on a difference inside them would flip
#   with another seed.
#
# What this page leaves out: the paper's qualitative Figures 1-3 (illustrations), the
# released GLoRIA weights (loaded only when a user has them), SciSpaCy's entity linker
# (replaced by the rule-based matcher above), and the paper's scale (1,000 gold images, a
# ResNet-50 and Bio_ClinicalBERT, 50 epochs): the `full` profile restores it. This run took
# {glue:text}`al_wall_minutes` minutes.
#
# ## Exercises

# %% tags=["remove-input"]
page.exercises(ch.SLUG, [
    page.Exercise(
        "Train for 20 epochs. Where does the validation loss leave its chance level, do the "
        "retrieval accuracies rise, and do the retrained models pull apart?",
        parameter="epochs", value=20),
    page.Exercise(
        "Drop GLoRIA's word softmax and use eq. 1 as printed. Does the attention get sharper "
        "(lower entropy), and does the Random Attention KL change?",
        parameter="word_softmax", value=False),
    page.Exercise(
        "Mask anatomy too. With 'lung' and 'base' masked, only the sides are left to point at a "
        "region: does the masking model's Swap Left Right change grow?",
        parameter="mask_vocabulary", value="findings+anatomy"),
    page.Exercise(
        "Attend over a coarser map (layer3: 4 x 4 regions at 64 pixels). How do the IoU ceilings "
        "and the scores change when the regions are larger than the lesions?",
        parameter="local_stage", value="layer3"),
], PARAMS)
