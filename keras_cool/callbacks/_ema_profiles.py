"""Private: the EMA's profiles and their decay math, in one home.

A *profile* is one average of the weights that the EMA keeps: either a
constant decay `d` (with an optional warm-up), or a *power function*
(Karras et al. 2024, "Analyzing and Improving the Training Dynamics of
Diffusion Models", §3 and Appendix C), whose decay at update time `t`
(optimizer steps since `start_step`, updates every `n` steps) is

    beta_t = (1 - n / t) ** (gamma + 1)        (0 while t <= n)

so that the shadow at `t` is the average of the weights with the density
`p(tau) = (gamma + 1) tau**gamma / t**(gamma + 1)` on `[0, t]` (each update's
weights standing for the `n` steps before it). The density's relative
width, its standard deviation over `t`, is

    sigma_rel**2 = (gamma + 1) / ((gamma + 2)**2 (gamma + 3)),

and `gamma = 0` (`sigma_rel = 1 / sqrt(12)`) is the uniform average: SWA.

`Plan` gives each profile's decay at a step, in `keras.ops` (traced into
the train step). `coefficients` solves, in numpy, for the mix of stored
power-function averages that best matches another power function, in the
L2 sense: the normal equations `A x = b` with `A_ij = <p_i, p_j>`,
`b_i = <p_i, p_target>`, where for two power densities

    <p_a, p_b> = (g_a + 1)(g_b + 1) m**(g_a + g_b + 1)
                 / ((g_a + g_b + 1) t_a**(g_a + 1) t_b**(g_b + 1)),

`m = min(t_a, t_b)`. The derivation is in the docs' "How it works: EMA".
"""

import math
import typing

import numpy as np
from keras import ops

__all__ = [
    "SWA_SIGMA_REL",
    "Plan",
    "Profile",
    "coefficients",
    "gamma_of",
    "sigma_rel_of",
]

SWA_SIGMA_REL = 12.0**-0.5  # gamma = 0: the uniform average


class Profile(typing.NamedTuple):
    """One average: `decay` (constant) or `gamma` (power function)."""

    decay: typing.Optional[float] = None
    gamma: typing.Optional[float] = None

    @property
    def sigma_rel(self):
        return None if self.gamma is None else sigma_rel_of(self.gamma)

    def describe(self):
        if self.gamma is None:
            return f"decay={self.decay!r}"
        return f"sigma_rel={self.sigma_rel:.6g} (gamma={self.gamma:.6g})"


def sigma_rel_of(gamma):
    """The relative width of the power function of exponent `gamma`."""
    gamma = float(gamma)
    return math.sqrt((gamma + 1) / ((gamma + 2) ** 2 * (gamma + 3)))


def gamma_of(sigma_rel):
    """The exponent `gamma >= 0` whose relative width is `sigma_rel` in
    (0, 1 / sqrt(12)]: the largest real root of
    `gamma**3 + 7 gamma**2 + (16 - s) gamma + 12 - s`, `s = sigma_rel**-2`,
    polished by Newton steps."""
    s = float(sigma_rel) ** -2
    roots = np.roots([1.0, 7.0, 16.0 - s, 12.0 - s])
    gamma = max(r.real for r in roots if abs(r.imag) < 1e-6 * (1 + abs(r)))
    for _ in range(3):
        f = ((gamma + 7) * gamma + 16 - s) * gamma + 12 - s
        gamma -= f / ((3 * gamma + 14) * gamma + 16 - s)
    return max(float(gamma), 0.0)


def profiles_of(decay, sigma_rel):
    """The profiles of the callback's arguments (checked already)."""
    if sigma_rel is None:
        return [Profile(decay=float(decay))]
    return [Profile(gamma=gamma_of(s)) for s in sigma_rel]


