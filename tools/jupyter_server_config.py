"""JupyterLab's server config for this course's environment (`tools/git_notebook_outputs.sh
install` copies it to .venv/etc/jupyter/). Two things, both so that running a lesson changes
nothing a learner has to think about:

* after JupyterLab saves a notebook that git tracks, refresh that notebook's git index entry,
  so a lesson that was only run does not show as modified in `git status` and does not block
  `git pull` (see tools/git_notebook_outputs.sh);
* hand JupyterLab each notebook with the kernel's `language_info` already in its metadata.
  The committed notebooks carry only its name (the git filter strips the rest, the Python
  version among it, which differs between learners); JupyterLab writes the kernel's in when
  the kernel starts, and that change alone marked every notebook unsaved as it opened."""
import copy
import functools
import subprocess
from pathlib import Path

from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager


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


@functools.cache
def course_kernel_language_info() -> dict:
    """What the course's kernel (ipykernel in this environment, kernelspec `python3`, installed
    by the Makefile) reports as `language_info`, version included."""
    from ipykernel.ipkernel import IPythonKernel

    return IPythonKernel.language_info


class CourseContentsManager(AsyncLargeFileManager):
    """Jupyter Server's default contents manager, with `refresh_git_index` registered after
    saving and the kernel's `language_info` filled into every notebook of the course's kernel
    it hands out. The hook is registered, not set as `FileContentsManager.post_save_hook`:
    that trait holds one hook (ours would replace a learner's own, or theirs ours), and a hook
    set there by config is validated twice while the server starts, which warns "Overriding
    existing post_save_hook (refresh_git_index) with a new one (refresh_git_index)"."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.register_post_save_hook(refresh_git_index)

    async def get(self, path, content=True, type=None, format=None, **kwargs):
        model = await super().get(path, content=content, type=type, format=format, **kwargs)
        if model["type"] == "notebook" and model["content"] is not None:
            metadata = model["content"]["metadata"]
            if (metadata.get("kernelspec", {}).get("name") == "python3"
                    and metadata.get("language_info", {}).get("name", "python") == "python"):
                metadata["language_info"] = copy.deepcopy(course_kernel_language_info())
        return model


c = get_config()  # noqa: F821  (defined by Jupyter when it reads this file)
c.ServerApp.contents_manager_class = CourseContentsManager
