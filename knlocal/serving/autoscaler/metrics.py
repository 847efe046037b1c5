"""Metric windows: fixed rings of 1-s buckets, bounded by their window (Knative's ``aggregation``).

Knative: ``bucketing.go`` (``TimedFloat64Buckets``, ``WeightedFloat64Buckets``) for the stable
and panic windows of ``collector.go``, and ``max/window.go`` (``TimeWindow``) for the
scale-down delay. Every window here holds a fixed number of slots, however long it runs.

Simplification 4 (window sums): ``bucketing.go`` keeps a running ``windowTotal``; here the sum is
recomputed from the buckets on each read. The result is the same up to float rounding, without
the drift a running float total accumulates. The linear average is still floored to 6 decimals
like ``roundToNDigits``.
"""

import math

from knlocal.serving.autoscaler.config import BUCKET_SECONDS

#: ``metric-aggregation-algorithm`` values (``pkg/apis/autoscaling/register.go``).
LINEAR = "linear"
WEIGHTED_EXPONENTIAL = "weighted-exponential"
#: register.go accepts the camelCase spelling of the value as well.
ALGORITHMS = {
    "linear": LINEAR,
    "weighted-exponential": WEIGHTED_EXPONENTIAL,
    "weightedExponential": WEIGHTED_EXPONENTIAL,
}


class LinearBuckets:
    """A ring of 1-s buckets averaged linearly over a window (``TimedFloat64Buckets``)."""

    def __init__(self, window: float) -> None:
        """Create an empty window.

        :param window: the window length in whole seconds.
        """
        self._window = int(window)
        self._buckets = [0.0] * max(1, math.ceil(window / BUCKET_SECONDS))
        self._first_write: int | None = None
        self._last_write: int | None = None

    def record(self, now: float, value: float) -> None:
        """Add ``value`` to the bucket of ``now``; several values in one second are summed.

        :param now: the sample time in seconds.
        :param value: the value to add.
        """
        # bucketing.go Record: buckets between the last write and now are stale, zero them;
        # after a whole window without writes, start over (firstWrite resets).
        bucket = math.floor(now)
        size = len(self._buckets)
        if self._last_write is not None and bucket != self._last_write:
            if bucket + self._window <= self._last_write:
                return  # older than a window: ignored, like Knative
            if self._first_write is None or bucket < self._first_write:
                self._first_write = bucket
        if self._last_write is None or bucket > self._last_write:
            if self._last_write is None or bucket - self._last_write >= self._window:
                self._first_write = bucket
                self._buckets = [0.0] * size
            else:
                for index in range(self._last_write + 1, bucket + 1):
                    self._buckets[index % size] = 0.0
            self._last_write = bucket
        self._buckets[bucket % size] += value

    def is_empty(self, now: float) -> bool:
        """Tell whether nothing was recorded during the last window (``IsEmpty``).

        :param now: the current time in seconds.
        :return: true if there is no data to decide on.
        """
        return self._last_write is None or math.floor(now) - self._last_write > self._window

    def average(self, now: float) -> float:
        """Average the buckets written since the first write, capped at the window.

        :param now: the current time in seconds.
        :return: the window average, 0 if nothing was written for a whole window.
        """
        if self._last_write is None or self._first_write is None:
            return 0.0
        current = math.floor(now)
        size = len(self._buckets)
        age = current - self._last_write
        if age >= self._window:
            return 0.0
        if age <= 0:
            total = sum(self._buckets)
            count = min(self._last_write - self._first_write + 1, size)
        else:
            # Buckets after the last write hold data older than the window: leave them out.
            stale = {index % size for index in range(self._last_write + 1, current + 1)}
            total = sum(v for i, v in enumerate(self._buckets) if i not in stale)
            count = min(self._last_write - self._first_write + 1, size - age)
        # bucketing.go roundToNDigits(6, ...): floor to 6 decimals, so float noise such as
        # 70.00000000000001 cannot push ceil(observed / target) up by one instance.
        return math.floor(total / count * 1e6) / 1e6


class WeightedBuckets(LinearBuckets):
    """The same ring averaged with exponentially decaying weights (``WeightedFloat64Buckets``)."""

    # bucketing.go: the weights of a full window sum to at least 0.9999, decay >= 0.2.
    _WEIGHT_PRECISION = 0.9999
    _MIN_EXPONENT = 0.2

    def __init__(self, window: float) -> None:
        """Create an empty window.

        :param window: the window length in whole seconds.
        """
        super().__init__(window)
        size = len(self._buckets)
        self._smoothing = max(1 - (1 - self._WEIGHT_PRECISION) ** (1 / size), self._MIN_EXPONENT)

    def average(self, now: float) -> float:
        """Weighted average: the newest bucket weighs ``m``, the one before ``m(1-m)``, ...

        :param now: the current time in seconds.
        :return: the weighted window average, 0 if nothing was written for a whole window.
        """
        if self._last_write is None or self.is_empty(now):
            return 0.0
        size = len(self._buckets)
        multiplier = self._smoothing
        count = size
        current = math.floor(now)
        if current > self._last_write:
            # Seconds without data count as zeros at the newest end.
            skipped = current - self._last_write
            multiplier *= (1 - self._smoothing) ** skipped
            count -= skipped
        result = 0.0
        for offset in range(count):
            result += self._buckets[(self._last_write - offset) % size] * multiplier
            multiplier *= 1 - self._smoothing
        return result


def window_buckets(algorithm: str, window: float) -> LinearBuckets:
    """Create the bucket ring of ``metric-aggregation-algorithm`` for one window.

    :param algorithm: :data:`LINEAR` or :data:`WEIGHTED_EXPONENTIAL`.
    :param window: the window length in whole seconds.
    :return: an empty ring.
    """
    if algorithm == WEIGHTED_EXPONENTIAL:
        return WeightedBuckets(window)
    return LinearBuckets(window)


class MaxTimeWindow:
    """The maximum of values recorded over a time window (``aggregation/max.TimeWindow``).

    At most ``ceil(duration / granularity)`` entries are kept: older ones fall out as time
    moves on, so the window stays bounded however long it runs.
    """

    def __init__(self, duration: float, granularity: float) -> None:
        """Create an empty window.

        :param duration: the window length in seconds.
        :param granularity: the bucket length in seconds.
        """
        self._size = math.ceil(duration / granularity)
        self._granularity = int(granularity)
        # (bucket index, maximum in that bucket), oldest first.
        self._entries: list[tuple[int, int]] = []

    def record(self, now: float, value: int) -> None:
        """Record ``value`` at ``now``; values of one bucket keep their maximum.

        :param now: the time in seconds.
        :param value: the value.
        """
        index = math.floor(now) // self._granularity
        self._entries = [(i, v) for i, v in self._entries if index - i < self._size]
        if self._entries and self._entries[-1][0] == index:
            value = max(value, self._entries.pop()[1])
        self._entries.append((index, value))

    def current(self) -> int:
        """Return the maximum over the window as of the last :meth:`record`.

        :return: the maximum, 0 if nothing was recorded.
        """
        return max((v for _, v in self._entries), default=0)
