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
# # The synthetic cohort
#
# The five papers this book reproduces ran on MIMIC-CXR, MIMIC-CXR-JPG, Chest ImaGenome,
# OpenI and ChestX-ray14. Three of those need credentialed access, and none may be published
# beside the book. So every chapter runs, by default, on a *synthetic* cohort: chest films
# drawn from a parametric phantom, reports written from the same plan, CheXpert-style labels
# read back from the report text, all written in each real release's exact on-disk layout and
# read by the same loaders that read the real releases. Point a chapter's `data_root` at a
# real release and nothing else changes.
#
# This chapter is the guide to that data. It generates the default MIMIC-CXR cohort and
# shows what is on disk, what the tidy tables look like, what the labels say and how they
# relate to the pixels, what structure was planted (class imbalance, co-occurrence, hidden
# strata, a spurious marker, label noise), how a DICOM becomes a display image, and how much
# signal each modality carries. Every number quoted in the text is computed on this page.

# %% tags=["parameters"]
data_root = None  # a real MIMIC-CXR or MIMIC-CXR-JPG root; None: the default synthetic cohort
data_format = "mimic-cxr"  # layout of data_root: "mimic-cxr" (DICOM) or "mimic-cxr-jpg"
meta_root = None  # real DICOM release: the MIMIC-CXR-JPG root with its label and split tables
reports_root = None  # real JPG release: the MIMIC-CXR root holding the report files/ tree
imagenome_root = None  # a real Chest ImaGenome root; None: chest-imagenome/ in data_root, if any
synth_n = 2000  # studies in the synthetic MIMIC-CXR cohort
synth_seed = 0  # seed of every synthetic cohort of the chapter
synth_image_size = 256  # synthetic image height in pixels (width follows MIMIC's aspect)
demo_n_mimic = 60  # studies in the small demo cohort of the other MIMIC layout
demo_n_openi = 60  # reports in the small OpenI demo cohort
demo_n_chestxray14 = 120  # images in the small ChestX-ray14 demo cohort
demo_image_size = 128  # image height of the three demo cohorts
check_images = True  # check every image file while loading (slow on a full real release)
n_examples = 6  # example studies shown with their reports
cache_size = 32  # side of the square thumbnails in the prepare cache (signal check input)
signal_max_images = 4000  # most frontal images in the signal check (a random sample beyond)
min_prevalence = 0.05  # a label is common when positive in at least this share of images
test_share = 0.3  # share of patients the signal check holds out
seed = 0  # seed of the example choice, the image sample and the split
device = "auto"  # "auto" | "cpu" | "cuda" | "cuda:N" | "mps" (nothing here needs a GPU)
output_dir = None  # None: outputs/synthetic-cohort/ under MMCXR_HOME or the checkout
profile = "custom"  # set by the book's executor (smoke, book or full); "custom" for runs by hand

# %%
# %matplotlib inline
import textwrap

import numpy as np
import pandas as pd
from IPython.display import Markdown, display

from mmcxr import chapter_page as page
from mmcxr import data, env, plots, provenance, results
from mmcxr.atomic import write_text
from mmcxr.chapters import synthetic_cohort as sc

PARAMS = page.open_chapter(sc.SLUG, globals(), sc.PARAMETERS)
out = env.output_dir(sc.SLUG, output_dir)
glued = {}  # numbers the text quotes, glued at the end of the page

# %% [markdown]
# ## The release on disk
#
# With `data_root = None` the cohort is generated once (a few seconds per hundred studies,
# in parallel) under `MMCXR_HOME/data/synthetic/` and reused by every later run. A root
# written by the generator carries `synthetic_config.json`; that file is how this chapter,
# and the book's publishing guard, tell a synthetic root from a real one.

# %%
root = data.resolve_root(
    data_format, data_root, n=synth_n, seed=synth_seed, image_size=synth_image_size
)
synthetic = provenance.describe_source(root, data_format)["kind"] == "synthetic"
display(
    Markdown(
        f"Reading `{root}`: a **{'synthetic' if synthetic else 'real'}** {data_format} root."
        + ("" if synthetic else " Sections that need the synthetic ground truth are skipped.")
    )
)
print(data.tree_listing(root))

