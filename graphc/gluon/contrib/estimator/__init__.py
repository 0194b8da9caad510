"""gluon.contrib.estimator: MXNet 1.9's high-level training loop (Estimator.fit / evaluate with event handlers)."""
from .batch_processor import BatchProcessor  # noqa: F401
from .estimator import Estimator  # noqa: F401
from .event_handler import (BatchBegin, BatchEnd, CheckpointHandler, EarlyStoppingHandler, EpochBegin,  # noqa: F401
                            EpochEnd, EventHandler, GradientUpdateHandler, LoggingHandler, MetricHandler,
                            StoppingHandler, TrainBegin, TrainEnd, ValidationHandler)
