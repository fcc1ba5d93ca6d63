"""The server under load: concurrent clients post real images to POST /predict over loopback for a fixed time.

Starts `medsight serve RUN` in a child process, writes BreastMNIST test images as PNG files, then runs
CLIENTS asyncio clients that each post one image after another until the time is up (no request is
abandoned: each waits for its answer). Counts answers, failures (non-200, malformed JSON, transport errors),
lost requests (sent, never answered), and answers that differ for the same image (a race would show there).

    python benchmarks/deploy/load.py --run RUN --engine torch --clients 16 --seconds 60

With --token the server requires a bearer token, which the clients send; --abusers N adds N clients that,
in turn, post a decompression bomb (a 20000 x 20000 PNG of 0.4 MB, 400 million voxels, over serve's default
cap of 268 million: 413 expected) and requests with a wrong
token (401 expected, with --token), counted apart from the real clients.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "medmnist" / "breastmnist.npz"


def write_pngs(data: Path, folder: Path) -> list[bytes]:
    from PIL import Image

    images = np.load(data)["test_images"]
    out = []
    for i, image in enumerate(images):
        path = folder / f"breast_test_{i:03d}.png"
        Image.fromarray(image).save(path)
        out.append(path.read_bytes())
    return out


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_healthy(url: str, process: subprocess.Popen, seconds: float = 180) -> None:
    import httpx

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited with code {process.returncode}")
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit("the server did not become healthy in time")


def png_bomb(side: int = 20000) -> bytes:
    """A real PNG of side x side zero pixels, about 0.4 MB compressed."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = zlib.compress(b"\0" * ((side + 1) * side), 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)) + \
        chunk(b"IDAT", rows) + chunk(b"IEND", b"")


async def abuser_loop(client, url: str, image: bytes, deadline: float, headers: dict, stats: dict) -> None:
    """Bombs (413 expected) and, where the server has a token, wrong tokens (401 expected)."""
    import httpx

    bomb, turn = png_bomb(), 0
    while time.monotonic() < deadline:
        wrong_token = bool(headers) and turn % 2 == 1
        turn += 1
        expected = 401 if wrong_token else 413
        try:
            response = await client.post(url + "/predict", files={"file": ("bomb.png", image if wrong_token else bomb)},
                                         headers={"Authorization": "Bearer wrong"} if wrong_token else headers)
        except httpx.HTTPError as exc:
            stats["abuse_unexpected"] += 1
            stats["errors"].append(f"abuse: {type(exc).__name__}")
            continue
        stats["abuse_sent"][str(expected)] = stats["abuse_sent"].get(str(expected), 0) + 1
        if response.status_code != expected:
            stats["abuse_unexpected"] += 1
            stats["errors"].append(f"abuse {response.status_code} (expected {expected}): {response.text[:80]}")


async def client_loop(client, url: str, images: list[bytes], start: int, deadline: float, explain: bool,
                      stats: dict, headers: dict | None = None) -> None:
    import httpx

    k = start
    while time.monotonic() < deadline:
        index = k % len(images)
        k += 7  # clients walk through the images in different orders
        stats["sent"] += 1
        began = time.perf_counter()
        try:
            response = await client.post(url + "/predict", files={"file": (f"img{index}.png", images[index], "image/png")},
                                         data={"explain": "true" if explain else "false"}, headers=headers or {})
        except httpx.HTTPError as exc:
            stats["lost"] += 1
            stats["errors"].append(type(exc).__name__)
            continue
        stats["latency_ms"].append((time.perf_counter() - began) * 1e3)
        try:
            body = response.json()
            ok = response.status_code == 200 and isinstance(body["prediction"]["probabilities"], dict)
        except (ValueError, KeyError, TypeError):
            ok = False
        if not ok:
            stats["failed"] += 1
            stats["errors"].append(f"{response.status_code}: {response.text[:120]}")
            continue
        answer = json.dumps(body["prediction"], sort_keys=True)
        first = stats["answers"].setdefault(index, answer)
        if first != answer:
            stats["inconsistent"] += 1