# %% [markdown]
# The layout is the release's: `files/pXX/p<subject>/s<study>/` holds one study's images
# and `s<study>.txt` its free-text report; the `*.csv.gz` tables at the top list the
# records, the CheXpert and NegBio labels (one row per study), the official patient-level
# split and the DICOM metadata. Two files exist only in a synthetic root:
# `synthetic_config.json` (every knob of the planted structure) and
# `synthetic_ground_truth.csv.gz` (what was drawn in each image). The synthetic DICOM root
# also carries a Chest ImaGenome tree, which in reality is a separate release.
#
# ## One row per image
#
# The loader joins the record list, DICOM headers (view, orientation, procedure), labels,
# split and the report's parsed FINDINGS and IMPRESSION into one tidy table, checking every
# file on the way: a missing or damaged file is an error that names it.

# %%
if data_format == "mimic-cxr":
    images = data.load_mimic_cxr(root, meta_root=meta_root, check_images=check_images)
else:
    images = data.load_mimic_cxr_jpg(root, reports_root, check_images=check_images)
frontal = data.frontal_only(images).reset_index(drop=True)
images.head(3)

# %%
pd.crosstab(images["procedure"], images["view"], margins=True, margins_name="total")

# %% tags=["remove-cell"]
studies = sc.study_labels(images)
glued.update(
    n_images=len(images),
    n_studies=len(studies),
    n_patients=images["subject_id"].nunique(),
    n_frontal=len(frontal),
)

# %% [markdown]
# The cohort holds {glue:text}`sc_n_images` images of {glue:text}`sc_n_studies` studies
# from {glue:text}`sc_n_patients` patients; {glue:text}`sc_n_frontal` images are frontal
# (PA or AP). Bedside films are AP, usually without a lateral; films taken in the
# department are PA with a lateral, as in MIMIC-CXR.
#
# ## The labels
#
# MIMIC-CXR's labels come from the CheXpert labeller run on each report: per study and per
# finding, 1 (positive), -1 (uncertain: "possible pneumonia"), 0 (negated: "no effusion") or
# blank (not mentioned). The histogram is the synthetic counterpart of MEEMS' Figure 1
# (Cooper & Vainio): a few common labels and a long tail of rare ones.

# %%
plots.plot_label_histogram(
    studies, data.CHEXPERT_LABELS, title=f"CheXpert-style labels of {len(studies):,} studies"
)

# %% tags=["remove-cell"]
no_finding = int((studies["No Finding"] == 1.0).sum())
glued.update(
    n_no_finding=no_finding,
    findings_ratio=(len(studies) - no_finding) / max(no_finding, 1),
    share_no_finding=no_finding / len(studies),
)

# %% [markdown]
# {glue:text}`sc_n_no_finding` studies ({glue:text}`sc_share_no_finding`) are labelled
# No Finding; the rest carry at least one finding, a ratio of {glue:text}`sc_findings_ratio`
# to one. MEEMS reports 152,372 studies with findings and 75,455 without in MIMIC-CXR, about
# two to one.
#
# Findings are not drawn independently. Each abnormal study gets a clinical *process*
# (heart failure, pneumonia, atelectasis ...) that brings its usual companions, which is
# where the co-occurrence below comes from: read a row as "of the studies positive for this
# label, the share also positive for each column".

# %%
from mmcxr import probes  # linear probes and the common labels they score

common_findings = [
    c for c in probes.common_labels(studies, min_prevalence=min_prevalence) if c != "No Finding"
]
fig = None
if common_findings:
    matrix = plots.label_cooccurrence(studies, common_findings)
    fig = plots.plot_cooccurrence(matrix, title="Co-occurrence of the common findings (per study)")
else:
    print("No finding is common here: are the label tables missing (see meta_root)?")
fig

# %% [markdown]
# ## A report, its sections and its labels
#
# A report as it is stored, then as the section parser splits it (the MIT-LCP rule: a line
# starting with one space, an upper-case name and a colon), then its labels. The labels are
# read from the IMPRESSION section (FINDINGS when there is none), as MIMIC-CXR's were, so a
# finding that is only described in FINDINGS stays unlabelled.

# %%
per_study = images.drop_duplicates("study_id").reset_index(drop=True)
n_positive = (per_study[data.CHEXPERT_LABELS] == 1.0).sum(axis=1)
both = per_study["findings_source"].eq("findings") & per_study["impression_source"].eq("impression")
candidates = per_study[both & (n_positive >= 2)]
pool = candidates if len(candidates) else per_study
card = sc.report_card(pool.iloc[int(np.random.default_rng(seed).integers(len(pool)))])
print(card["report"])

# %%
sections = pd.DataFrame({"text": card["sections"]}).rename_axis("section")
sections.style.set_properties(**{"text-align": "left", "white-space": "pre-wrap"})

