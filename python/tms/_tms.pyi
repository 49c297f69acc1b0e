# Type stubs of the extension module tms._tms (crates/python). python/tests/test_stubs.py checks
# that the names, members and parameters here match the compiled module's.
import os
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import numpy.typing as npt

__version__: str

class Error(Exception):
    """Base class of every error tms raises."""

class ConfigError(Error, ValueError):
    """Bad input: a config, an override, a preset name, a sweep file or an argument (the CLI's
    message: file, dotted key, expected vs found, hint). Nothing was written."""

class OutputError(Error, OSError):
    """A run or sweep directory could not be written or read (exists, I/O, corrupt file)."""

class ReproduceError(Error, RuntimeError):
    """`reproduce` failed while running (a failed claim is data, not an error)."""

Config = Union[str, "os.PathLike[str]", Mapping[str, Any]]

class History:
    """The loss history of a run (`loss.csv`): `step`, `instance`, `replica` (int64), `loss` and
    the recorded observables (float64), one row per recorded step of every replica."""

    @property
    def columns(self) -> List[str]: ...
    def to_dict(self) -> Dict[str, npt.NDArray[Any]]: ...
    def to_pandas(self) -> Any:
        """A pandas DataFrame (needs pandas)."""
    def __getitem__(self, name: str) -> npt.NDArray[Any]: ...
    def __len__(self) -> int: ...

class Run:
    """One trained run: resolved config, weights, per-instance metrics, loss history."""

    @property
    def config(self) -> Dict[str, Any]:
        """The resolved config (every default filled in), by TOML section."""
    @property
    def tensors(self) -> Dict[str, npt.NDArray[np.float32]]:
        """Read-only float32 arrays, instances first: toy `W` [K, m, n], `b` [K, n]."""
    @property
    def instances(self) -> List[Dict[str, Any]]:
        """metrics.json's per-instance dicts."""
    @property
    def history(self) -> History: ...
    @property
    def name(self) -> str: ...
    @property
    def family(self) -> str: ...
    @property
    def steps(self) -> int: ...
    @property
    def replicas(self) -> int: ...
    @property
    def seed(self) -> int: ...
    @property
    def dir(self) -> Optional[Path]: ...
    def save(self, dir: Union[str, "os.PathLike[str]"], *, force: bool = False) -> None:
        """Write the run directory atomically, byte for byte what `tms train` writes."""

class SweepResult:
    """What `sweep` did: the cells and, once every cell is done, the results rows."""

    @property
    def name(self) -> str: ...
    @property
    def dir(self) -> Path: ...
    @property
    def cells(self) -> List[Dict[str, Any]]:
        """`id`, swept `values`, run directory `dir` of every cell."""
    @property
    def trained(self) -> int: ...
    @property
    def complete(self) -> bool: ...
    @property
    def results(self) -> Optional[List[Dict[str, Any]]]:
        """results.json's rows (cell × instance), or None until every cell is done."""
    def run(self, cell: str) -> Run: ...

def train(
    config: Config,
    *,
    out: Optional[Union[str, "os.PathLike[str]"]] = None,
    threads: Optional[int] = None,
    progress: bool = True,
    callback: Optional[Callable[[int, npt.NDArray[np.float64]], Any]] = None,
    set: Optional[Mapping[str, Any]] = None,
    force: bool = False,
    **overrides: Any,
) -> Run:
    """Train one config (preset name, TOML path or dict; dotted-key overrides) into a Run.
    `callback(step, losses)` gets losses [K, R]. Releases the GIL; Ctrl-C stops it."""

def load(dir: Union[str, "os.PathLike[str]"]) -> Run:
    """Read a run directory."""

def presets() -> Dict[str, str]:
    """Built-in presets: name → description."""

def families() -> List[str]:
    """The registered model families (config section names)."""

def sweep(
    file_or_dict: Union[str, "os.PathLike[str]", Mapping[str, Any]],
    out: Union[str, "os.PathLike[str]"],
    *,
    shard: Optional[Union[str, Tuple[int, int]]] = None,
    threads: Optional[int] = None,
    progress: bool = True,
    checkpoint_every: Optional[int] = None,
) -> SweepResult:
    """Run a sweep (or shard "K/N") into `out`, resuming what is there."""

def reproduce(
    only: Optional[Union[str, Sequence[str]]] = None,
    quick: bool = False,
    out: Union[str, "os.PathLike[str]"] = ...,
    *,
    threads: Optional[int] = None,
    progress: bool = True,
) -> Dict[str, Any]:
    """Reproduce the experiments (default out: "out"); returns claims.json's content."""
