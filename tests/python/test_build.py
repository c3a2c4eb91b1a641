"""The suite runs against the package it was started with, in subprocesses too.

`make sanitize` runs pytest on an AddressSanitizer build of the extension put first on
PYTHONPATH; the suite's subprocesses (started from other working directories) must import
that same build, not fail to import (a relative PYTHONPATH) nor pick up another one."""

import os
import subprocess
import sys

from infinidata import _infinidata as core


def test_subprocess_in_another_directory_imports_the_same_extension(tmp_path):
    code = "from infinidata import _infinidata as c; print(c.__file__)"
    p = subprocess.run([sys.executable, "-c", code], cwd=str(tmp_path), capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert os.path.realpath(p.stdout.strip()) == os.path.realpath(core.__file__)
