"""`course_utils` imports lazily: the light modules load without torch, the public names still import."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PUBLIC = ["load_model", "extract_activations", "chat", "build_emotion_vectors", "EmotionVectors"]


def _python(code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=300
    )


def test_course_utils_data_does_not_import_torch():
    run = _python(
        "import course_utils.data, sys; heavy = [m for m in ('torch', 'nnsight', 'transformers') "
        "if m in sys.modules]; assert not heavy, heavy"
    )
    assert run.returncode == 0, run.stderr


def test_public_names_import_and_are_the_submodules_objects():
    names = ", ".join(PUBLIC)
    run = _python(
        f"from course_utils import {names}\n"
        "import course_utils, course_utils.activations as a, course_utils.models as m, course_utils.vectors as v\n"
        "assert load_model is m.load_model and chat is m.chat and extract_activations is a.extract_activations\n"
        "assert EmotionVectors is v.EmotionVectors and build_emotion_vectors is v.build_emotion_vectors\n"
        f"assert sorted(course_utils.__all__) == {sorted(PUBLIC)!r}\n"
        "assert set(course_utils.__all__) <= set(dir(course_utils))\n"
        "try:\n    course_utils.no_such_name\nexcept AttributeError as e:\n    assert 'no_such_name' in str(e)\n"
        "else:\n    raise SystemExit('expected AttributeError')\n"
    )
    assert run.returncode == 0, run.stderr


def test_star_import_gives_the_public_names():
    run = _python(f"from course_utils import *\nassert all(callable(n) for n in [{', '.join(PUBLIC)}])")
    assert run.returncode == 0, run.stderr


def test_the_network_guard_still_runs_at_package_import():
    code = (
        "import course_utils.data, os, socket\n"
        "try:\n    socket.create_connection(('192.0.2.1', 80), timeout=0.2)\n"
        "except OSError as e:\n    print(type(e).__name__)\n"
        "print(os.environ.get('HF_HUB_OFFLINE'))\n"
    )
    blocked = _python(code, COURSE_BLOCK_NETWORK="1", HF_HUB_OFFLINE="")
    assert blocked.returncode == 0, blocked.stderr
    assert blocked.stdout.split() == ["NetworkBlockedError", "1"]
    # without the variable nothing is patched (checked without trying a real connection)
    free = _python(
        "import course_utils.data, socket, sys\n"
        "assert 'course_utils.offline' not in sys.modules\n"
        "assert getattr(socket.socket.connect, '__module__', None) != 'course_utils.offline'\n",
        COURSE_BLOCK_NETWORK="0",
    )
    assert free.returncode == 0, free.stderr
