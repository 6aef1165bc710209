# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
What the cloud bridge makes of one request's result: what it publishes, counts and says.

ROS-free and pure: the bridge turns each ``CloudResult`` into an ``Outcome`` and carries it out
(one CloudResponse, the counters in ``counts``, the error text). Rules:

1. A result the client dropped (never sent: past its deadline, circuit open) is published as a
   drop with the client's reason ('client' when it gave none); the bridge counts every drop as
   ``dropped_<reason>``, so its ``counts`` are empty.
2. Any other result counts ``responses_<status>``, its HTTP attempts, its retries (the attempts
   after the first) and the bytes of its last attempt, each even when zero.
3. An answer also counts a reply not in the asked JSON shape (``replies_unstructured``), the
   boxes the model wrote (``boxes_found``), those that could not be used by reason
   (``boxes_dropped_<reason>``) and a reply whose box syntax could not be read
   (``replies_unparsed_boxes``): signs of a wrong box_format.
4. A failure counts ``failures_<fault>`` ('other' when it has no fault).
5. A step not sent says why (``drop_error``): ``not sent: <reason>``, and when the circuit is
   open, how long until the next probe may go. An error the client gave is kept as it is.
6. The bridge is degraded while the cloud is not answering: its health (``cloud.health``) is
   one of ``CLOUD_DOWN``.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgevlm_ros.cloud.openai_client import CloudResult

# Cloud health states (cloud.health) in which the bridge reports itself 'degraded' (rule 6).
CLOUD_DOWN = frozenset({'failing', 'open', 'probing'})
# The drop reason of a result the client dropped without saying why (rule 1).
CLIENT = 'client'


@dataclass(frozen=True)
class Outcome:
    """What to publish and count for one result."""

    status: str  # the CloudResult's status; 'dropped': publish a drop with drop_reason
    counts: tuple[tuple[str, int], ...] = ()  # counter increments, in this order
    error: str = ''
    drop_reason: str = ''


def outcome(result: CloudResult) -> Outcome:
    """Rules 1-4."""
    if result.status == 'dropped':
        return Outcome('dropped', error=result.error, drop_reason=result.fault or CLIENT)
    counts = [(f'responses_{result.status}', 1), ('attempts', result.attempts),
              ('retries', max(0, result.attempts - 1)), ('bytes_sent', result.request_bytes),
              ('bytes_received', result.response_bytes)]
    if not result.ok:
        counts.append((f'failures_{result.fault or "other"}', 1))
        return Outcome(result.status, tuple(counts), result.error)
    if not result.structured:
        counts.append(('replies_unstructured', 1))
    counts.append(('boxes_found', result.boxes_found))
    counts += [(f'boxes_dropped_{reason}', n) for reason, n in result.drop_reasons.items()]
    if result.unparsed_boxes:
        counts.append(('replies_unparsed_boxes', 1))
    return Outcome(result.status, tuple(counts), result.error)


def drop_error(reason: str, next_probe_in_s: float = 0.0, error: str = '') -> str:
    """Rule 5: the error of the CloudResponse of a step not sent."""
    if error:
        return error
    if reason == 'circuit_open':
        return f'not sent: circuit open, next probe in {next_probe_in_s:.1f} s'
    return f'not sent: {reason}'


def bridge_error(exc: Exception, model: str) -> CloudResult:
    """The result of a request that failed inside the bridge, not in the client's hands."""
    return CloudResult(status='http_error', model=model,
                       error=f'bridge error: {type(exc).__name__}: {exc}')
