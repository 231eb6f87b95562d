"""keras_cool.optimizers.schedules: public objects are listed in `__all__`."""

from keras_cool.optimizers.schedules.warmup_schedule import WarmupSchedule

__all__ = ["WarmupSchedule"]
