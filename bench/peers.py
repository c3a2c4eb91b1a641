"""bench/peers.py: the peer libraries' virtual environments, made by the bench on first use.

Each peer lives in bench/.venvs/<name> (gitignored), created with `python -m venv` from the
interpreter running the bench and filled by pip from the package index. A venv that installed
and imported once is marked with a stamp file and reused. `make test` never needs any of this.
"""

import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
VENVS = os.path.join(HERE, ".venvs")

# name -> (pip requirements, import check)
PEERS = {
    "datasets": (["datasets", "numpy"], "import datasets, pyarrow, numpy"),
    # 0.0.1 is a Rust (PyO3) wheel built against the NumPy 1.x C API in 2024: pin numpy<2.
    "infinidata-0.0.1": (["infinidata==0.0.1", "numpy<2"], "import infinidata, numpy; infinidata.TableView"),
    # bench/torch_bench.py: peers of infinidata.torch, each with the same CPU torch as .venv
    "datasets-torch": (["datasets", "numpy", "torch==2.13.0"], "import datasets, torch"),
    # streaming's package __init__ imports streaming.vision, hence torchvision, whose PyPI
    # wheel is the CUDA build (its _C.so needs libc10_cuda.so, absent from the CPU torch): the
    # check (and bench/torch_bench.py) stub that submodule out; MDS reading never uses it.
    "mosaicml-streaming": (["mosaicml-streaming", "torch==2.13.0"],
                           "import sys, types; sys.modules['streaming.vision'] = "
                           "types.ModuleType('streaming.vision'); import streaming, torch"),
}


class PeerUnavailable(Exception):
    """The peer could not be installed or imported here; str() says why."""


def _tail(text, n=6):
    lines = [l for l in text.strip().splitlines() if l.strip() and "is ignored: it is neither" not in l]
    return " | ".join(lines[-n:])


def ensure(name, log=print):
    """Return the python executable of peer `name`'s venv, installing it on first use.
    Raises PeerUnavailable with the reason when it cannot be installed or imported."""
    reqs, check = PEERS[name]
    venv = os.path.join(VENVS, name)
    py = os.path.join(venv, "bin", "python")
    stamp = os.path.join(venv, ".bench-ok")
    want = "\n".join(reqs)
    if os.path.exists(stamp) and open(stamp).read() == want and os.path.exists(py):
        return py
    log(f"[peers] installing {name} ({' '.join(reqs)}) into {os.path.relpath(venv)} ...")
    if not os.path.exists(py):
        r = subprocess.run([sys.executable, "-m", "venv", venv], capture_output=True, text=True)
        if r.returncode:
            raise PeerUnavailable(f"python -m venv failed: {_tail(r.stderr + r.stdout)}")
    r = subprocess.run([py, "-m", "pip", "install", "-q", "--disable-pip-version-check", *reqs],
                       capture_output=True, text=True)
    if r.returncode:
        raise PeerUnavailable(f"pip install {' '.join(reqs)} failed on Python "
                              f"{sys.version.split()[0]}: {_tail(r.stderr + r.stdout)}")
    r = subprocess.run([py, "-c", check], capture_output=True, text=True)
    if r.returncode:
        raise PeerUnavailable(f"installed, but `{check}` fails: {_tail(r.stderr + r.stdout, 3)}")
    with open(stamp, "w") as f:
        f.write(want)
    return py


def ensure_in_current(modules, log=print):
    """pip install `modules` (import name == package name) into the running interpreter's
    environment when missing. Returns the names still missing afterwards."""
    import importlib.util

    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        log(f"[peers] installing {' '.join(missing)} into {sys.prefix}")
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", *missing],
                       capture_output=True, text=True)
        importlib.invalidate_caches()
    return [m for m in modules if importlib.util.find_spec(m) is None]
