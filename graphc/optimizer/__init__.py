"""mx.optimizer: the optimizers, their registry (create, register) and Updater; contrib: AdamW, GroupAdaGrad."""
from .optimizer import (Optimizer, Updater, get_updater, create, register, UnknownOptimizerError,  # noqa: F401
                        LRSchedulerError, SGD, ccSGD, NAG, LARS, Signum, DCASGD, SGLD, Adam, Adamax, Nadam, FTML,
                        LAMB, RMSProp, AdaGrad, AdaDelta, Ftrl, Test)
from . import contrib  # noqa: F401
from .contrib import AdamW, GroupAdaGrad  # noqa: F401
