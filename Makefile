# The two commands the README promises: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

export AUTOTAG_HOME ?= $(CURDIR)/var
export DAGSTER_HOME ?= $(AUTOTAG_HOME)/dagster

.PHONY: venv demo test ui bench-ingest bench-corpus bench-models bench-predict clean-var label-studio

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/autotag demo --days 7

# Dagster's own check of the code location (workspace.yaml, as `make ui` loads it) first, then the suite.
test: $(STAMP)
	$(BIN)/python -c "from dagster_autotag.demo import ensure_dagster_home; ensure_dagster_home()"
	$(BIN)/dagster definitions validate -w workspace.yaml
	$(BIN)/python -m pytest -q

ui: $(STAMP)
	$(BIN)/python -c "from dagster_autotag.demo import ensure_dagster_home; ensure_dagster_home()"
	$(BIN)/dagster dev -w workspace.yaml

# Label Studio for the review loop: its own virtualenv (built once per machine and version, outside the
# repo), data in $(AUTOTAG_HOME)/label-studio, on http://127.0.0.1:$${LABEL_STUDIO_PORT:-8080}.
label-studio:
	bin/label-studio start

bench-ingest: $(STAMP)
	$(BIN)/python bench/ingest.py

bench-corpus: $(STAMP)
	$(BIN)/python bench/corpus.py

bench-models: $(STAMP)
	$(BIN)/python bench/models.py

bench-predict: $(STAMP)
	$(BIN)/python bench/predict.py

clean-var:
	rm -rf var
