"""Training releases the GIL, and Ctrl-C stops it promptly with nothing written."""

import re
import signal
import subprocess
import sys
import textwrap
import threading

import pytest

import tms


def test_other_threads_run_while_training():
    # With a switch interval of 1000 s, a thread that holds the GIL is never made to hand it over:
    # the other thread below can only run while training has released it. The callback (on the
    # training thread, between chunks of steps) sets `ping`; the other thread, blocked on it,
    # must then take the GIL to set `pong`, which a later callback sees while training goes on.
    ping, pong = threading.Event(), threading.Event()
    seen = []

    def callback(step, losses):
        seen.append(pong.is_set())
        ping.set()

    other = threading.Thread(target=lambda: (ping.wait(), pong.set()))
    other.start()
    old = sys.getswitchinterval()
    sys.setswitchinterval(1000.0)
    try:
        tms.train("e2-relu", progress=False, callback=callback,
                  **{"train.steps": 2000, "train.log_every": 1})
    finally:
        sys.setswitchinterval(old)
        ping.set()
        other.join()
    assert len(seen) >= 2 and seen[0] is False
    assert any(seen), "the other thread never ran during training"


CHILD = textwrap.dedent(
    """
    import sys, tms
    def callback(step, losses):
        if step >= 200:
            print("training", flush=True)
    # About 10^8 steps: hours of work unless Ctrl-C stops it.
    tms.train("e2-relu", out=sys.argv[1], progress=sys.argv[2] == "bar",
              callback=callback if sys.argv[2] == "callback" else None,
              **{"train.steps": 100_000_000, "train.log_every": 100})
    print("finished", flush=True)
    """
)


@pytest.mark.parametrize("watch", ["callback", "bar"])
def test_ctrl_c_stops_training_and_writes_nothing(tmp_path, watch):
    # Two paths: with a callback, instances advance together in chunks; without, each instance
    # checks the stop flag between its own chunks. The child says training is under way through
    # its callback, or through its tqdm bar on stderr.
    out = tmp_path / "run"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(out), watch],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        if watch == "callback":
            assert child.stdout.readline() == "training\n"  # well under way
        else:
            wait_for_progress(child)
        child.send_signal(signal.SIGINT)
        # A bound against hanging (training would last hours), not a timing assertion: the
        # promptness itself is the chunk length (work.rs, run.rs) plus the 100 ms poll.
        stdout, stderr = child.communicate(timeout=120)
    finally:
        child.kill()
    assert "finished" not in stdout
    assert "KeyboardInterrupt" in stderr
    assert child.returncode in (-signal.SIGINT, 130, 1), child.returncode
    # Nothing written: no run directory, no staging directory, no temporary file.
    assert list(tmp_path.iterdir()) == []


def wait_for_progress(child):
    """Reads the child's stderr until its tqdm bar has counted steps."""
    seen = ""
    while not re.search(r"\| [1-9][0-9.]*k?/", seen):
        c = child.stderr.read(1)
        assert c, f"the child ended early: {seen}"
        seen += c


def test_ctrl_c_stops_reproduce(tmp_path):
    # Full scale, so that the interrupt surely lands in the middle of the first run's training;
    # the child's tqdm bar for that run says when training has started.
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys, tms; tms.reproduce(only='E2', out=sys.argv[1])",
         str(tmp_path / "out")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_progress(child)
        child.send_signal(signal.SIGINT)
        _, stderr = child.communicate(timeout=120)  # a bound against hanging, see above
    finally:
        child.kill()
    assert "KeyboardInterrupt" in stderr and "Traceback" in stderr
    assert "panicked" not in stderr
    assert not (tmp_path / "out" / "report" / "claims.json").exists()
    assert not (tmp_path / "out" / "runs").exists()  # the first run's directory was never written
