"""The torch.distributed harness shared by test_torch.py and test_torch_pack.py.

A test writes a script that starts with GLOO (the gloo process group, one forked process per
rank over the saved table DATA/t, results gathered to rank 0) and ends with its own checks,
then runs it with run_distributed, which expects the script to print OK last."""

from conftest import run_python

GLOO = r"""
import json, os
import multiprocessing as mp
import numpy as np, torch, torch.distributed as dist
import infinidata
from infinidata.torch import TableLoader

def _rank(rank, world, store, tag, out, work):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method="file://" + store, rank=rank, world_size=world)
    tv = infinidata.TableView.load_from_disk(os.environ["DATA"], "t")
    res = work(tv, tag)
    allres = [None] * world
    dist.all_gather_object(allres, res)
    if rank == 0:
        json.dump(allres, open(out, "w"))
    dist.destroy_process_group()

def launch(world, tag, work):
    # work(tv, tag) runs in each rank and returns its JSON-able results; rank 0 gathers them
    store = os.path.join(os.environ["DATA"], f"store-{tag}")
    out = os.path.join(os.environ["DATA"], f"{tag}.json")
    ctx = mp.get_context("fork")
    ps = [ctx.Process(target=_rank, args=(r, world, store, tag, out, work)) for r in range(world)]
    for p in ps:
        p.start()
    for p in ps:
        p.join(120)
        assert p.exitcode == 0, (tag, p.exitcode)
    return json.load(open(out))
"""


def run_distributed(tmp_path, script):
    """Run GLOO + script in a fresh interpreter with DATA (an empty directory) and a temp area
    of its own under tmp_path; fails the test unless it exits 0 and prints OK last."""
    path = tmp_path / "dist_run.py"
    path.write_text(GLOO + script)
    data = tmp_path / "data"
    data.mkdir()
    code = f"import runpy; runpy.run_path({str(path)!r}, run_name='__main__')"
    p = run_python(code, env={"DATA": str(data), "INFINIDATA_TMPDIR": str(tmp_path / "area")},
                   timeout=240)
    assert p.stdout.strip().endswith("OK"), p.stdout
