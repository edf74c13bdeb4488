# Two commands do all set-up on a fresh clone: `make book` and `make test`.
# Each creates .venv when missing; the set-up step is skipped while pyproject.toml and
# environment.yml are unchanged (the stamp file is keyed on their content).
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
ENV_HASH := $(shell cat pyproject.toml environment.yml | sha256sum | cut -c1-16)
STAMP  := $(VENV)/.installed-$(ENV_HASH)
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export PYDEVD_DISABLE_FILE_VALIDATION := 1

.PHONY: env data chapters scorecard book test test-fast lint format publish publish-check \
        clean distclean

## What the built book links to (README, "Publishing"): set BOOK_REPO_URL (and a launch
## service) and `make book` builds with a copy of _config.yml that names them; left empty,
## the book builds offline from _config.yml as it is.
BOOK_REPO_URL       ?=
BOOK_REPO_BRANCH    ?= main
BOOK_BINDERHUB_URL  ?=
BOOK_JUPYTERHUB_URL ?=
BOOK_CONFIG         := _build/config/_config.yml
BOOK_OVERRIDES      := $(strip $(BOOK_REPO_URL)$(BOOK_BINDERHUB_URL)$(BOOK_JUPYTERHUB_URL))

env: $(STAMP)

$(STAMP): pyproject.toml environment.yml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	$(BIN)/python -m ipykernel install --sys-prefix --name mmcxr --display-name "mmcxr (Python 3.11)" >/dev/null
	@rm -f $(VENV)/.installed-*
	@touch $@

## the default synthetic cohorts every chapter reads (skipped when present)
data: env
	$(BIN)/python -m mmcxr.book data

## execute every chapter with its published (`book`) parameters; unchanged chapters are reused
chapters: data
	$(BIN)/python -m mmcxr.book execute

## the reproducibility scorecard page (book/generated/scorecard.md), from every claims.json
scorecard: chapters
	$(BIN)/python -m mmcxr.book scorecard

## the HTML book, in _build/html/index.html (the build regenerates the scorecard first).
## Chapters executed on credentialed data are refused; LOCAL_ONLY=1 builds them into
## _build/local-only/ instead, which must never be published.
book: chapters
ifneq ($(BOOK_OVERRIDES),)
	$(BIN)/python -m mmcxr.publish --write-config $(BOOK_CONFIG) --repo-url "$(BOOK_REPO_URL)" \
	    --repo-branch "$(BOOK_REPO_BRANCH)" --binderhub-url "$(BOOK_BINDERHUB_URL)" \
	    --jupyterhub-url "$(BOOK_JUPYTERHUB_URL)"
endif
	$(BIN)/python -m mmcxr.book build $(if $(LOCAL_ONLY),--local-only) \
	    $(if $(BOOK_OVERRIDES),--config $(BOOK_CONFIG))

## push _build/html to the gh-pages branch of REMOTE (a git URL, or a remote's name such as
## origin) with ghp-import; refused, with nothing pushed, when REMOTE is empty, the book is not
## built, or any published chapter was executed on credentialed data (mmcxr/publish.py)
publish: env
	$(BIN)/python -m mmcxr.publish --remote "$(REMOTE)"

## the publishing guard alone, on _build/html (CI runs it before deploying to GitHub Pages)
publish-check: env
	$(BIN)/python -m mmcxr.publish --check

## every test: the unit tier, the end-to-end `slow` tier and the `browser` tier
test: env
	$(BIN)/python -m pytest

## the unit tier only (under 2 minutes on 2 cores): neither `slow` nor `browser` tests
test-fast: env
	$(BIN)/python -m pytest -m "not slow and not browser"

lint: env
	$(BIN)/ruff check .
	$(BIN)/ruff format --check mmcxr tests bench

format: env
	$(BIN)/ruff format mmcxr tests bench
	$(BIN)/ruff check --fix .

clean:
	rm -rf _build book/chapters book/generated .pytest_cache .ruff_cache

distclean: clean
	rm -rf $(VENV) data outputs
