"""Timing shared by the benchmarks: interleaved repeats and the ratio line.

Not a benchmark itself (the leading underscore keeps it out of the
benchmark runs). Benchmarks import it as `from _timing import interleaved`:
the folder of a script run as `python benchmarks/x.py` is on `sys.path`.

Every benchmark ends with one line `NAME: ratio=R (...)` (checked by
`tests/test_scripts.py`); `ratio_line` writes it, with the ratio of the
medians and the ratio of the minimums side by side: on a shared machine the
minimum is often the steadier of the two.
"""

import time

import numpy as np


def timed(fn, clock=time.perf_counter):
    """Return (seconds, result) of one call of `fn()` on `clock`."""
    start = clock()
    result = fn()
    return clock() - start, result


def interleaved(
    runners,
    repeats,
    rotate=False,
    per=1,
    self_timed=False,
    clock=time.perf_counter,
):
    """Call every runner once per repeat, in turn; return {name: [seconds]}.

    Interleaving spreads the load of other programs over all runners alike.
    With `rotate`, repeat i starts at runner i (mod the number of runners),
    so that no runner always runs first. The wall time of each call is one
    sample; with `self_timed`, each runner times itself and returns a list
    of samples instead. Every sample is divided by `per` (e.g. the number
    of steps, for seconds per step). `clock` is the wall clock by default;
    `time.process_time` (this process's CPU time, all threads) is steadier
    on a machine shared with other jobs.
    """
    runners = list(runners.items())
    times = {name: [] for name, _ in runners}
    for i in range(repeats):
        start = i % len(runners) if rotate else 0
        for name, fn in runners[start:] + runners[:start]:
            seconds, result = timed(fn, clock)
            samples = result if self_timed else [seconds]
            times[name].extend(s / per for s in samples)
    return times


def medians(times):
    return {name: float(np.median(t)) for name, t in times.items()}


def minimums(times):
    return {name: float(np.min(t)) for name, t in times.items()}


def paired_ratio(a, b, confidence=0.95, resamples=2000, seed=0):
    """Median of the ratios `a[i] / b[i]`, and a bootstrap interval for it.

    Sample i of `a` and of `b` must come from the same repeat (taken
    seconds apart), so that each ratio cancels the machine's slow drift.
    Returns `(median, low, high)`: the interval holds the median of the
    ratios in `confidence` of `resamples` bootstrap resamples. An interval
    that contains 1 means the two are not told apart by these samples.
    """
    ratios = np.asarray(a, dtype=float) / np.asarray(b, dtype=float)
    rng = np.random.default_rng(seed)
    picks = rng.choice(ratios, size=(resamples, ratios.size))
    boot = np.median(picks, axis=1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(boot, [tail, 1.0 - tail])
    return float(np.median(ratios)), float(low), float(high)


def print_times(times, scale=1.0, unit="s"):
    """One line per runner: median, minimum and every sample."""
    median, best = medians(times), minimums(times)
    width = max(len(name) for name in times)
    for name, samples in times.items():
        spread = ", ".join(f"{scale * s:.4g}" for s in samples)
        print(
            f"  {name:>{width}}: median {scale * median[name]:.4g} {unit}, "
            f"min {scale * best[name]:.4g} {unit} ({spread})"
        )


def ratio_line(name, times, a, b, by="median", ratio=None, extra=()):
    """The benchmark's last line, `NAME: ratio=R (...)`.

    R is `a`'s time over `b`'s, of the medians (`by="median"`) or of the
    minimums (`by="min"`), unless `ratio` gives it (e.g. a paired ratio).
    The parentheses hold the medians of `a` and `b`, both ratios and the
    `extra` strings.
    """
    median, best = medians(times), minimums(times)
    by_median = median[a] / median[b]
    by_min = best[a] / best[b]
    if ratio is None:
        ratio = {"median": by_median, "min": by_min}[by]
    parts = [
        f"{a}={median[a]:.4g} s",
        f"{b}={median[b]:.4g} s",
        f"median ratio={by_median:.3f}",
        f"min ratio={by_min:.3f}",
        *extra,
    ]
    return f"{name}: ratio={ratio:.3f} ({', '.join(parts)})"
