"""End to end in a real browser: JupyterLab runs the steering panel of 06_steering (the notebook's own set-up
cells and its panel cell, FAST), and moving the panel's strength slider makes the kernel generate a different reply.
The rest of 06 is run by tests/test_notebooks.py (papermill); here only what needs the browser is run.

Needs Chromium (Debian: `apt-get install -y chromium`, or COURSE_CHROMIUM=/path/to/chrome) and the
`playwright` Python package (in the `test` extras). Never `playwright install`: we drive the system browser.
See docs/browser_test.md.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator, Page

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "06_steering.ipynb"
SHOTS = ROOT / "build" / "browser"
CHROMIUM = Path(os.environ.get("COURSE_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SERVER_START_S = 120  # JupyterLab start-up on a busy 2-core machine
UI_TIMEOUT_S = 120  # loading the lab page, kernel start, widget rendering
RUN_ALL_S = 300  # 06's set-up cells and its panel (FAST): imports, the model and the committed vectors
REPLY_S = 300  # the kernel regenerating the reply after the slider moves
STEPS = 4  # ArrowRight presses on the strength handle: 4 x 0.25 = +1.00
# Plugin settings applied as defaults: no news/update toast, and every cell kept in the DOM.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/notebook-extension:tracker": {"windowingMode": "none"},
}
REPLY = re.compile(r"^\[(?P<emotion>\S+) (?P<strength>[+-]\d+\.\d\d) @ layer (?P<layer>\d+)\] (?P<text>.*)$", re.S)


@dataclass
class Lab:
    """A running JupyterLab server and where its files live."""

    url: str
    token: str
    root: Path
    log: Path
    process: subprocess.Popen[bytes]

    def log_text(self) -> str:
        """The server's combined stdout/stderr so far."""
        return self.log.read_text(errors="replace") if self.log.exists() else "(no server log)"


# ---------------------------------------------------------------- requirements


def _missing_requirements() -> str | None:
    """Why the browser test cannot run here, or None when Chromium and playwright are both present."""
    missing = []
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        missing.append(
            f"Chromium at {CHROMIUM} (Debian/Ubuntu: `apt-get install -y chromium`, "
            "or set COURSE_CHROMIUM to a Chromium/Chrome binary)"
        )
    if importlib.util.find_spec("playwright") is None:
        missing.append(
            "the playwright package (`.venv/bin/pip install -e '.[test]'`; "
            "do NOT run `playwright install`, the system Chromium is used)"
        )
    return "browser test needs " + " and ".join(missing) if missing else None


def _require_browser() -> None:
    """Skip when Chromium or playwright is missing; fail instead when COURSE_REQUIRE_BROWSER=1 (CI)."""
    why = _missing_requirements()
    if why is None:
        return
    if os.environ.get("COURSE_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{why} (COURSE_REQUIRE_BROWSER=1)", pytrace=False)
    pytest.skip(why)


# ---------------------------------------------------------------- the notebook and the server


def _fast_notebook(src: Path, dest: Path) -> Path:
    """Copy a notebook, turning its `FAST = ...` default into `FAST = True` in its parameters-tagged cell."""
    nb = json.loads(src.read_text(encoding="utf-8"))
    cells = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert cells, f"{src.name} has no cell tagged 'parameters'"
    source = "".join(cells[0]["source"])
    fast, n = re.subn(r"^FAST = .*$", "FAST = True", source, flags=re.M)
    assert n == 1, f"{src.name}: the parameters cell has no line `FAST = ...`:\n{source}"
    cells[0]["source"] = fast.splitlines(keepends=True)
    dest.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return dest


def _panel_notebook(src: Path, dest: Path) -> Path:
    """A FAST copy of `src` cut to its set-up cells (up to the one that makes `vectors`) and its steering-panel cell."""
    _fast_notebook(src, dest)
    nb = json.loads(dest.read_text(encoding="utf-8"))
    sources = ["".join(c["source"]) for c in nb["cells"]]
    setup = [i for i, s in enumerate(sources) if re.search(r"^vectors = ", s, flags=re.M)]
    panel = [i for i, s in enumerate(sources) if nb["cells"][i]["cell_type"] == "code" and "steering_panel(" in s]
    assert setup and len(panel) == 1, f"{src.name}: expected a cell making `vectors` and one steering_panel( cell"
    nb["cells"] = nb["cells"][: setup[0] + 1] + [nb["cells"][panel[0]]]
    dest.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return dest


