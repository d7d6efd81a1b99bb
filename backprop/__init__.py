"""Backprop Studio's engine: a from-scratch NumPy network in the classic tutorial's notation.

Importable without Streamlit or Plotly.
"""

from .config import PRESETS, TrainConfig, preset
from .errors import InputError
from .gradcheck import gradient_check
from .history import History
from .network import Network
from .optimizers import Adam, GradientDescent, Momentum, make_optimizer
from .trainer import Trainer

__all__ = ["Adam", "GradientDescent", "History", "InputError", "Momentum", "Network", "PRESETS",
           "TrainConfig", "Trainer", "gradient_check", "make_optimizer", "preset"]
__version__ = "0.1.0"
