# The course's commands. `make lab` and `make test` are the README quickstart.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: lab course test exercises bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -c constraints.txt -e ".[dev]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (course)"
	touch $(STAMP)

## lab: set up and open the course in JupyterLab
lab: $(STAMP)
	$(BIN)/jupyter lab $(if $(filter 0,$(shell id -u)),--allow-root) notebooks/00_data_and_evaluation.ipynb

## course: set up and execute every notebook headless to HTML in build/html
course: $(STAMP)
	$(BIN)/python tools/build_course.py

## test: set up and run the whole test suite (quick profile)
test: $(STAMP)
	COURSE_PROFILE=quick $(BIN)/python -m pytest

## exercises: regenerate exercises/ from solutions/
exercises: $(STAMP)
	$(BIN)/python tools/make_exercises.py

## bench: time every notebook in the quick profile
bench: $(STAMP)
	$(BIN)/python bench/notebooks.py

clean:
	rm -rf $(VENV) build
