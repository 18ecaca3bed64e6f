# bigtut — the two commands a reader needs:
#   make lab    set everything up (first time only) and open the course in JupyterLab
#   make test   set everything up (first time only), lint, check the prose's numbers against the stored outputs,
#               run the unit tests, load the explained models (committed) and execute every notebook
# and for authors:
#   make outputs   re-execute every notebook in place, storing fresh outputs
#   make student   write the student edition (solutions replaced by stubs) to student/notebooks/, and each
#                  notebook's exercises alone to student/exercises/
#   make lock      refresh requirements.txt from the current environment
# and the website (its own .venv-book from requirements-book.txt, so the course's pins stay untouched):
#   make book        build the course as a static site into _build/html from the chapters and the notebooks'
#                    stored outputs (nothing is executed); open _build/html/index.html
#   make book-check  build it, serve it on 127.0.0.1 and test every page in headless Chromium (installs Debian's
#                    chromium + chromium-driver when missing); screenshots in _build/screenshots/
# and for instructors (nbgrader in its own .venv-grader from requirements-grader.txt):
#   make nbgrader     write nbgrader's course directory to grading/: one assignment per notebook, its exercises
#   make grade-check  nbgrader generates every assignment and autogrades a solved copy (full marks) and the
#                     student edition (no marks), offline, in a temporary course directory

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.bigtut-installed
BOOK_VENV  := .venv-book
BOOK_BIN   := $(BOOK_VENV)/bin
BOOK_STAMP := $(BOOK_VENV)/.bigtut-book-installed
GRADER_VENV  := .venv-grader
GRADER_BIN   := $(GRADER_VENV)/bin
GRADER_STAMP := $(GRADER_VENV)/.bigtut-grader-installed
NB_WORKERS ?= 2
export OMP_NUM_THREADS ?= 1
export PYDEVD_DISABLE_FILE_VALIDATION := 1

.PHONY: lab test lint claims unit models notebooks outputs student lock clean setup book book-check nbgrader \
	grade-check

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
	$(BIN)/ruff check bigtut tests notebooks benchmarks book conftest.py

# Every number and comparison in the notebooks' markdown, the chapters and the README's course map, checked against
# the notebooks' stored outputs (bigtut/claims.py says how a sentence binds a number or declares it a constant).
claims: $(STAMP)
	$(BIN)/python -m bigtut.claims

unit: $(STAMP)
	$(BIN)/python -m pytest tests -q -n $(NB_WORKERS); rc=$$?; [ $$rc -eq 5 ] && rc=0; exit $$rc

# The models chapters 04-11 explain (chapter 04's GPT, chapter 05's BERT, chapter 09's planted-evidence BERT,
# chapter 11's retrieval GPT), loaded from their committed copies in checkpoints/explained/ (trained into runs/,
# a few minutes, only where an edit to the code that trains them changed their key). Then chapter 09's benchmark
# (every explanation method on the planted BERT, about a minute), cached in runs/.
models: $(STAMP)
	BIGTUT_PROGRESS=text $(BIN)/python -m bigtut.recipes
	BIGTUT_PROGRESS=text $(BIN)/python -m bigtut.explanation_benchmark

notebooks: $(STAMP)
	$(BIN)/python -m pytest notebooks -q --nbval-lax --nbval-current-env \
		--nbval-sanitize-with tests/nbval_sanitize.cfg --nbval-cell-timeout=600 \
		-n $(NB_WORKERS) --dist loadscope; rc=$$?; [ $$rc -eq 5 ] && rc=0; exit $$rc

test: lint claims unit models notebooks

outputs: models
	BIGTUT_PROGRESS=text $(BIN)/jupyter nbconvert --to notebook --execute --inplace --ExecutePreprocessor.timeout=600 \
		--ExecutePreprocessor.kernel_name=python3 notebooks/*.ipynb

student: $(STAMP)
	$(BIN)/python -m bigtut.exercises notebooks student/notebooks student/exercises

# Exercises' solutions stay in grading/source/ (nbgrader's generate_assignment strips them for the release).
nbgrader: $(STAMP) $(GRADER_STAMP)
	$(BIN)/python -m bigtut.exercises --nbgrader notebooks grading

$(GRADER_STAMP): requirements-grader.txt
	@test -x $(GRADER_BIN)/python || $(PYTHON) -m venv $(GRADER_VENV)
	$(GRADER_BIN)/python -m pip install --quiet -r requirements-grader.txt
	@touch $(GRADER_STAMP)

grade-check: $(STAMP) $(GRADER_STAMP)
	$(BIN)/python -m bigtut.exercises --grade-check notebooks $(GRADER_BIN)/nbgrader

lock: $(STAMP)
	{ echo "# The pinned set CI validated (Python 3.11, Linux). Refresh with: make lock"; \
	  echo "# torch==2.13.0 is the CPU wheel here; shap 0.51.x is the last release for Python 3.11."; \
	  $(BIN)/python -m pip freeze --exclude-editable | grep -vi '^bigtut' | sed 's/^torch==\(.*\)+cpu/torch==\1/'; \
	} > requirements.txt

# The website. Its tools live in .venv-book (pinned in requirements-book.txt), installed once like $(STAMP).
$(BOOK_STAMP): requirements-book.txt
	@test -x $(BOOK_BIN)/python || $(PYTHON) -m venv $(BOOK_VENV)
	$(BOOK_BIN)/python -m pip install --quiet -r requirements-book.txt
	@touch $(BOOK_STAMP)

book: $(BOOK_STAMP)
	$(BOOK_BIN)/python book/build.py

# Needs Debian's browser and driver (Python tools cannot download a browser here); as root it installs them.
book-check: book
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
		if [ "$$(id -u)" = 0 ]; then \
			echo "book-check: installing chromium and chromium-driver with apt-get"; \
			apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver; \
		else \
			echo "book-check: run 'sudo apt-get update && sudo apt-get install -y chromium chromium-driver' first" >&2; \
			exit 1; \
		fi; \
	fi
	$(BOOK_BIN)/python book/check.py --self-test
	$(BOOK_BIN)/python book/check.py

clean:
	rm -rf $(VENV) $(BOOK_VENV) $(GRADER_VENV) _build student grading .pytest_cache .ruff_cache .hypothesis .notebook-times.json
