"""The ipywidgets panels react to their controls (the same code runs on ipywidgets 8 and Colab's 7.7)."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from course_utils import EmotionVectors
from course_utils.steering import random_direction
from course_utils.widgets import emotion_explorer, steering_panel


def _vectors(d: int) -> EmotionVectors:
    return EmotionVectors(["calm", "desperate", "happy"], 20, torch.stack([random_direction(d, s) for s in range(3)]))


def test_explorer_updates_on_selection():
    v = _vectors(16)
    coords = pd.DataFrame(
        {"pc1": [0.1, -0.2, 0.3], "pc2": [0.0, 0.5, -0.5], "valence": [0.9, 0.1, 1.0], "arousal": [0.1, 0.8, 0.7]}, index=v.names
    )
    panel = emotion_explorer(v, {"calm": ["relax"], "desperate": ["help"], "happy": ["joy"]}, coords)
    pick, out = panel.children
    assert "<b>calm</b>" in out.value and "relax" in out.value
    pick.value = "desperate"
    assert "<b>desperate</b>" in out.value and "help" in out.value and "nearest" in out.value


def test_steering_panel_regenerates_when_strength_moves(model):
    panel = steering_panel(model, _vectors(model.d_model), prompt="Say something.", max_new_tokens=6)
    emotion, slider, layer, text, reply = panel.children
    before = reply.value
    assert before.startswith("[calm +0.00 @ layer 20]")
    slider.value = 2.0
    assert reply.value.startswith("[calm +2.00 @ layer 20]") and reply.value != before


@pytest.mark.slow
def test_the_same_panels_work_with_colabs_ipywidgets_7():
    """Rerun the tests above in a subprocess that imports ipywidgets 7.7.5 (Colab's line), installed by make setup."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    if os.environ.get("COURSE_WIDGETS_PASS") == "7":
        return  # already inside the ipywidgets 7 run
    target = Path(sys.prefix) / "ipywidgets77"
    assert (target / "ipywidgets").is_dir(), f"{target} is missing: run `make setup` (it installs ipywidgets 7.7.5 there)"
    env = dict(os.environ, PYTHONPATH=f"{target}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", COURSE_WIDGETS_PASS="7")
    check = subprocess.run(
        [sys.executable, "-c", "import ipywidgets; print(ipywidgets.__version__)"], env=env, capture_output=True, text=True
    )
    assert check.stdout.strip().startswith("7.7"), check.stdout + check.stderr
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__], env=env, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
