"""Memory under a control-group limit (containers, SLURM jobs): read from cgroup v1 and v2 files, and a real
`medsight train` inside a memory cgroup smaller than its first step, which must end with one line, not the
kernel's kill. The real cases need a writable memory cgroup (root on a cgroup v1 or v2 host) and skip
without one."""

import os
import subprocess
import sys
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest

from medsight.data.memory import available_memory_bytes, cgroup_room_bytes

MB = 2**20
NOT_MOVED = 97  # the shell could not join the cgroup


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_v2_room_is_the_limit_less_the_working_set_of_the_tightest_ancestor(tmp_path):
    root = tmp_path / "cgroup"
    write(root / "cgroup.controllers", "cpu memory\n")
    write(root / "job" / "memory.max", f"{4096 * MB}\n")
    write(root / "job" / "memory.current", f"{1000 * MB}\n")
    write(root / "job" / "memory.stat", f"anon 1\ninactive_file {200 * MB}\n")
    write(root / "job" / "step" / "memory.max", "max\n")  # no limit of its own: the parent's counts
    write(root / "job" / "step" / "memory.current", f"{900 * MB}\n")
    write(tmp_path / "self", "0::/job/step\n")
    # 4096 - (1000 - 200) = 3296 MB
    assert cgroup_room_bytes(root, tmp_path / "self") == 3296 * MB


def test_v1_room_reads_the_memory_controller_and_ignores_the_no_limit_value(tmp_path):
    root = tmp_path / "cgroup"
    write(root / "memory" / "memory.limit_in_bytes", "9223372036854771712\n")
    write(root / "memory" / "memory.usage_in_bytes", f"{5000 * MB}\n")
    write(root / "memory" / "slurm" / "memory.limit_in_bytes", f"{2048 * MB}\n")
    write(root / "memory" / "slurm" / "memory.usage_in_bytes", f"{1500 * MB}\n")
    write(root / "memory" / "slurm" / "memory.stat", f"cache 1\ntotal_inactive_file {100 * MB}\n")
    write(tmp_path / "self", "5:cpu:/\n4:memory:/slurm\n0::/\n")
    assert cgroup_room_bytes(root, tmp_path / "self") == (2048 - 1400) * MB


def test_no_cgroup_limit_means_no_room_figure(tmp_path):
    root = tmp_path / "cgroup"
    write(root / "memory" / "memory.limit_in_bytes", "9223372036854771712\n")
    write(root / "memory" / "memory.usage_in_bytes", "1000\n")
    write(tmp_path / "self", "4:memory:/\n")
    assert cgroup_room_bytes(root, tmp_path / "self") is None
    assert cgroup_room_bytes(root, tmp_path / "missing") is None


def own_memory_cgroup() -> tuple[Path, str]:
    """(folder of this process's memory cgroup, 'v1' or 'v2')."""
    v2 = Path("/sys/fs/cgroup/cgroup.controllers")
    v2_memory = v2.exists() and "memory" in v2.read_text().split()
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        hierarchy, controllers, relative = line.split(":", 2)
        if "memory" in controllers.split(","):
            return Path("/sys/fs/cgroup/memory") / relative.lstrip("/"), "v1"
        if hierarchy == "0" and v2_memory:
            return Path("/sys/fs/cgroup") / relative.lstrip("/"), "v2"
    raise OSError("no memory cgroup")


@contextmanager
def memory_cgroup(limit: int):
    """A child memory cgroup limited to `limit` bytes; yields the file a process writes its pid into."""
    try:
        parent, version = own_memory_cgroup()
        folder = parent / f"medsight-test-{uuid.uuid4().hex[:8]}"
        folder.mkdir()
    except OSError as error:
        pytest.skip(f"cannot create a memory cgroup here ({error}); needs root on a cgroup v1/v2 host")
    try:
        limit_file = folder / ("memory.limit_in_bytes" if version == "v1" else "memory.max")
        try:
            limit_file.write_text(str(limit))
            if version == "v1" and (folder / "memory.memsw.limit_in_bytes").exists():
                (folder / "memory.memsw.limit_in_bytes").write_text(str(limit))  # no escape into swap
            elif version == "v2" and (folder / "memory.swap.max").exists():
                (folder / "memory.swap.max").write_text("0")
        except OSError as error:
            pytest.skip(f"cannot set a memory limit in {folder} ({error})")
        yield folder / "cgroup.procs"
    finally:
        try:
            folder.rmdir()
        except OSError:
            pass


def run_in(procs: Path, argv: list[str], timeout: int = 600) -> subprocess.CompletedProcess:
    """Run argv with its pid moved into the cgroup first, so every byte it allocates is charged there."""
    script = f'echo $$ > "{procs}" 2>/dev/null || exit {NOT_MOVED}; exec "$@"'
    done = subprocess.run(["sh", "-c", script, "sh", *argv], capture_output=True, encoding="utf-8", timeout=timeout,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    if done.returncode == NOT_MOVED:
        pytest.skip(f"cannot move a process into {procs.parent} (cgroup v2 delegation rules)")
    return done


def test_room_seen_inside_a_real_cgroup_is_under_its_limit():
    limit = 1024 * MB
    with memory_cgroup(limit) as procs:
        done = run_in(procs, [sys.executable, "-c",
                              "from medsight.data.memory import cgroup_room_bytes as r; print(r())"])
    assert done.returncode == 0, done.stderr
    room = int(done.stdout.strip())
    assert 0 < room < limit  # the interpreter's own pages are charged: less than the limit is left
    assert available_memory_bytes() is not None


def test_train_in_a_cgroup_smaller_than_its_first_step_exits_with_one_line(tmp_path):
    """Real out-of-memory: 1.2 GB for a process whose first step would save several GB of activations."""
    import numpy as np

    rng = np.random.default_rng(0)
    data = tmp_path / "big.npz"
    arrays = {}
    for split, n in (("train", 512), ("val", 64), ("test", 16)):
        arrays[f"{split}_images"] = rng.integers(0, 255, (n, 128, 128), dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(n) % 2)[:, None]
    np.savez(data, **arrays)
    out = tmp_path / "run"
    with memory_cgroup(1200 * MB) as procs:
        done = run_in(procs, [sys.executable, "-m", "medsight", "train", str(data), "--out", str(out),
                              "--epochs", "1", "--batch-size", "512"])
    assert done.returncode == 2, f"exit {done.returncode} (-9 or 137: killed by the kernel)\n{done.stderr[-2000:]}"
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"medsight: {out}") and "does not fit in memory" in last, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