# %%
pd.DataFrame({"label": card["labels"]}).rename_axis("CheXpert label").T

# %% [markdown]
# ## Images with their reports
#
# Frontal films of a few studies with their positive labels and the start of the impression.
# The films here are {glue:text}`sc_image_size`: enough to see effusions, a large heart or a
# tube, not to read fine texture.

# %%
shown = sc.pick_examples(frontal, min(n_examples, frontal["study_id"].nunique()), seed)


def caption(row: pd.Series) -> str:
    positive = ", ".join(c for c in data.CHEXPERT_LABELS if row[c] == 1.0) or "no positive label"
    return f"{row['view']}: {positive}\n" + textwrap.shorten(f'"{row["impression"]}"', 120)


plots.plot_image_grid([data.read_image(p) for p in shown["path"]],
                      [caption(r) for _, r in shown.iterrows()], ncols=3, panel_size=3.2, wrap=48)

# %% [markdown]
# ## Views side by side
#
# A department study (PA and lateral of the same visit) beside a bedside one (AP, often
# recumbent). In the lateral the two lungs overlap and the heart sits in front; the AP film
# magnifies the heart, which is why MIMIC-based work often keeps PA films only.

# %%
views = sc.view_panels(images, seed)
plots.plot_image_grid(
    [data.read_image(p) for p in views["path"]], views["caption"], ncols=3, panel_size=3.0
)

# %% [markdown]
# ## A DICOM, stored and displayed
#
# A DICOM's stored numbers are not what a radiologist sees. The modality LUT maps them to
# output units, a window (centre and width) or a VOI lookup table maps those to display
# values, and `MONOCHROME1` means *low* values are bright. MIMIC-CXR mixes all three, and
# the synthetic DICOMs plant them at set rates. `mmcxr.data.read_image` applies each step
# with pydicom; a pipeline that skipped one would see a share of the films inverted or
# washed out, and a model would learn that as a shortcut.

# %%
fig = headers = None
if data_format == "mimic-cxr":
    header_sample = images if len(images) <= 5000 else images.sample(5000, random_state=seed)
    headers = data.dicom_headers(header_sample["path"])
    voi = headers["voi_lut"].map({True: "VOI LUT", False: "window"})
    display(pd.crosstab(headers["photometric"], voi, margins=True, margins_name="total"))
    fig = sc.plot_stored_and_displayed(headers)
else:
    print("The JPG release holds 8-bit display images; there is no DICOM to show.")
glued.update(sc.display_numbers(headers))
fig

# %% [markdown]
# Of the DICOMs read here, {glue:text}`sc_share_mono1` are `MONOCHROME1` and
# {glue:text}`sc_share_voi_lut` carry a VOI lookup table instead of a window.
#
# ## Chest ImaGenome: boxes over an image
#
# Chest ImaGenome adds, for a gold set of frontal MIMIC images, hand-drawn boxes around 29
# anatomical regions and a link from each report sentence to the boxes it talks about. The
# alignment chapter scores attention maps against exactly these boxes. Left: a few of the
# anatomical boxes; right: the boxes the report's positive sentences point to.

# %%
try:
    gold_boxes, gold_sentences = data.load_imagenome_gold(imagenome_root or root)
except data.DataError as exc:
    gold_boxes = None
    print(f"No Chest ImaGenome gold set here ({exc}); this section is skipped.")
fig = None
if gold_boxes is not None:
    gold, sentences = sc.imagenome_panels(gold_boxes, gold_sentences, images, seed)
    fig = plots.plot_image_grid([data.read_image(p) for p in gold["path"]], gold["caption"],
                                boxes=gold["boxes"], legend=True, ncols=2, panel_size=3.6)
    display(sentences)
fig

# %% [markdown]
# ## What is planted
#
# Everything below reads the synthetic ground truth, which a real release does not have.
# Each structure is a knob of `SynthConfig`, recorded in `synthetic_config.json`; the table
# sets each knob beside the same quantity counted in the cohort, so a chapter that claims to
# recover a structure can be checked against what is really there.

# %%
if synthetic:
    gt = data.load_ground_truth(root)
    config = data.load_synth_config(root)["config"]
    planted = data.planted_structure(gt, config)
    knob = {"planted": lambda v: "off" if v is None or v is False else f"{v:g}"}
    display(planted.style.format({**knob, "measured": "{:.3f}"}, na_rep="-").hide(axis="index"))
else:
    gt = config = planted = None
    print("A real root has no ground truth: nothing planted to show.")

