#!/bin/sh
# Keep notebook outputs out of git: nbstripout as a git clean filter, set up per clone.
#
#     sh tools/git_notebook_outputs.sh install [PYTHON]   # once per clone; `make lab` and
#                                                         # `make test` run it at setup
#     sh tools/git_notebook_outputs.sh refresh [NOTEBOOK...] # after running notebooks
#
# install: .gitattributes (committed) sends every *.ipynb through the filter "nbstripout";
# what that filter runs lives in .git/config, which no clone receives, so each clone sets it
# here. At `git add` the filter drops outputs, execution counts, widget state, cell timings
# and the kernel's version details (language_info beyond its name), and keeps cell ids, so a
# notebook that was only executed is byte for byte the committed one: `git diff` shows nothing
# and a commit never carries outputs. PYTHON (default .venv/bin/python, relative to the top of
# the clone, where git runs filters) must have nbstripout installed. The filter is required:
# if PYTHON is gone (after `make clean`), `git add` of a notebook fails instead of committing
# outputs; `make lab` or `make test` brings it back.
#
# refresh: git decides "modified" from a file's size before asking the filter (kynan/nbstripout
# issue 65), so `git status` lists an executed notebook, and `git pull` refuses to update it,
# until its index entry is refreshed. This re-adds every notebook whose filtered content equals
# what is staged (or just the NOTEBOOKs given): the staged content stays the same and only
# git's record of the file's size and time changes. A notebook with real edits is left alone
# and stays "modified". JupyterLab does this by itself after every save: install also puts
# tools/jupyter_server_config.py, whose post-save hook runs refresh, into PYTHON's environment.
set -eu
tools="$(cd "$(dirname "$0")" && pwd)"

if ! git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    echo "not a git clone (or git is not installed): notebook outputs are not stripped by git"
    exit 0
fi
cd "$(git rev-parse --show-toplevel)"

case "${1:-}" in
install)
    python="${2:-.venv/bin/python}"
    strip="\"$python\" -m nbstripout --keep-id"
    git config filter.nbstripout.clean "$strip"
    git config filter.nbstripout.smudge cat
    git config filter.nbstripout.required true
    git config filter.nbstripout.extrakeys "metadata.language_info.codemirror_mode \
metadata.language_info.file_extension metadata.language_info.mimetype \
metadata.language_info.nbconvert_exporter metadata.language_info.pygments_lexer \
metadata.language_info.version"
    echo "git strips notebook outputs at commit in this clone (filter: $strip)"
    if config_dir="$("$python" -c 'import sys; print(sys.prefix)' 2>/dev/null)/etc/jupyter"; then
        mkdir -p "$config_dir"
        cp "$tools/jupyter_server_config.py" "$config_dir/jupyter_server_config.py"
        echo "JupyterLab refreshes git's index after saving a notebook ($config_dir)"
    fi
    ;;
refresh)
    shift
    [ $# -gt 0 ] || set -- '*.ipynb'
    git ls-files --modified -- "$@" | while IFS= read -r path; do
        if git diff --quiet -- "$path"; then
            git add -- "$path"
        fi
    done
    ;;
*)
    echo "usage: sh tools/git_notebook_outputs.sh install [PYTHON] | refresh [NOTEBOOK...]" >&2
    exit 2
    ;;
esac
