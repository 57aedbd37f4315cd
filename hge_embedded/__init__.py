"""hge-embedded: homodyne gradient extraction for training physical systems in materia."""
from .core import state_bytes_per_terminal  # noqa: F401
from .demod import Demodulated, demodulate  # noqa: F401
from .devices import Device  # noqa: F401
from .devices.simulated import SimulatedDNPU  # noqa: F401
from .calibration import Calibration, calibrate  # noqa: F401
from .gradient import GradientResult, extract_gradient, finite_difference_gradient  # noqa: F401
from .plans import check_plan, plan_frequencies  # noqa: F401

__version__ = "0.1.0"
