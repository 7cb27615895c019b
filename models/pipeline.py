"""The pipeline limit: how much a bounded number of outstanding I/Os can carry (Little's law).

With N I/Os in flight and each taking R seconds from request to last byte, at most N/R I/Os
complete per second: throughput <= N x io_size / R. N is what the protocol lets the client keep
outstanding (SMB credits / queue depth per connection x connections); R is the round trip plus
the time the server spends on the I/O plus the serialisation of its bytes on one link.
"""

from __future__ import annotations

import numpy as np


def outstanding_ios(connections, per_connection):
    return np.asarray(connections, dtype=float) * per_connection


def io_latency_seconds(rtt, service_seconds, wire_bytes, link_rate, dma_latency=0.0):
    """Request-to-completion time of one I/O when nothing queues."""
    return rtt + service_seconds + wire_bytes / link_rate + dma_latency


def pipeline_capacity(outstanding, io_size, latency_seconds):
    """Little's law bound on payload throughput, bytes/s."""
    return outstanding * io_size / latency_seconds