# %% [markdown]
# - **Class imbalance.** Among PA erect department films, pneumonia (label 1) against
#   No Finding is held near one in ten (`pneumonia_share_pa`), the cohort of the late-fusion
#   chapter.
# - **Hidden strata.** A pneumothorax is drawn with or without a chest tube, and a lung
#   lesion subtle or obvious: subgroups that one label lumps together and that a classifier
#   can fail on silently (the MEEMS chapter looks for them). Hedged findings are drawn subtle
#   too, which can push the measured subtle share above the knob.
# - **A spurious marker.** A mark burned into AP films, far more often when pneumonia is
#   drawn: a shortcut an image model can take instead of reading the lungs.
# - **Label noise.** In a few studies the report names a finding that is not drawn, or
#   leaves out one that is.
#
# The mix of clinical processes among abnormal studies, planted and measured (among PA erect
# films the pneumonia process is drawn at the rate the imbalance knob needs, not by weight):

# %%
if synthetic:
    first = gt.drop_duplicates("study_id")
    weights = pd.Series(config["process_weights"], dtype=float)
    abnormal = first.loc[first["process"] != "normal", "process"].value_counts(normalize=True)
    display(
        pd.DataFrame({"planted weight": weights / weights.sum(), "measured share": abnormal})
        .fillna(0)
        .sort_values("planted weight", ascending=False)
        .style.format("{:.3f}")
    )

# %% [markdown]
# The hidden strata and the marker, as drawn: a pneumothorax with and without a chest tube,
# an obvious and a subtle lesion, and AP films with the spurious marker.

# %%
strata = sc.strata_panels(gt, images, seed) if synthetic else None
fig = None
if strata is not None and len(strata):
    fig = plots.plot_image_grid([data.read_image(root / p) for p in strata["path"]],
                                strata["caption"], boxes=strata["boxes"], legend=True,
                                ncols=3, panel_size=3.0)
fig

# %% [markdown]
# ## Labels against pixels
#
# The labels are what a labeller read in the report, not what was drawn. Per finding, on the
# frontal images: how many have it drawn, what the label made of those, and how many labels
# say positive or uncertain with nothing drawn. Cohen's kappa (scikit-learn) measures
# agreement beyond chance between "drawn" and "labelled positive or uncertain".

# %%
agreement = data.label_truth_agreement(gt, images) if synthetic else None
if synthetic:
    display(agreement.style.format({"agreement": "{:.3f}", "kappa": "{:.2f}"}))
    noise = gt.drop_duplicates("study_id").dropna(subset=["noise_label"])
    if len(noise):
        display(pd.crosstab(noise["noise_label"], noise["noise_kind"], margins=True,
                            margins_name="total"))
glued.update(sc.agreement_numbers(agreement, gt))

# %% [markdown]
# Agreement is high but not perfect, for three planted reasons. Label noise touches
# {glue:text}`sc_noise_studies` studies ({glue:text}`sc_noise_share`): "dropped" findings are
# drawn but unreported, "added" ones reported but not drawn. Hedges ("cannot exclude
# pneumonia") make uncertain labels, some about findings that are not there at all. And the
# section rule: {glue:text}`sc_devices_unlabelled` frontal images with a drawn device have no
# Support Devices label, because the report describes the tube in FINDINGS only and the
# labels are read from the IMPRESSION. The lowest kappa is {glue:text}`sc_kappa_min`
# ({glue:text}`sc_kappa_min_finding`).
#
# ## The four formats
#
# The same generator writes every release the papers used, each read by its own loader into
# a tidy table with the same key columns (`subject_id`, `study_id`, an image id, `path`,
# `view`). Small demo cohorts stand in for the other formats here (synthetic even when
# `data_root` is real).

# %%
other_mimic = "mimic-cxr-jpg" if data_format == "mimic-cxr" else "mimic-cxr"
demo_n = {other_mimic: demo_n_mimic, "openi": demo_n_openi, "chestx-ray14": demo_n_chestxray14}
roots = {data_format: root} | {
    fmt: data.resolve_root(fmt, None, n=n, seed=synth_seed, image_size=demo_image_size)
    for fmt, n in demo_n.items()
}
tables = {data_format: images} | {f: sc.load_release(f, roots[f], progress=False) for f in demo_n}
for fmt in sc.FORMATS:
    t = tables[fmt]
    display(Markdown(f"**{fmt}**: {len(t):,} images, {t['study_id'].nunique():,} studies"))
    print(data.tree_listing(roots[fmt], max_entries=2, max_top=8))
    display(t.head(3))

