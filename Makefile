# The course's commands. `make lab` and `make test` are the README quickstart.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: lab course check-book test test-full exercises bench clean

# The kernel's display name is the committed notebooks' ("Python 3"): JupyterLab writes it into
# a notebook it saves, so another name would show as a change. The last step makes git strip
# notebook outputs at commit in this clone (see tools/git_notebook_outputs.sh).
$(STAMP): pyproject.toml constraints.txt tools/git_notebook_outputs.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -c constraints.txt -e ".[dev]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3"
	sh tools/git_notebook_outputs.sh install $(BIN)/python
	touch $(STAMP)

## lab: set up and open the course in JupyterLab
lab: $(STAMP)
	$(BIN)/jupyter lab $(if $(filter 0,$(shell id -u)),--allow-root) notebooks/00_data_and_evaluation.ipynb

## course: set up and execute every notebook headless to HTML in build/html
course: $(STAMP)
	$(BIN)/python tools/build_course.py

## check-book: open every page of build/html in headless Chromium offline (SHOTS=dir PAGES=00,05 for screenshots)
check-book: $(STAMP)
	$(BIN)/python tools/check_book.py build/html $(if $(SHOTS),--screenshots $(SHOTS)) $(if $(PAGES),--pages $(PAGES))

## test: set up and run the whole test suite (quick profile)
test: $(STAMP)
	COURSE_PROFILE=quick $(BIN)/python -m pytest

## test-full: run the lessons in the full profile (MovieLens, paper sizes: meant for a GPU)
test-full: $(STAMP)
	COURSE_PROFILE=full $(BIN)/python -m pytest notebooks

## exercises: regenerate exercises/ from solutions/
exercises: $(STAMP)
	$(BIN)/python tools/make_exercises.py

## bench: time every notebook in the quick profile
bench: $(STAMP)
	$(BIN)/python bench/notebooks.py

clean:
	rm -rf $(VENV) build
