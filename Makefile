# bigtut — the two commands a reader needs:
#   make lab    set everything up (first time only) and open the course in JupyterLab
#   make test   set everything up (first time only), lint, run the unit tests, build the explained models
#               (first time only) and execute every notebook
# and for authors:
#   make outputs   re-execute every notebook in place, storing fresh outputs
#   make student   write the student edition (solutions replaced by stubs) to student/
#   make lock      refresh requirements.txt from the current environment

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.bigtut-installed
NB_WORKERS ?= 2
export OMP_NUM_THREADS ?= 1
export PYDEVD_DISABLE_FILE_VALIDATION := 1

.PHONY: lab test lint unit models notebooks outputs student lock clean setup

setup: $(STAMP)

# Re-runs only when the pinned set or the package metadata changes: a second `make` installs nothing.
$(STAMP): requirements.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (bigtut)" >/dev/null
	@touch $(STAMP)

lab: $(STAMP)
	$(BIN)/jupyter lab --ServerApp.root_dir=. --LabApp.default_url=/lab/tree/notebooks/00_setup.ipynb \
		$$([ "$$(id -u)" = 0 ] && echo --allow-root)

lint: $(STAMP)
	$(BIN)/ruff check bigtut tests notebooks benchmarks conftest.py

unit: $(STAMP)
	$(BIN)/python -m pytest tests -q -n $(NB_WORKERS); rc=$$?; [ $$rc -eq 5 ] && rc=0; exit $$rc

# The models chapters 06-10 explain (chapter 04's GPT, chapter 05's BERT, chapter 09's planted-evidence BERT),
# trained once into runs/ (a few minutes) and loaded from there afterwards; the cache key covers every source
# file of bigtut.
models: $(STAMP)
	BIGTUT_PROGRESS=text $(BIN)/python -m bigtut.recipes

notebooks: $(STAMP)
	$(BIN)/python -m pytest notebooks -q --nbval-lax --nbval-current-env \
		--nbval-sanitize-with tests/nbval_sanitize.cfg --nbval-cell-timeout=600 \
		-n $(NB_WORKERS) --dist loadscope; rc=$$?; [ $$rc -eq 5 ] && rc=0; exit $$rc

test: lint unit models notebooks

outputs: models
	BIGTUT_PROGRESS=text $(BIN)/jupyter nbconvert --to notebook --execute --inplace --ExecutePreprocessor.timeout=600 \
		--ExecutePreprocessor.kernel_name=python3 notebooks/*.ipynb

student: $(STAMP)
	$(BIN)/python -m bigtut.exercises notebooks student/notebooks

lock: $(STAMP)
	{ echo "# The pinned set CI validated (Python 3.11, Linux). Refresh with: make lock"; \
	  echo "# torch==2.13.0 is the CPU wheel here; shap 0.51.x is the last release for Python 3.11."; \
	  $(BIN)/python -m pip freeze --exclude-editable | grep -vi '^bigtut' | sed 's/^torch==\(.*\)+cpu/torch==\1/'; \
	} > requirements.txt

clean:
	rm -rf $(VENV) student .pytest_cache .ruff_cache .hypothesis .notebook-times.json
