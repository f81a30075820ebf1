"""JupyterLab's server config for this course's environment (`tools/git_notebook_outputs.sh
install` copies it to .venv/etc/jupyter/): after JupyterLab saves a notebook that git tracks,
refresh that notebook's git index entry, so a lesson that was only run does not show as
modified in `git status` and does not block `git pull` (see tools/git_notebook_outputs.sh)."""
import subprocess
from pathlib import Path


def refresh_git_index(model, os_path, contents_manager, **kwargs):
    """Post-save hook: `git_notebook_outputs.sh refresh NOTEBOOK` in the notebook's clone, in
    the background (the filter takes a few seconds; the save does not wait for it)."""
    if model.get("type") != "notebook":
        return
    folder = Path(os_path).parent
    top = subprocess.run(["git", "-C", str(folder), "rev-parse", "--show-toplevel"],
                         capture_output=True, text=True)
    script = Path(top.stdout.strip()) / "tools" / "git_notebook_outputs.sh"
    if top.returncode == 0 and script.exists():
        subprocess.Popen(["sh", str(script), "refresh", os_path], cwd=folder,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


c = get_config()  # noqa: F821  (defined by Jupyter when it reads this file)
c.FileContentsManager.post_save_hook = refresh_git_index
