"""tms: Toy Models of Superposition, trained fast and checked.

`train` a config (a preset name, a TOML file or a dict) into a `Run` of numpy arrays, `load` a run
directory, `sweep` a grid of configs, `reproduce` the paper's experiments and get their claims as
data. Everything is computed by the Rust library crates through the extension module `tms._tms`;
this package only re-exports it. Shapes use the letters of the Rust docs: K instances, R replicas,
n features, m hidden.
"""

from ._tms import (
    ConfigError,
    Error,
    History,
    OutputError,
    ReproduceError,
    Run,
    SweepResult,
    __version__,
    families,
    load,
    presets,
    reproduce,
    sweep,
    train,
)

__all__ = [
    "ConfigError",
    "Error",
    "History",
    "OutputError",
    "ReproduceError",
    "Run",
    "SweepResult",
    "__version__",
    "families",
    "load",
    "presets",
    "reproduce",
    "sweep",
    "train",
]
