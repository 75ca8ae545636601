"""coursekit: the shared library of the fine-tuning workshop kit.

Notebooks import what they repeat from here: profiles (tiny CPU run vs full cluster run),
the run record (phase times and metrics in metrics.json), the GPU check, plots.
Run `python -m coursekit --help` for the command line (notebook runner, GPU check).
"""
import os as _os

# keras-bert only works with Keras 2 (tf-keras). TensorFlow reads this variable the first time
# tf.keras is touched, so it must be set before any notebook imports TensorFlow. This is the one
# place the kit sets it; importing coursekit first is enough.
_os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
# Hide TensorFlow's INFO/WARNING chatter, keep its errors.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"

from .profiles import resolve  # noqa: E402
from .metrics import Run, start_run  # noqa: E402

__all__ = ["resolve", "Run", "start_run", "__version__"]
