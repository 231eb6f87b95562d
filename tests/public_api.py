"""The public packages of keras_cool: the one list the guard tests share."""

SUBPACKAGES = [
    "layers",
    "callbacks",
    "capture",
    "data",
    "losses",
    "models",
    "optimizers",
    "optimizers.schedules",
    "testing",
    "utils",
]
# The top level and every subpackage, as importable names.
PUBLIC_PACKAGES = ("keras_cool",) + tuple(
    f"keras_cool.{sub}" for sub in SUBPACKAGES
)