async def load(url: str, images: list[bytes], clients: int, seconds: float, explain: bool, token: str | None = None,
               abusers: int = 0) -> dict:
    import httpx

    stats = {"sent": 0, "lost": 0, "failed": 0, "inconsistent": 0, "latency_ms": [], "errors": [], "answers": {},
             "abuse_sent": {}, "abuse_unexpected": 0}
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    # the abusers have connections of their own: what the server does with theirs never touches the clients'
    async with httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(120.0)) as client, \
            httpx.AsyncClient(timeout=httpx.Timeout(120.0)) as abuser:
        began = time.perf_counter()
        deadline = time.monotonic() + seconds
        await asyncio.gather(*(client_loop(client, url, images, c * 11, deadline, explain, stats, headers)
                               for c in range(clients)),
                             *(abuser_loop(abuser, url, images[0], deadline, headers, stats) for _ in range(abusers)))
        stats["elapsed"] = time.perf_counter() - began
    return stats


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, type=Path)
    parser.add_argument("--engine", choices=("torch", "onnx"), default="torch")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--explain", action="store_true", help="ask for Grad-CAM maps in every answer")
    parser.add_argument("--threads", type=int, help="threads per prediction (default: medsight serve's)")
    parser.add_argument("--concurrency", type=int, help="predictions at once (default: medsight serve's)")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--token", help="start the server with this bearer token; clients send it")
    parser.add_argument("--abusers", type=int, default=0, help="extra clients sending bombs and wrong tokens")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp:
        images = write_pngs(args.data, Path(tmp))
        log = open(Path(tmp) / "server.log", "w")
        command = [sys.executable, "-m", "medsight", "serve", str(args.run), "--port", str(port), "--engine", args.engine]
        if args.token:
            command += ["--token", args.token]
        if args.threads or args.concurrency:  # settings the command line does not offer: call serve() itself
            command = [sys.executable, "-c", "import sys; from medsight.serving.app import serve; "
                       f"serve(sys.argv[1], port={port}, engine={args.engine!r}, threads={args.threads or 1}, "
                       f"concurrency={args.concurrency})", str(args.run)]
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_healthy(url, server)
            stats = asyncio.run(load(url, images, args.clients, args.seconds, args.explain, args.token, args.abusers))
            alive = server.poll() is None
        finally:
            server.terminate()
            server.wait(timeout=30)
            log.close()
    latency = np.array(stats["latency_ms"])
    answered = len(latency)
    report = {
        "command": "python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])]),
        "engine": args.engine, "explain": args.explain, "threads": args.threads, "concurrency": args.concurrency, "clients": args.clients, "seconds": round(stats["elapsed"], 1),
        "images": f"{len(images)} BreastMNIST test images as PNG", "sent": stats["sent"], "answered": answered,
        "failed": stats["failed"], "lost": stats["lost"], "inconsistent_answers": stats["inconsistent"],
        "requests_per_second": round((answered - stats["failed"]) / stats["elapsed"], 2),
        "latency_ms": {q: round(float(np.percentile(latency, p)), 1) for q, p in
                       (("p50", 50), ("p90", 90), ("p99", 99), ("max", 100))} if answered else {},
        "token": bool(args.token), "abusers": args.abusers, "abuse_sent_by_expected_status": stats["abuse_sent"],
        "abuse_unexpected_answers": stats["abuse_unexpected"],
        "server_alive_after": alive, "errors": sorted(set(stats["errors"]))[:10],
        "cores_visible": os.cpu_count(), "load_average_at_end": os.getloadavg(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: report[k] for k in ("engine", "explain", "requests_per_second", "latency_ms", "failed",
                                                 "lost", "inconsistent_answers", "answered", "abuse_sent_by_expected_status",
                                                 "abuse_unexpected_answers")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
