"""Shared helpers of the Python tests: the CLI binary to compare against, and a safetensors reader
independent of tms (the file format is 8 bytes of header length, a JSON header, then the data)."""

import json
import os
import struct
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def cli():
    """The `tms` binary of this checkout (TMS_CLI, or target/release/tms, built if missing)."""
    binary = Path(os.environ.get("TMS_CLI", ROOT / "target" / "release" / "tms"))
    if "TMS_CLI" not in os.environ:
        subprocess.run(["cargo", "build", "--release", "-p", "tms"], cwd=ROOT, check=True)
    assert binary.is_file(), f"no tms binary at {binary}"
    return binary


def run_cli(cli, *args, check=True):
    return subprocess.run([str(cli), *map(str, args)], capture_output=True, text=True, check=check)


def safetensors_arrays(path):
    """name → (dtype, shape, raw bytes) of a safetensors file."""
    data = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    body = data[8 + n :]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        out[name] = (info["dtype"], tuple(info["shape"]), body[start:end])
    return out


RUN_FILES = ["config.toml", "model.safetensors", "metrics.json", "loss.csv"]