# %% [markdown]
# MIMIC-CXR-JPG has the DICOM release's tree with 8-bit JPEGs in place of the DICOMs and the
# view taken from the metadata table; OpenI is one XML report per study with MeSH terms and
# PNGs named after the report; ChestX-ray14 is a flat image folder and one CSV whose
# `Finding Labels` joins its own 14 names with `|` (text-mined labels, no reports). One
# frontal film of each, as `read_image` decodes it:

# %%
firsts = [data.frontal_only(tables[fmt]).iloc[0] for fmt in sc.FORMATS]
names = [str(r["path"]).rsplit("/", 1)[-1] for r in firsts]
short = [n if len(n) <= 26 else f"{n[:12]}...{n[-10:]}" for n in names]  # MIMIC's long ids
plots.plot_image_grid(
    [data.read_image(r["path"]) for r in firsts],
    [f"{fmt}\n{n}" for fmt, n in zip(sc.FORMATS, short, strict=True)],
    ncols=4,
    panel_size=2.6,
)

# %% [markdown]
# ## The prepare cache
#
# Decoding a full-size DICOM costs more than a training step on a small image, so the
# chapters decode each image once into a memory-mapped array (`mmcxr prepare`, or
# `data.prepare` from Python): letterboxed to a square, 8-bit, with a manifest, a
# per-row checksum and a progress record so that an interrupted build resumes. Here it holds
# the frontal images at {glue:text}`sc_cache_size` pixels, the input of the signal check
# below.

# %%
sample = frontal.sample(min(len(frontal), signal_max_images), random_state=seed)
sample = sample.sort_values(["subject_id", "study_id", "dicom_id"]).reset_index(drop=True)
cache_dir = sc.cache_dir_for(out, sample["dicom_id"], cache_size)
data.prepare(data_format, root, cache_dir, size=cache_size, table=sample[["dicom_id", "path"]],
             overwrite="stale")
cache = data.ImageCache(cache_dir)
print(data.tree_listing(cache_dir))
manifest = {k: v for k, v in cache.manifest.items() if k not in ("sha256", "keys_sha256")}
pd.Series(manifest, name="manifest").to_frame()

# %%
thumbs = cache.get(sample["dicom_id"].tolist())
plots.plot_image_grid(
    list(thumbs[:8]), [f"{v}" for v in sample["view"][:8]], ncols=8, panel_size=1.2
)

# %% [markdown]
# ## How much signal each modality carries
#
# A check that the cohort is learnable but not trivial: per common label, a logistic
# regression on the {glue:text}`sc_cache_size`-pixel thumbnails and one on a bag of words of
# the report, trained on patients held apart from the test patients (scikit-learn;
# uncertain labels left out). In the papers the report is far stronger than the image: Chao &
# Li's text model reaches an AUROC of {glue:text}`sc_paper_001_text_auroc` for pneumonia where
# the image model reaches {glue:text}`sc_paper_001_image_auroc`, because the report is the radiologist's reading of the film, and the labels are
# read from it.

# %%
fig = signal = None
if probes.common_labels(sample, min_prevalence=min_prevalence):
    signal = probes.signal_check(
        sample, thumbs, min_prevalence=min_prevalence, test_share=test_share, seed=seed
    )
    display(signal.style.format("{:.3f}", subset=["prevalence", "image_auroc", "text_auroc"]))
    scores = {"image_auroc": f"{cache_size}x{cache_size} pixels", "text_auroc": "report words"}
    title = f"{len(sample):,} frontal images, {signal['test'].max():,} held out"
    fig = plots.plot_score_pairs(signal, scores, xlabel="test AUROC (logistic regression)",
                                 title=title)
else:
    print("No label is common among these images: are the label tables missing (meta_root)?")
fig

# %% tags=["remove-cell"]
glued.update(
    image_size="at their native resolution" if data_root else f"drawn {synth_image_size} pixels high",
    cache_size=cache_size,
    **probes.signal_numbers(signal),
    **sc.paper_numbers(),  # the paper's numbers the prose quotes, from its reference tables
)

# %% [markdown]
# The report wins on {glue:text}`sc_n_text_wins` of {glue:text}`sc_n_signal_labels` common
# labels: a mean AUROC of {glue:text}`sc_text_auroc_mean` for the words against
# {glue:text}`sc_image_auroc_mean` for the pixels, whose AUROCs range from
# {glue:text}`sc_image_auroc_min` to {glue:text}`sc_image_auroc_max`. Read the figure with
# the films above in mind: findings that change the outline of the chest (a large heart, a
# wide mediastinum, fluid at the bases) can survive the shrinking to 32 pixels, thin plates of
# atelectasis and patchy opacities much less. These are linear probes, a floor: the later
# chapters' networks see larger images.