class Plan:
    """Each profile's decay at an optimizer step, and whether the step
    updates (`update_every`), in `keras.ops`."""

    def __init__(
        self,
        profiles,
        start_step=0,
        update_every=1,
        warmup=None,
        warmup_gamma=1.0,
        warmup_power=2.0 / 3.0,
    ):
        self.profiles = list(profiles)
        self.start_step = int(start_step)
        self.update_every = int(update_every)
        self.warmup = warmup
        self.warmup_gamma = float(warmup_gamma)
        self.warmup_power = float(warmup_power)

    def decay(self, profile, step):
        """The decay of `profile` at optimizer step `step` (1-based)."""
        t = ops.cast(step - self.start_step, "float32")
        if profile.gamma is not None:
            n = float(self.update_every)
            ratio = n / ops.maximum(t, n)
            beta = ops.exp((profile.gamma + 1.0) * ops.log1p(-ratio))
            return ops.where(t > n, beta, ops.zeros_like(beta))
        decay = profile.decay
        if self.warmup == "tfa":
            d = ops.minimum(decay, (1.0 + t) / (10.0 + t))
        elif self.warmup == "power":
            base = 1.0 + ops.maximum(t, 0.0) / self.warmup_gamma
            d = 1.0 - ops.power(base, -self.warmup_power)
            d = ops.clip(d, 0.0, decay)
        else:
            d = ops.convert_to_tensor(decay, "float32")
        return ops.where(t > 0, d, ops.zeros_like(d))

    def decays(self, step):
        """`(decays, due)` as in `at`, the decays as one (profiles,)
        tensor: power profiles in one vector computation."""
        if any(p.gamma is None for p in self.profiles):
            decays, due = self.at(step)
            return ops.stack(decays), due
        t = ops.cast(step - self.start_step, "float32")
        n = float(self.update_every)
        exponents = ops.convert_to_tensor(
            [p.gamma + 1.0 for p in self.profiles], "float32"
        )
        beta = ops.exp(exponents * ops.log1p(-n / ops.maximum(t, n)))
        beta = ops.where(t > n, beta, ops.zeros_like(beta))
        return beta, self.due(step)

    def due(self, step):
        """Whether the shadows update at `step` (`None`: every step)."""
        if self.update_every > 1:
            return ops.equal(step % self.update_every, 0)
        return None

    def positive(self, profile):
        """Whether `d > 0` at every step (t >= 1): no copy phase, and no
        power warmup, whose first decays may round to 0 in float32."""
        return (
            profile.gamma is None
            and self.start_step == 0
            and profile.decay > 0
            and self.warmup != "power"
        )

    def at(self, step):
        """`(decays, due)`: one decay per profile at optimizer step `step`
        (1-based), and whether the shadows update then (`None`: every
        step does)."""
        return [self.decay(p, step) for p in self.profiles], self.due(step)


def _log_inner(t_a, g_a, t_b, g_b):
    """log <p_a, p_b> of power densities, broadcast (float64)."""
    m = np.minimum(t_a, t_b)
    return (
        np.log((g_a + 1) * (g_b + 1) / (g_a + g_b + 1))
        + (g_a + g_b + 1) * np.log(m)
        - (g_a + 1) * np.log(t_a)
        - (g_b + 1) * np.log(t_b)
    )


def coefficients(times, gammas, time, gamma):
    """The least-squares mix `x` of stored power-function averages (at
    `times`, exponents `gammas`, both 1-D, times > 0) whose density best
    matches the power function of exponent `gamma` at `time`. Returns
    `(x, residual)`: `residual` is the relative L2 error of the matched
    density (0: exact)."""
    t = np.asarray(times, "float64")[:, None]
    g = np.asarray(gammas, "float64")[:, None]
    a = np.exp(_log_inner(t, g, t.T, g.T))
    b = np.exp(_log_inner(t[:, 0], g[:, 0], float(time), float(gamma)))
    # Scaled to unit diagonal: the same solution, better conditioned.
    scale = 1.0 / np.sqrt(np.diag(a))
    x, *_ = np.linalg.lstsq(a * np.outer(scale, scale), b * scale, rcond=None)
    x = x * scale
    target = math.exp(_log_inner(time, gamma, time, gamma))
    error = max(float(x @ a @ x - 2 * x @ b + target), 0.0)
    return x, math.sqrt(error / target)
