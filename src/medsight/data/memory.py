"""How much memory this process may still take before the kernel kills it.

On a workstation that is the system's MemAvailable. In a container, a SLURM job or a systemd unit the limit is
the control group's: a job given 8 GB on a 256 GB node sees 200 GB in /proc/meminfo and is killed at 8 GB. So
the room is the least of MemAvailable and, for this process's memory cgroup and each of its parents, the limit
less the working set (usage less the inactive page cache, which the kernel reclaims before it kills; the
figure `docker stats` and the kubelet use). cgroup v2 and v1 are both read.
"""

from __future__ import annotations

from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
UNLIMITED = 2**60  # v1 writes "no limit" as a number near 2**63


def meminfo_available_bytes(meminfo: Path = Path("/proc/meminfo")) -> int | None:
    """MemAvailable from /proc/meminfo (None where there is none)."""
    try:
        with open(meminfo) as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    if text == "max":
        return None
    try:
        return int(text)
    except ValueError:
        return None


def _stat(path: Path, key: str) -> int:
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except (OSError, ValueError):
        pass
    return 0


def _folders(mount: Path, relative: str) -> list[Path]:
    """The cgroup's folder and its parents up to the mount, those that exist (inside a container the
    mount is often the container's own cgroup, and the path named in /proc/self/cgroup is not there)."""
    parts = [p for p in relative.strip("/").split("/") if p]
    folders = [mount.joinpath(*parts[:n]) for n in range(len(parts), -1, -1)]
    return [f for f in folders if f.is_dir()]


def cgroup_room_bytes(root: Path = CGROUP_ROOT, self_cgroup: Path = Path("/proc/self/cgroup")) -> int | None:
    """The least room left under this process's memory cgroup limits (None where no limit is set)."""
    try:
        lines = self_cgroup.read_text().splitlines()
    except OSError:
        return None
    rooms = []
    for line in lines:
        hierarchy, _, rest = line.partition(":")
        controllers, _, relative = rest.partition(":")
        if hierarchy == "0" and controllers == "":  # v2: memory.max, memory.current
            mount, files = root, ("memory.max", "memory.current", "inactive_file")
            if (root / "unified").is_dir() and not (root / "cgroup.controllers").exists():
                mount = root / "unified"  # hybrid layout: v2 beside the v1 controllers
        elif "memory" in controllers.split(","):  # v1: memory.limit_in_bytes, memory.usage_in_bytes
            mount, files = root / "memory", ("memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file")
        else:
            continue
        limit_name, usage_name, inactive_key = files
        for folder in _folders(mount, relative):
            limit = _read_int(folder / limit_name)
            usage = _read_int(folder / usage_name)
            if limit is None or usage is None or limit >= UNLIMITED:
                continue
            working_set = max(0, usage - _stat(folder / "memory.stat", inactive_key))
            rooms.append(max(0, limit - working_set))
    return min(rooms) if rooms else None


def available_memory_bytes() -> int | None:
    """The memory this process may still allocate: MemAvailable, or less under a cgroup limit."""
    known = [v for v in (meminfo_available_bytes(), cgroup_room_bytes()) if v is not None]
    return min(known) if known else None
