"""Learning-rate schedules, as MXNet 1.x mx.lr_scheduler: `scheduler(num_update) -> lr`.

Unlike MXNet's, these are pure functions of num_update (MXNet's Factor/MultiFactor mutate
base_lr as they go): the same values for the increasing num_update an optimizer passes, but
also right when called out of order or after Trainer.load_states resumes training. All of them
read `base_lr` at call time, so an optimizer's explicit learning_rate replaces it.
"""
import bisect
import math


class LRScheduler:
    """Base: base_lr, and an optional warmup over the first warmup_steps updates, starting at
    warmup_begin_lr and rising linearly to base_lr ('linear') or staying there ('constant')."""

    def __init__(self, base_lr=0.01, warmup_steps=0, warmup_begin_lr=0.0, warmup_mode='linear'):
        if warmup_steps < 0:
            raise ValueError("warmup_steps must be >= 0")
        if warmup_mode not in ('linear', 'constant'):
            raise ValueError(f"warmup_mode must be 'linear' or 'constant', got {warmup_mode!r}")
        if warmup_steps and warmup_begin_lr > base_lr:
            raise ValueError("base_lr must be at least warmup_begin_lr")
        self.base_lr, self.warmup_steps = base_lr, int(warmup_steps)
        self.warmup_begin_lr, self.warmup_mode = warmup_begin_lr, warmup_mode

    def get_warmup_lr(self, num_update):
        if self.warmup_mode == 'constant':
            return self.warmup_begin_lr
        return self.warmup_begin_lr + (self.base_lr - self.warmup_begin_lr) * num_update / self.warmup_steps

    def __call__(self, num_update):
        if num_update < self.warmup_steps:
            return self.get_warmup_lr(num_update)
        return self.lr(num_update)

    def lr(self, num_update):
        """The schedule after warmup."""
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__}(base_lr={self.base_lr})"

    def _span(self, max_update, final_lr):
        """Poly and Cosine decay from the end of warm-up to max_update, then hold final_lr."""
        if max_update < 1:
            raise ValueError("max_update must be >= 1")
        self.max_update, self.final_lr = int(max_update), final_lr
        self.max_steps = self.max_update - self.warmup_steps
        if self.max_steps < 1:
            raise ValueError("max_update must be larger than warmup_steps")


class FactorScheduler(LRScheduler):
    """base_lr * factor**k after k full `step`s (k = (num_update-1)//step), never below stop_factor_lr."""

    def __init__(self, step, factor=1.0, stop_factor_lr=1e-8, base_lr=0.01, **warmup):
        super().__init__(base_lr, **warmup)
        if step < 1:
            raise ValueError("step must be >= 1")
        if factor > 1.0:
            raise ValueError("factor must be <= 1 for the learning rate to decrease")
        self.step, self.factor, self.stop_factor_lr = step, factor, stop_factor_lr

    def lr(self, num_update):
        k = max(0, (num_update - 1) // self.step)
        lr = self.base_lr
        for _ in range(k if self.factor != 1.0 else 0):  # one multiply per step, as MXNet: the same rounding
            lr *= self.factor
            if lr < self.stop_factor_lr:
                return self.stop_factor_lr
        return lr


class MultiFactorScheduler(LRScheduler):
    """base_lr * factor**k where k = how many of the increasing `step` list num_update has passed."""

    def __init__(self, step, factor=1.0, base_lr=0.01, **warmup):
        super().__init__(base_lr, **warmup)
        step = list(step)
        if not step or any(s < 1 for s in step) or any(b <= a for a, b in zip(step, step[1:])):
            raise ValueError(f"step must be a non-empty increasing list of ints >= 1, got {step}")
        if factor > 1.0:
            raise ValueError("factor must be <= 1 for the learning rate to decrease")
        self.step, self.factor = step, factor

    def lr(self, num_update):
        return self.base_lr * self.factor ** bisect.bisect_left(self.step, num_update)  # count of s < num_update


class PolyScheduler(LRScheduler):
    """final_lr + (base_lr - final_lr) * (1 - (n - warmup)/(max_update - warmup))**pwr; final_lr after max_update."""

    def __init__(self, max_update, base_lr=0.01, pwr=2, final_lr=0.0, **warmup):
        super().__init__(base_lr, **warmup)
        self._span(max_update, final_lr)
        self.power = pwr

    def lr(self, num_update):
        if num_update > self.max_update:
            return self.final_lr
        frac = (num_update - self.warmup_steps) / self.max_steps
        return self.final_lr + (self.base_lr - self.final_lr) * (1.0 - frac) ** self.power


class CosineScheduler(LRScheduler):
    """final_lr + (base_lr - final_lr) * (1 + cos(pi * (n - warmup)/(max_update - warmup)))/2; final_lr after."""

    def __init__(self, max_update, base_lr=0.01, final_lr=0.0, **warmup):
        super().__init__(base_lr, **warmup)
        if base_lr < final_lr:
            raise ValueError("base_lr must be at least final_lr")
        self._span(max_update, final_lr)

    def lr(self, num_update):
        if num_update > self.max_update:
            return self.final_lr
        frac = (num_update - self.warmup_steps) / self.max_steps
        return self.final_lr + (self.base_lr - self.final_lr) * (1.0 + math.cos(math.pi * frac)) / 2


class InvScheduler(LRScheduler):
    """Caffe/Mocha 'inv' policy: base_lr * (1 + gamma*num_update)**(-power) (Caffe's LeNet: 1e-4, 0.75)."""

    def __init__(self, gamma=1e-4, power=0.75, base_lr=0.01, **warmup):
        super().__init__(base_lr, **warmup)
        if gamma < 0:
            raise ValueError("gamma must be >= 0")
        self.gamma, self.power = gamma, power

    def lr(self, num_update):
        return self.base_lr * (1.0 + self.gamma * num_update) ** -self.power