def _free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _lab_env(home: Path) -> dict[str, str]:
    """Environment for the server: private config/runtime/settings dirs; the venv's kernel spec stays on the path."""
    dirs = {
        "JUPYTER_CONFIG_DIR": "config",
        "JUPYTER_DATA_DIR": "data",
        "JUPYTER_RUNTIME_DIR": "runtime",
        "IPYTHONDIR": "ipython",
        "JUPYTERLAB_SETTINGS_DIR": "lab/user-settings",
        "JUPYTERLAB_WORKSPACES_DIR": "lab/workspaces",
    }
    env = dict(os.environ, COURSE_BLOCK_NETWORK="1", PYTHONUNBUFFERED="1")
    for var, sub in dirs.items():
        (home / sub).mkdir(parents=True, exist_ok=True)
        env[var] = str(home / sub)
    overrides = home / "config" / "labconfig" / "default_setting_overrides.json"
    overrides.parent.mkdir(parents=True, exist_ok=True)
    overrides.write_text(json.dumps(LAB_SETTINGS, indent=1))
    return env


def _server_up(url: str, token: str) -> bool:
    """True once the server answers its status API."""
    req = urllib.request.Request(f"{url}/api/status", headers={"Authorization": f"token {token}"})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def _start_lab(home: Path, root: Path) -> Lab:
    """Start `jupyter lab` on 127.0.0.1 (free port, known token) and wait until it answers."""
    port, token = _free_port(), secrets.token_hex(16)
    log = home / "jupyter-lab.log"
    cmd = [
        sys.executable,
        "-m",
        "jupyter",
        "lab",
        "--no-browser",
        "--allow-root",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd,
            cwd=root,
            env=_lab_env(home),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    lab = Lab(f"http://127.0.0.1:{port}", token, root, log, proc)
    deadline = time.monotonic() + SERVER_START_S
    while not _server_up(lab.url, token):
        if proc.poll() is not None or time.monotonic() > deadline:
            _stop_lab(lab)
            pytest.fail(f"JupyterLab did not start (exit code {proc.returncode}); server log:\n{lab.log_text()}")
        time.sleep(0.5)
    return lab


def _stop_lab(lab: Lab) -> None:
    """Shut the server (and its kernels) down through its API; signal its process group only if it lingers."""
    if lab.process.poll() is None:
        req = urllib.request.Request(f"{lab.url}/api/shutdown", method="POST", headers={"Authorization": f"token {lab.token}"})
        with contextlib.suppress(OSError):
            urllib.request.urlopen(req, timeout=10).close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            lab.process.wait(timeout=30)
    for sig in (signal.SIGTERM, signal.SIGKILL):  # the group is the server's own session: it and its kernels
        if lab.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(lab.process.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                lab.process.wait(timeout=10)


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """JupyterLab serving a throwaway folder that holds 06_steering cut to its set-up and panel cells (FAST)."""
    _require_browser()
    home = tmp_path_factory.mktemp("jupyter-home")
    root = tmp_path_factory.mktemp("lab-root")
    _panel_notebook(NOTEBOOK, root / NOTEBOOK.name)
    server = _start_lab(home, root)
    yield server
    _stop_lab(server)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless system Chromium driven by playwright (never a downloaded browser)."""
    _require_browser()
    from playwright.sync_api import sync_playwright

    pw = sync_playwright().start()
    try:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
    except Exception:
        pw.stop()
        raise
    yield chromium
    chromium.close()
    pw.stop()


@pytest.fixture()
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser tab with generous timeouts."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    tab = context.new_page()
    tab.set_default_timeout(UI_TIMEOUT_S * 1000)
    yield tab
    context.close()


@contextlib.contextmanager
def _on_failure(page: Page, lab: Lab, name: str) -> Iterator[None]:
    """On any failure: save a screenshot and print the server log (pytest shows it with the failure)."""
    try:
        yield
    except BaseException:
        SHOTS.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(Exception):
            page.screenshot(path=str(SHOTS / name), animations="disabled", full_page=True)
            print(f"failure screenshot: {SHOTS / name}")
        print(f"---- JupyterLab server log ({lab.log}) ----\n{lab.log_text()}")
        raise


# ---------------------------------------------------------------- page helpers


def _open_notebook(page: Page, lab: Lab, name: str) -> None:
    """Load the lab with the notebook open and wait until its kernel reports Idle in the status bar."""
    page.goto(f"{lab.url}/lab/tree/{name}?token={lab.token}", wait_until="domcontentloaded")
    page.locator(".jp-Notebook .jp-CodeCell").first.wait_for(state="visible")
    _wait_kernel_idle(page, UI_TIMEOUT_S)


def _wait_kernel_idle(page: Page, timeout_s: float) -> None:
    """Wait for the status bar's kernel item to read '<kernel name> | Idle' (a real kernel, not 'No Kernel')."""
    idle = re.compile(r"^(?!No Kernel).+ \| Idle$")
    page.locator("#jp-main-statusbar").get_by_text(idle).wait_for(timeout=timeout_s * 1000)


def _run_all(page: Page) -> None:
    """Menu Run > Run All Cells."""
    page.locator("#jp-menu-panel .lm-MenuBar-item", has_text=re.compile(r"^Run$")).click()
    page.locator('.lm-Menu-item[data-command="runmenu:run-all"]', has_text="Run All Cells").click()


_PROGRESS_JS = """() => {
  const prompts = [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputArea-prompt')]
      .map(p => p.textContent.trim());
  const stderr = [...document.querySelectorAll('[data-mime-type="application/vnd.jupyter.stderr"]')]
      .map(e => e.textContent.slice(-3000));
  const status = document.querySelector('#jp-main-statusbar')?.textContent ?? '';
  return {prompts, stderr, idle: /\\| Idle/.test(status)};
}"""


def _wait_run_all(page: Page, timeout_s: float) -> list[str]:
    """Wait until every code cell shows an `[n]:` prompt and the kernel is idle; fail fast if Run All halts."""
    deadline, halted = time.monotonic() + timeout_s, 0
    state: dict[str, Any] = {}
    while time.monotonic() < deadline:
        state = page.evaluate(_PROGRESS_JS)
        done = [bool(re.fullmatch(r"\[\d+\]:", p)) for p in state["prompts"]]
        if state["idle"] and done and all(done):
            return state["prompts"]
        # A cell that raises stops Run All: the kernel idles with some cells run and the rest back to `[ ]:`.
        stopped = state["idle"] and any(done) and "[*]:" not in state["prompts"]
        halted = halted + 1 if stopped else 0
        if halted >= 3:
            pytest.fail(
                f"Run All stopped early (a cell raised?); prompts: {state['prompts']}\nlast stderr output:\n"
                + (state["stderr"][-1] if state["stderr"] else "(none)")
            )
        time.sleep(1.0)
    pytest.fail(f"Run All did not finish in {timeout_s} s; prompts: {state.get('prompts')}")


def _steering_panel(page: Page) -> Locator:
    """The steering panel: the output VBox that holds sliders and a reply label starting with '['."""
    panel = (
        page.locator(".jp-OutputArea-output .widget-vbox")
        .filter(has=page.locator(":scope > .widget-label", has_text=re.compile(r"^\[")))
        .filter(has=page.locator(".widget-slider"))
    )
    panel.wait_for(state="visible")
    assert panel.count() == 1, f"expected one steering panel, found {panel.count()}"
    return panel


def _reply(panel: Locator) -> re.Match[str]:
    """The panel's reply label, parsed into emotion, strength, layer and generated text."""
    text = panel.locator(":scope > .widget-label", has_text=re.compile(r"^\[")).text_content() or ""
    match = REPLY.match(text.strip())
    assert match, f"reply label does not look like '[emotion +s.ss @ layer n] text': {text!r}"
    return match


def _wait_reply(panel: Locator, strength: str, timeout_s: float) -> re.Match[str]:
    """Wait until the reply label shows the given strength (the kernel regenerated), and return it parsed."""
    label = panel.locator(":scope > .widget-label", has_text=re.compile(rf"^\[\S+ {re.escape(strength)} @ layer"))
    label.wait_for(timeout=timeout_s * 1000)
    return _reply(panel)


def _press_strength(panel: Locator, key: str, times: int) -> float:
    """Focus the strength slider's handle (the first slider), press `key` `times` times; its aria-valuenow."""
    handle = panel.locator(".widget-slider .noUi-handle").first
    handle.focus()
    for _ in range(times):
        handle.press(key)
    return float(handle.get_attribute("aria-valuenow") or "nan")


# ---------------------------------------------------------------- the test


def test_steering_slider_regenerates_reply_in_jupyterlab(lab: Lab, page: Page, capsys: pytest.CaptureFixture[str]) -> None:
    """Run All (06's set-up and panel cells) in JupyterLab, then move the strength slider: +1.00 and a different reply."""
    t0 = time.perf_counter()
    with _on_failure(page, lab, "06_steering_failure.png"):
        _open_notebook(page, lab, NOTEBOOK.name)
        t_open = time.perf_counter()
        _run_all(page)
        prompts = _wait_run_all(page, RUN_ALL_S)
        assert prompts[0] == "[1]:", prompts
        t_run = time.perf_counter()

        panel = _steering_panel(page)
        before = _reply(panel)
        assert before["strength"] == "+0.00", before.group(0)

        value = _press_strength(panel, "ArrowRight", STEPS)
        assert value == pytest.approx(0.25 * STEPS)
        after = _wait_reply(panel, f"{0.25 * STEPS:+.2f}", REPLY_S)  # each keypress regenerates; this is the last
        assert after["strength"] == f"{0.25 * STEPS:+.2f}", after.group(0)
        assert (after["emotion"], after["layer"]) == (before["emotion"], before["layer"])
        assert after["text"] != before["text"], f"steering did not change the reply: {after['text']!r}"

        SHOTS.mkdir(parents=True, exist_ok=True)
        panel.scroll_into_view_if_needed()
        page.screenshot(path=str(SHOTS / "06_steering_panel.png"), animations="disabled")
    t_end = time.perf_counter()
    with capsys.disabled():
        print(
            f"\n[browser] 06_steering: kernel idle {t_open - t0:.1f} s, Run All {t_run - t_open:.1f} s, "
            f"slider -> new reply {t_end - t_run:.1f} s"
        )


# ---------------------------------------------------------------- the static site (`make site`) and the lab report

_IMAGES_JS = """() => [...document.images].map(i => ({src: i.src.slice(0, 80), complete: i.complete, width: i.naturalWidth}))"""


def _open_static(page: Page, path: Path) -> list[dict[str, Any]]:
    """Open a local HTML file, wait until it and its images have loaded, and return each image's load state."""
    page.goto(path.as_uri(), wait_until="load")
    page.wait_for_function("() => [...document.images].every(i => i.complete)")
    return page.evaluate(_IMAGES_JS)


def test_site_and_report_show_every_figure_in_chromium(browser: Browser, tmp_build: Path) -> None:
    """The site's index, a notebook page and the report open from disk; every image loads; the verdict column is there."""
    from test_site import fake_course  # the same fake executed course the no-browser site tests use

    from course_utils import site

    fake_course(tmp_build)
    index = site.build_site()
    context = browser.new_context(viewport={"width": 1300, "height": 900}, offline=True)
    tab = context.new_page()
    tab.set_default_timeout(UI_TIMEOUT_S * 1000)
    errors: list[str] = []
    tab.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    tab.on("requestfailed", lambda r: errors.append(f"request failed: {r.url[:100]}"))
    try:
        shown = _open_static(tab, index)
        names = tab.locator("a").evaluate_all("links => links.map(a => a.getAttribute('href'))")
        assert len([n for n in names if re.fullmatch(r"\d\d_\w+\.html", n)]) == 9 and "report.html" in names
        tab.locator("a", has_text="Notebook 6").click()  # follow a link as a reader would: 06_steering
        tab.wait_for_load_state("load")
        assert tab.url.endswith("06_steering.html")
        shown = _open_static(tab, index.parent / "06_steering.html")
        assert shown and all(i["complete"] and i["width"] > 0 for i in shown), shown
        assert "accuracy 6" in tab.locator("body").inner_text()
        shown = _open_static(tab, index.parent / "report.html")
        assert shown and all(i["complete"] and i["width"] > 0 for i in shown), shown
        heads = tab.locator("table.verdicts th").all_inner_texts()
        assert heads[0] == "finding" and heads[-1].startswith("verdict"), heads
        assert tab.locator("table.verdicts .verdict", has_text="replicates").count() >= 1
        assert not errors, errors
        SHOTS.mkdir(parents=True, exist_ok=True)
        tab.screenshot(path=str(SHOTS / "site_report.png"), animations="disabled")
    except BaseException:
        SHOTS.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(Exception):
            tab.screenshot(path=str(SHOTS / "site_failure.png"), animations="disabled", full_page=True)
        raise
    finally:
        context.close()
