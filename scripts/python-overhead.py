#!/usr/bin/env python3
"""The Python package's overhead: `tms.train(PRESET, out=DIR)` against `tms train --preset PRESET
--out DIR`, the same work (train, write the run directory), alternating the two so that a change
in the machine's load hits both, and reporting medians.

    python scripts/python-overhead.py [--preset e2-relu] [--repeats 5] [--tms target/release/tms]

Run it with the venv that has the package installed (scripts/test makes one: .venv). Wall time is
what the target is about (a notebook user waits for it); CPU time (user + system) is shown too. Both
are unreliable on a loaded machine: the script prints `uptime` before and after. The CLI's time
includes its process start (a few ms); the Python call's does not include the interpreter's.
"""

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import tms

ROOT = Path(__file__).resolve().parent.parent


def cpu(who):
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def cli_run(binary, preset, out):
    c0, t0 = cpu(resource.RUSAGE_CHILDREN), time.perf_counter()
    subprocess.run(
        [binary, "train", "--preset", preset, "--out", str(out)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - t0, cpu(resource.RUSAGE_CHILDREN) - c0


def python_run(preset, out):
    c0, t0 = cpu(resource.RUSAGE_SELF), time.perf_counter()
    tms.train(preset, out=out, progress=False)
    return time.perf_counter() - t0, cpu(resource.RUSAGE_SELF) - c0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="e2-relu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--tms", default=str(ROOT / "target" / "release" / "tms"))
    args = parser.parse_args()
    print("uptime:", os.popen("uptime").read().strip())
    results = {"cli": [], "python": []}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for i in range(args.repeats):
            # Alternate which goes first, so that neither always follows the other.
            order = ["cli", "python"] if i % 2 == 0 else ["python", "cli"]
            for who in order:
                out = tmp / f"{who}-{i}"
                if who == "cli":
                    wall, cpu_s = cli_run(args.tms, args.preset, out)
                else:
                    wall, cpu_s = python_run(args.preset, out)
                results[who].append((wall, cpu_s))
                print(f"  {i} {who:<6} wall {wall:7.3f} s  cpu {cpu_s:7.3f} s", flush=True)
                shutil.rmtree(out)
    print("uptime:", os.popen("uptime").read().strip())
    med = {
        who: (statistics.median(w for w, _ in r), statistics.median(c for _, c in r))
        for who, r in results.items()
    }
    for who, (wall, cpu_s) in med.items():
        print(f"median {who:<6} wall {wall:7.3f} s  cpu {cpu_s:7.3f} s")
    print(
        f"python / cli: wall {med['python'][0] / med['cli'][0]:.3f}, "
        f"cpu {med['python'][1] / med['cli'][1]:.3f}  ({args.preset}, {args.repeats} pairs)"
    )


if __name__ == "__main__":
    sys.exit(main())
