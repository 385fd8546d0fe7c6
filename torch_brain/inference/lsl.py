"""Read spikes from a Lab Streaming Layer (LSL) inlet into a :class:`StreamingDecoder` (needs ``pylsl``).

Stream format: one channel per sample, one sample per spike. The channel holds the spike's unit,
an integer position into ``decoder.unit_ids`` (``int32``/``int64`` channel format) or a unit id
(``string`` channel format); the sample's LSL timestamp is the spike time. ``clock_offset`` is
added to LSL times to put them on the recording's clock (the model's windows only use time
differences, so 0 is right unless you mix live and recorded spikes).

Install with ``pip install "torch_brain[lsl]"`` (pylsl ships its own liblsl).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from torch_brain.inference._decoder import StreamingDecoder

__all__ = ["LSLSpikeReader"]


class LSLSpikeReader:
    """Pulls spike chunks from an LSL inlet, pushes them into a decoder and returns its due updates.

    Args:
        decoder: the :class:`StreamingDecoder` that receives the spikes.
        inlet: a ``pylsl.StreamInlet`` of the spike stream (see the module doc for its format).
        clock_offset: seconds added to LSL timestamps.
        max_chunk: most samples pulled per :meth:`pump`.

    Example:
        >>> import pylsl  # doctest: +SKIP
        >>> info = pylsl.resolve_byprop("type", "Spikes", 1, 5.0)[0]  # doctest: +SKIP
        >>> reader = LSLSpikeReader(decoder, pylsl.StreamInlet(info))  # doctest: +SKIP
        >>> while True:  # doctest: +SKIP
        ...     for t, estimate in reader.pump(timeout=0.005):
        ...         send(estimate)
    """

    def __init__(self, decoder: StreamingDecoder, inlet: Any, *, clock_offset: float = 0.0,
                 max_chunk: int = 100_000) -> None:
        if not isinstance(decoder, StreamingDecoder):
            raise TypeError(f"LSLSpikeReader: decoder must be a StreamingDecoder, but got {type(decoder).__name__}.")
        if not hasattr(inlet, "pull_chunk"):
            raise TypeError(f"LSLSpikeReader: inlet must be a pylsl.StreamInlet, but got {type(inlet).__name__}.")
        self.decoder = decoder
        self.inlet = inlet
        self.clock_offset = float(clock_offset)
        self.max_chunk = int(max_chunk)

    def pump(self, timeout: float = 0.0, until: float | None = None) -> list[tuple[float, dict]]:
        """Pull what the inlet holds (waiting up to ``timeout`` s for the first sample), push, poll.

        Args:
            timeout: seconds to wait for data.
            until: the time (recording clock) up to which the stream is known to be complete; by
                default the newest spike's time. Pass it (e.g. ``pylsl.local_clock() + offset``
                minus the stream's latency) to get updates while no spike arrives.

        Returns:
            The decoder's due updates, ``[(t, {task: tensor}), ...]`` (see :meth:`StreamingDecoder.poll`).
        """
        samples, stamps = self.inlet.pull_chunk(timeout=timeout, max_samples=self.max_chunk)
        if stamps:
            times = np.asarray(stamps, dtype=np.float64) + self.clock_offset
            units = np.asarray([s[0] for s in samples])
            last = float(times.max())
            self.decoder.push(times, units, until=last if until is None else max(float(until), last))
        elif until is not None and (self.decoder.now is None or until > self.decoder.now):
            self.decoder.push([], [], until=until)
        return self.decoder.poll()
