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

.PHONY: env data chapters scorecard book test lint format clean distclean

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
	$(BIN)/python -m mmcxr.book build $(if $(LOCAL_ONLY),--local-only)

test: env
	$(BIN)/python -m pytest

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
