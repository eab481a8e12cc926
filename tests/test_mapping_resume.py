"""Resume: an export killed with SIGKILL mid-way is rerun, skips the finished blocks and writes the
same map, byte for byte, as an uninterrupted export."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cropmeta._fs import _host_tag
from cropmeta.mapping.export import export
from cropmeta.mapping.manifest import work_dir_for
from cropmeta.testing import make_double_run, make_ee_tile

LOADER = "cropmeta.testing:load_double"

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parent.parent


def _done(work: Path) -> int:
    f = work / "done.jsonl"
    if not f.exists():
        return 0
    return sum(1 for line in f.read_text().splitlines() if line.strip().startswith("{") and line.strip().endswith("}"))


def test_sigkill_then_resume_gives_the_same_map(tmp_path):
    run = make_double_run(tmp_path / "run", kind="ndvi")
    tile = make_ee_tile(tmp_path / "in" / "wide.tif", height=8, width=512 * 6, seed=5)  # 6 blocks
    out = tmp_path / "map" / "map.tif"
    ref = tmp_path / "ref" / "map.tif"
    export(run, ref, inputs=[tile], loader=LOADER, progress=False, quicklook=False)

    code = (
        "from cropmeta.mapping.export import export\n"
        f"export({str(run)!r}, {str(out)!r}, inputs=[{str(tile)!r}], loader={LOADER!r}, progress=False, "
        "quicklook=False, batch_size=1024)\n"
    )
    env = dict(os.environ, CROPMETA_TEST_PREDICT_DELAY="0.25", PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    work = work_dir_for(out)
    deadline = time.monotonic() + 60
    try:
        while _done(work) < 2:
            assert proc.poll() is None, proc.stdout.read().decode()
            assert time.monotonic() < deadline, "export made no progress"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    finished = _done(work)
    assert 2 <= finished < 6 and not out.exists()
    # what a kill during the final COG copy leaves: the dead writer's temporary file and GDAL's side file
    host = _host_tag()
    stale = [out.parent / f".{out.name}.{proc.pid}-{host}-k1ll.tif",
             out.parent / f".{out.name}.{proc.pid}-{host}-k1ll.tif.ovr.tmp"]
    for f in stale:
        f.write_bytes(b"half a COG")
    live = out.parent / f".{out.name}.{os.getppid()}-{host}-live.tif"  # a live process's: left alone
    other_host = out.parent / f".{out.name}.{proc.pid}-0other-x.tif"  # another host's (shared disk): left alone
    for f in (live, other_host):
        f.write_bytes(b"being written")

    res = export(run, out, inputs=[tile], loader=LOADER, progress=False, quicklook=False, batch_size=1024)
    assert res["blocks_resumed"] >= finished and res["blocks_computed"] == 6 - res["blocks_resumed"]
    assert out.read_bytes() == ref.read_bytes()
    assert not work.exists()
    assert not any(f.exists() for f in stale) and live.exists() and other_host.exists()
    assert {p.name for p in out.parent.iterdir()} == {out.name, out.with_suffix(".stac.json").name, live.name,
                                                      other_host.name}


def test_changed_input_is_not_resumed(tmp_path):
    """Parts computed from another model/input are never reused."""
    run = make_double_run(tmp_path / "run", kind="ndvi")
    tile = make_ee_tile(tmp_path / "t.tif", height=8, width=20)
    out = tmp_path / "m.tif"
    res = export(run, out, inputs=[tile], loader=LOADER, progress=False, quicklook=False, keep_work=True)
    assert res["blocks_computed"] == 1
    res = export(run, out, inputs=[tile], loader=LOADER, progress=False, quicklook=False, keep_work=True,
                 overwrite=True)
    assert res["blocks_resumed"] == 1 and res["blocks_computed"] == 0
    make_double_run(tmp_path / "run", kind="ndvi", c=0.3)  # another model in the same run dir
    res = export(run, out, inputs=[tile], loader=LOADER, progress=False, quicklook=False, overwrite=True)
    assert res["blocks_resumed"] == 0 and res["blocks_computed"] == 1
