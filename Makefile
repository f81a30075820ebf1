# The course's commands. `make lab` and `make test` are the README quickstart.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# The server `make lab` and `make teach` start: rooted at the clone, so notebooks/, exercises/ and
# my-work/ are all in its file browser, with lesson 00 open. tests/test_lab.py reads this command
# from `make -n lab`.
LAB := $(BIN)/jupyter lab $(if $(filter 0,$(shell id -u)),--allow-root) --ServerApp.root_dir=. \
	--LabApp.default_url=/lab/tree/notebooks/00_data_and_evaluation.ipynb
# nbgrader's teacher tools: its menu, Validate button and Create Assignment sidebar (the lab
# extension) and the formgrader behind them (the server extensions). The setup turns them off,
# so a learner's JupyterLab (`make lab`, or `jupyter lab` in .venv) does not show them;
# `make teach` turns them back on for its own server (tools/teach/).
NBGRADER_LAB    := @jupyter/nbgrader
NBGRADER_SERVER := $(addprefix nbgrader.server_extensions.,formgrader validate_assignment \
	assignment_list course_list)

.PHONY: lab teach course check-book test test-full exercises bench clean

# The kernel's display name is the committed notebooks' ("Python 3"): JupyterLab writes it into
# a notebook it saves, so another name would show as a change. git_notebook_outputs.sh makes git
# strip notebook outputs at commit in this clone; the last two steps hide nbgrader's teacher tools.
$(STAMP): pyproject.toml constraints.txt tools/git_notebook_outputs.sh tools/jupyter_server_config.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -c constraints.txt -e ".[dev]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3"
	sh tools/git_notebook_outputs.sh install $(BIN)/python
	$(BIN)/jupyter labextension disable --level=sys_prefix $(NBGRADER_LAB) >/dev/null
	$(BIN)/jupyter server extension disable --sys-prefix $(NBGRADER_SERVER) >/dev/null
	touch $(STAMP)

## lab: set up and open the course in JupyterLab
lab: $(STAMP)
	$(LAB)

## teach: the same JupyterLab with nbgrader's teacher tools (docs/teachers.md)
teach: $(STAMP)
	JUPYTER_CONFIG_PATH="$(CURDIR)/tools/teach" $(LAB)

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