# %% [markdown]
# ## Calibrated to the papers' single-modality baselines
#
# A multimodal comparison means something only if each modality alone is about as
# informative as it was in the paper. Two knobs of the generator set that, one per modality,
# both recorded in `synthetic_config.json` and in the cache key of every cohort:
#
# - **`image_difficulty`** (0 as drawn, the films of this page, to 1): each finding draws its
#   own difficulty, so raising the knob makes a growing share of findings fainter (lower
#   contrast) and smaller, while every film, normal ones too, gets patchy lung texture with
#   the grain of airspace disease. At 0 the pixels are those of a cohort drawn without it.
# - **`report_difficulty`** (0 to 1): a growing share of the findings on the film are left out
#   of the report or only hedged, normal studies hedge about findings that are not there, and
#   OpenI's MeSH indexing contradicts the text's normal/abnormal. The pixels do not change.
#
# A chapter sets the knobs so that its *own* single-modality model, in its `book` profile,
# scores what the paper's did; its multimodal results are then taken as they come: the
# inputs are calibrated, never the claims. Each curve below was measured once per chapter
# (`python -m mmcxr.calibration <chapter> --seeds 3 --values ...`) and is stored with the
# package; the chapter's default is read off it by `calibration.default_value`, where a
# monotone fit through the means crosses the paper's number (dashed orange). The band is
# one standard deviation over seeds: on a `book`-sized training set one run can land far
# from the mean, so the calibration holds for the mean and not for every seed.

# %%
from mmcxr import calibration

calibration.plot_curves()

# %% [markdown]
# The report knob needs no training to read: over the generator's plans, this is how well
# what a report says (stated, hedged, silent) separates the films that show a finding from
# those that do not. It is the ceiling of any text model scored against the pixels. Where
# the labels are read from the report itself, as CheXpert labels are, a text model stays
# near perfect whatever the knob, as the papers' text models are (the late-fusion chapter
# leaves it at 0).

# %%
witness = calibration.report_witness([0.0, 0.2, 0.4, 0.6, 0.8, 1.0], n=2000, seed=synth_seed)
calibration.plot_report_witness(witness)

# %% tags=["remove-cell"]
tables_out = {
    "signal_check.csv": signal,
    "planted_structure.csv": planted,
    "label_truth_agreement.csv": agreement,
}
for name, table in tables_out.items():
    if table is not None:
        write_text(out / name, table.to_csv())
results.write_metrics(out, chapter=sc.SLUG, params=PARAMS, numbers=glued,
                      data={"root": str(root), "synthetic": synthetic},
                      **{name.removesuffix(".csv"): t for name, t in tables_out.items()
                         if t is not None})
for name, text in sc.glue_text(glued).items():
    page.glue_value(f"sc_{name}", text)

# %% [markdown]
# ## Exercises
#
# Each exercise changes one thing and asks what happens; the command under it makes the
# change.

# %% tags=["remove-input"]
page.exercises(
    sc.SLUG,
    [
        page.Exercise(
            "Draw the films at 128 pixels instead of 256. The thumbnails of the signal check are "
            "32 pixels either way: which image AUROCs move, and what does that say about where "
            "the image signal of each finding lives?",
            parameter="synth_image_size",
            value=128,
        ),
        page.Exercise(
            "Generate the cohort from another seed. Which numbers on this page stay within a few "
            "points (prevalences, the planted-versus-measured table, the signal check) and which "
            "move more? Use the `n` column of the planted table to say which differences are "
            "chance.",
            parameter="synth_seed",
            value=1,
        ),
        page.Exercise(
            "Let rarer labels into the signal check. How many test positives do the new labels "
            "have, and how far would you trust an AUROC computed on that many?",
            parameter="min_prevalence",
            value=0.02,
        ),
        page.Exercise(
            "The spurious marker is burned into AP films only. Using the ground-truth table "
            "(`gt`), compute the AUROC of the marker alone as a pneumonia detector on frontal "
            "images, then on PA films. Which chapter's image model would you expect to exploit "
            "it, and how would you show that it does?"
        ),
        page.Exercise(
            "Run the smoke profile. Which sections still make sense at that size, and which "
            "numbers become meaningless?",
            profile="smoke",
        ),
    ],
    PARAMS,
)
