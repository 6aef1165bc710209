# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
Every cloud fault survived, from the rules to the running graph.

The retry and breaker rules on a fake clock, then the fault matrix against a real HTTP server on
127.0.0.1, then the bridge in a real graph.

For each fault the client must say what happened (status, fault name), retry only transient
faults, open the breaker once (one state change, however many frames), send nothing while it is
open, and close it again when the server is back.
"""

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
import json
from pathlib import Path
import random
import re
import time

from diagnostic_msgs.msg import DiagnosticArray
from edgevlm_msgs.msg import Answer, CloudResponse, Step
from edgevlm_ros.cloud.openai_client import MAX_ERROR_CHARS, CloudResult, OpenAiVlmClient
from edgevlm_ros.cloud.resilience import (
    FAULTS,
    RETRYABLE,
    CircuitBreaker,
    RetryPolicy,
    Transition,
    fault_for_status,
)
from edgevlm_ros.cloud_bridge_node import SPECS as BRIDGE_SPECS
from edgevlm_ros.core.netem import NetworkProfile
from edgevlm_ros.core.stats import Counters
from edgevlm_ros.ros.conversions import rgb_to_image
from edgevlm_ros.ros.qos import RESULTS
from fault_server import FaultServer, free_port, self_signed_cert, server_tls_context
import numpy as np
import pytest
from std_msgs.msg import Header
import yaml

PACKAGE = Path(__file__).resolve().parents[1]

MODEL = 'fault-vlm'
API_KEY = 'sk-fault-test-5f2b9c0e77a1'


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def frame() -> np.ndarray:
    img = np.full((96, 128, 3), 90, np.uint8)
    img[24:72, 32:96] = (230, 30, 30)
    return img


# ----------------------------------------------------------------------------- retry schedule


def test_retry_waits_are_jittered_doubling_and_capped():
    policy = RetryPolicy(max_retries=10, base_s=0.2, max_s=1.0, rng=random.Random(1))
    for retry, full in [(1, 0.2), (2, 0.4), (3, 0.8), (4, 1.0), (8, 1.0)]:
        waits = [policy.backoff_s(retry) for _ in range(200)]
        assert all(full / 2 <= w <= full for w in waits)
        assert max(waits) - min(waits) > full / 4  # jittered, not one fixed value


@pytest.mark.parametrize('fault', FAULTS)
def test_only_transient_faults_are_retried(fault):
    policy = RetryPolicy(max_retries=2)
    wait = policy.delay(1, fault, now=0.0)
    assert (wait is not None) == (fault in RETRYABLE)


def test_status_codes_map_to_faults():
    assert [fault_for_status(s) for s in (429, 500, 502, 503, 504, 501, 400, 401, 403, 404)] == [
        'rate_limited', 'server_error', 'server_error', 'server_error', 'server_error',
        'http_other', 'bad_request', 'unauthorized', 'unauthorized', 'not_found']


def test_retries_stop_after_max_retries():
    policy = RetryPolicy(max_retries=2)
    assert policy.delay(2, 'server_error', 0.0) is not None
    assert policy.delay(3, 'server_error', 0.0) is None


def test_retry_after_is_honoured_within_the_deadline_and_never_past_it():
    policy = RetryPolicy(max_retries=3, base_s=0.1, max_s=0.2)
    waits = [policy.delay(1, 'rate_limited', now=10.0, deadline=15.0, retry_after_s=4.0)
             for _ in range(200)]
    # At least what was asked, plus a jitter of at most max_s so refused clients spread out.
    assert 4.0 <= min(waits) and max(waits) <= 4.2 and max(waits) - min(waits) > 0.1
    assert policy.delay(1, 'rate_limited', now=10.0, deadline=13.0, retry_after_s=4.0) is None
    # A backoff that would start the retry after the deadline gives up too.
    assert policy.delay(1, 'server_error', now=10.0, deadline=10.01) is None


@pytest.mark.parametrize('kwargs', [{'max_retries': -1}, {'max_retries': 11},
                                    {'base_s': 0}, {'max_s': 0.1, 'base_s': 0.2}])
def test_bad_retry_configuration_raises(kwargs):
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)


# ----------------------------------------------------------------------------- circuit breaker


def make_breaker(clock: FakeClock, **kw) -> tuple[CircuitBreaker, list[Transition]]:
    events: list[Transition] = []
    kw = {'failure_threshold': 3, 'cooldown_s': 2.0, 'max_cooldown_s': 10.0, **kw}
    return CircuitBreaker(clock=clock, on_transition=events.append, **kw), events


def test_breaker_opens_after_n_failures_in_a_row_and_a_success_resets_the_count():
    clock = FakeClock()
    b, events = make_breaker(clock)
    b.record_failure('e1')
    b.record_failure('e2')
    b.record_success()
    b.record_failure('e3')
    b.record_failure('e4')
    assert b.state == 'closed' and events == []
    b.record_failure('e5')
    assert b.state == 'open' and b.last_error == 'e5'
    assert events == [Transition('closed', 'open', '3 failures in a row', 2.0)]


def test_open_breaker_lets_nothing_through_until_the_cooldown_then_exactly_one_probe():
    clock = FakeClock()
    b, events = make_breaker(clock, failure_threshold=1)
    b.record_failure('down')
    assert not b.ready() and not b.acquire() and not b.retry_allowed()
    assert b.next_probe_in() == pytest.approx(2.0)
    clock.t += 1.9
    assert not b.acquire()
    clock.t += 0.2
    assert b.ready() and b.acquire()
    assert b.state == 'half_open' and not b.ready() and not b.acquire()  # one probe at a time
    assert [e.new for e in events] == ['open', 'half_open']


def test_failed_probes_back_off_the_cooldown_up_to_the_cap_and_success_resets_it():
    clock = FakeClock()
    b, events = make_breaker(clock, failure_threshold=1, cooldown_s=1.0, max_cooldown_s=5.0)
    b.record_failure('down')
    cooldowns = []
    for _ in range(5):
        clock.t += b.next_probe_in()
        assert b.acquire()
        b.record_failure('still down')
        cooldowns.append(events[-1].cooldown_s)
    assert cooldowns == [2.0, 4.0, 5.0, 5.0, 5.0]
    clock.t += b.next_probe_in()
    assert b.acquire()
    b.record_success()
    assert b.state == 'closed' and events[-1] == Transition('half_open', 'closed',
                                                            'request succeeded', 0.0)
    b.record_failure('down again')
    assert events[-1].cooldown_s == 1.0


def test_a_probe_that_never_went_out_is_handed_back():
    clock = FakeClock()
    b, _ = make_breaker(clock, failure_threshold=1)
    b.record_failure('down')
    clock.t += 5
    assert b.acquire() and not b.ready()
    b.release()
    assert b.ready() and b.acquire()


def test_a_long_outage_costs_one_state_change_per_cooldown_not_one_per_frame():
    clock = FakeClock()
    b, events = make_breaker(clock, failure_threshold=3, cooldown_s=1.0, max_cooldown_s=8.0)
    sent = 0
    for _ in range(6000):  # ten minutes of frames at 10 Hz against a dead server
        clock.t += 0.1
        if b.acquire():
            sent += 1
            b.record_failure('connection refused')
    assert b.state in ('open', 'half_open')
    # 3 to open, then one probe per cool-down (1, 2, 4, then 8 s): about 600 / 8 of them.
    assert sent < 90 and len(events) < 2 * sent
    assert all(e.new in ('open', 'half_open') for e in events)


@pytest.mark.parametrize('kwargs', [{'failure_threshold': 0}, {'cooldown_s': 0},
                                    {'cooldown_s': 5.0, 'max_cooldown_s': 1.0},
                                    {'backoff': 0.5}])
def test_bad_breaker_configuration_raises(kwargs):
    with pytest.raises(ValueError):
        CircuitBreaker(**kwargs)


# ----------------------------------------------------------------------------- the fault matrix


@dataclass
class Harness:
    """A client with a real breaker against one fault server; records what it saw."""

    server: FaultServer
    client_kw: dict
    transitions: list
    counters: Counters

    @classmethod
    def make(cls, server: FaultServer, **client_kw) -> 'Harness':
        return cls(server, client_kw, [], Counters())

    def run(self, body: Callable) -> object:
        """Run body(client) on a fresh event loop with a fresh client; close it afterwards."""
        async def main():
            kw = {'timeout_s': 1.0, 'max_tokens': 16, **self.client_kw}
            breaker = CircuitBreaker(failure_threshold=2, cooldown_s=1.0, max_cooldown_s=2.0,
                                     on_transition=self.transitions.append)
            kw.setdefault('retry', RetryPolicy(max_retries=2, base_s=0.01, max_s=0.02))
            client = OpenAiVlmClient(kw.pop('url', self.server.url),
                                     kw.pop('model', MODEL), breaker=breaker, **kw)
            try:
                return await body(client)
            finally:
                await client.aclose()
                others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
                assert others == [], f'tasks left behind: {others}'
        return asyncio.run(main())

    async def ask(self, client: OpenAiVlmClient, deadline_s: float = 5.0) -> CloudResult:
        result = await client.ask(frame(), 'What is there?',
                                  deadline=time.monotonic() + deadline_s)
        self.counters.inc(f'status_{result.status}')
        if result.fault:
            self.counters.inc(f'fault_{result.fault}')
        return result


@dataclass
class Fault:
    name: str
    setup: Callable[[FaultServer], None]   # make the server fail this way
    heal: Callable[[FaultServer], None]    # bring it back
    status: str
    fault: str
    started: bool = True                   # the server runs while failing


def _status(code: int, **kw) -> Callable[[FaultServer], None]:
    return lambda s: s.set('status', status=code, **kw)


def _ok(s: FaultServer) -> None:
    s.set('ok')


def _restart(s: FaultServer) -> None:
    s.start()
    s.set('ok')


MATRIX = [
    Fault('down_at_start', lambda s: None, _restart, 'http_error', 'connect', started=False),
    Fault('dies_mid_run', lambda s: s.stop(), _restart, 'http_error', 'connect'),
    Fault('drops_connections', lambda s: s.set('drop'), _ok, 'http_error', 'connect'),
    Fault('hangs', lambda s: s.set('hang'), _ok, 'timeout', 'timeout'),
    Fault('slow_10s', lambda s: s.set('slow', delay_s=10.0), lambda s: s.set('slow', delay_s=0.05),
          'timeout', 'timeout'),
    Fault('http_500', _status(500, message='CUDA out of memory'), _ok, 'http_error',
          'server_error'),
    Fault('http_503', _status(503), _ok, 'http_error', 'server_error'),
    Fault('http_400', _status(400, message='bad image'), _ok, 'http_error', 'bad_request'),
    Fault('http_401', _status(401, message='invalid key'), _ok, 'http_error', 'unauthorized'),
    Fault('malformed_json', lambda s: s.set('malformed'), _ok, 'parse_error', 'malformed'),
    Fault('huge_response', lambda s: s.set('huge'), _ok, 'parse_error', 'too_large'),
    Fault('wrong_model', lambda s: setattr(s, 'served_model', 'another-model'),
          lambda s: setattr(s, 'served_model', MODEL), 'http_error', 'not_found'),
]


@pytest.mark.parametrize('status,retry_after', [(429, None), (503, '0')],
                         ids=['http_429', 'http_503_retry_after'])
def test_a_busy_server_is_retried_but_never_opens_the_breaker(server, status, retry_after):
    # A 429 or a 503 with Retry-After: up and shedding load. The send rate answers it
    # (core.selection); the breaker (threshold 2) would cut a robot off a shared server for
    # growing cool-downs. A bare 503 still opens it (the fault matrix).
    server.start().set('status', status=status, retry_after=retry_after)
    h = Harness.make(server, retry=RetryPolicy(max_retries=1, base_s=0.01, max_s=0.02))

    async def body(client):
        return [await h.ask(client) for _ in range(4)]
    results = h.run(body)
    assert h.transitions == []
    assert [(r.status, r.attempts, r.busy_tries) for r in results] == [('http_error', 2, 2)] * 4
    assert server.count == 8
    server.set('ok')
    result = h.run(h.ask)
    assert result.ok and result.busy_tries == 0


@pytest.fixture
def server():
    s = FaultServer(served_model=MODEL)
    try:
        yield s
    finally:
        s.stop()


@pytest.mark.parametrize('fault', MATRIX, ids=[f.name for f in MATRIX])
def test_fault_is_reported_retried_only_if_transient_breaker_opens_once_and_recovers(
        server, fault):
    if fault.started:
        server.start()
    h = Harness.make(server, max_response_bytes=64 * 1024, timeout_s=0.5)

    async def body(client: OpenAiVlmClient) -> None:
        if fault.name == 'dies_mid_run':
            assert (await h.ask(client)).ok  # it was fine before it died
            h.transitions.clear()
        fault.setup(server)
        sent_before = server.count
        first = await h.ask(client)
        assert (first.status, first.fault) == (fault.status, fault.fault), first.error
        assert first.error and first.answer == '' and first.boxes == []
        # Transient faults are retried; the breaker (2 failed tries) opens during the retries.
        assert first.attempts == (2 if fault.fault in RETRYABLE else 1)
        frames = [await h.ask(client) for _ in range(8)]
        # Open: the rest are not sent, and say so.
        assert [t.new for t in h.transitions] == ['open'], h.transitions
        not_sent = [r for r in frames if r.status == 'dropped']
        assert not_sent and all(r.fault == 'circuit_open' and 'circuit open' in r.error
                                for r in not_sent)
        if fault.started and fault.name != 'dies_mid_run':
            assert server.count - sent_before == 2  # the two failed tries, nothing more
        fault.heal(server)
        end = time.monotonic() + 15.0
        while time.monotonic() < end:
            result = await h.ask(client)
            if result.ok:
                break
            await asyncio.sleep(0.05)
        assert result.ok, result.error
        assert result.answer and result.boxes
        # Open, one probe per cool-down, closed: state changes come per cool-down, never per
        # frame. A probe that a loaded machine times out (0.5 s here) opens it once more.
        seq = [t.new for t in h.transitions]
        assert seq[-2:] == ['half_open', 'closed'], h.transitions
        assert seq[:-1] == ['open', 'half_open'] * (len(seq) // 2), h.transitions
        assert len(seq) <= 5, h.transitions
        assert client.in_flight == 0

    h.run(body)
    assert h.counters[f'fault_{fault.fault}'] >= 1 and h.counters['fault_circuit_open'] >= 1
    assert h.counters['status_ok'] >= 1


def test_json_without_boxes_is_an_answer_without_boxes(server):
    server.start().set('no_boxes')
    h = Harness.make(server)
    result = h.run(h.ask)
    assert (result.status, result.answer, result.boxes) == (
        'ok', 'There is a red box on the floor.', [])
    assert not result.structured and h.transitions == []


def test_transient_failures_that_clear_within_the_retries_are_an_answer(server):
    server.start().script('status', 'drop')  # 503, then a dropped connection, then fine
    h = Harness.make(server, retry=RetryPolicy(max_retries=2, base_s=0.01, max_s=0.02))

    async def body(client):
        client.breaker.configure(5, 1.0, 2.0)
        return await h.ask(client)
    result = h.run(body)
    assert result.ok and result.attempts == 3 and server.count == 3


def test_a_retry_waiting_while_the_breaker_opens_is_not_sent(server):
    server.start().set('status', status=503)
    # Two requests fail together: the first failure sends its request into a backoff (>= 0.5 s),
    # the second opens the breaker (threshold 2) long before that backoff ends.
    h = Harness.make(server, max_in_flight=2, retry=RetryPolicy(max_retries=2, base_s=1.0,
                                                                max_s=1.0))

    async def body(client):
        return await asyncio.gather(h.ask(client), h.ask(client))
    results = h.run(body)
    assert [t.new for t in h.transitions] == ['open']
    assert sorted(r.attempts for r in results) == [1, 1] and server.count == 2
    assert any('circuit open' in r.error for r in results)


def test_retry_after_is_waited_for_when_it_fits_the_deadline(server):
    server.start().set('ok', status=429, retry_after='0.4').script('status')
    h = Harness.make(server)
    result = h.run(lambda c: h.ask(c, deadline_s=5.0))
    assert result.ok and result.attempts == 2
    assert server.times[1] - server.times[0] >= 0.4  # it waited at least as long as asked


def test_retry_after_beyond_the_deadline_is_not_waited_for(server):
    server.start().set('status', status=429, retry_after='30')
    h = Harness.make(server)
    result = h.run(lambda c: h.ask(c, deadline_s=1.0))
    assert (result.status, result.fault, result.attempts) == ('http_error', 'rate_limited', 1)
    assert 'not retried' in result.error and 'deadline' in result.error
    assert server.count == 1


def test_a_request_past_its_deadline_is_dropped_not_sent(server):
    server.start()
    h = Harness.make(server)

    async def body(client):
        return await client.ask(frame(), 'q', deadline=time.monotonic() - 0.1)
    result = h.run(body)
    assert (result.status, result.fault, result.attempts) == ('dropped', 'max_age', 0)
    assert server.count == 0


def test_in_flight_limit_holds_requests_until_their_deadline(server):
    server.start().set('hang')
    h = Harness.make(server, max_in_flight=1, timeout_s=1.0)

    async def body(client):
        first = asyncio.create_task(h.ask(client))
        assert await asyncio.to_thread(server.wait_for_requests, 1)
        second = await h.ask(client, deadline_s=0.2)
        return await first, second
    first, second = h.run(body)
    assert first.status == 'timeout'
    assert (second.status, second.fault) == ('dropped', 'in_flight')
    assert server.count == 1


def test_a_server_rejecting_response_format_is_asked_again_without_it_once(server):
    server.start().set('no_response_format')
    notices: list[str] = []
    h = Harness.make(server, on_notice=notices.append)

    async def body(client):
        return [await h.ask(client) for _ in range(3)]
    results = h.run(body)
    assert all(r.ok and r.boxes for r in results)
    assert [('response_format' in r) for r in server.requests] == [True, False, False, False]
    assert len(notices) == 1 and 'response_format' in notices[0]
    assert h.transitions == []  # not a server failure


def test_structured_output_asks_for_the_reply_schema(server):
    server.start()
    h = Harness.make(server)
    result = h.run(h.ask)
    assert result.ok and result.structured
    fmt = server.requests[0]['response_format']
    assert fmt['type'] == 'json_schema'
    assert fmt['json_schema']['schema']['required'] == ['answer', 'objects']


def test_an_outage_of_the_emulated_network_is_a_timeout_and_sends_nothing(server):
    server.start()
    h = Harness.make(server, timeout_s=0.3,
                     network=NetworkProfile.parse('fixed:10+outage:0-3600'))
    result = h.run(h.ask)
    assert (result.status, result.fault, result.attempts) == ('timeout', 'timeout', 1)
    assert 'lost' in result.error and server.count == 0


def test_a_response_format_rejection_after_the_deadline_is_not_asked_again(server):
    server.start().set('no_response_format')
    clock = FakeClock()

    class SlowLink:
        """The first try takes the request past its deadline (on the client's clock)."""

        def sample(self, elapsed_s, up_bytes=0, down_bytes=0):
            clock.t += 10.0
            return 0.0

        def transfer_s(self, up_bytes=0, down_bytes=0):
            return 0.0

        def describe(self):
            return 'slow link'
    h = Harness.make(server, clock=clock, network=SlowLink())

    async def body(client):
        return await client.ask(frame(), 'q', deadline=clock.t + 5.0)
    result = h.run(body)
    assert (result.status, result.fault, result.attempts) == ('http_error', 'bad_request', 1)
    assert 'deadline' in result.error and server.count == 1  # nothing sent after the deadline


def test_the_download_cap_of_the_emulated_network_slows_the_reply(server):
    server.start()
    # The reply (~250 bytes) at 1 kbit/s down takes ~2 s: longer than the attempt may last.
    capped = Harness.make(server, timeout_s=0.5,
                          network=NetworkProfile.parse('fixed:0@1000/0.001'))
    result = capped.run(capped.ask)
    assert (result.status, result.fault) == ('timeout', 'timeout') and server.count == 1
    fast = Harness.make(server, timeout_s=0.5, network=NetworkProfile.parse('fixed:0@1000/1000'))
    assert fast.run(fast.ask).ok


# ----------------------------------------------------------------------------- TLS


@pytest.fixture(scope='module')
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    made = self_signed_cert(tmp_path_factory.mktemp('tls'))
    if isinstance(made, str):
        pytest.skip(f'no way to make a test certificate: {made}')
    return made


def test_https_with_an_untrusted_certificate_fails_clearly_and_is_not_retried(certificate):
    cert, key = certificate
    with FaultServer(served_model=MODEL, tls=server_tls_context(cert, key)) as server:
        h = Harness.make(server)
        result = h.run(h.ask)
        assert (result.status, result.fault, result.attempts) == ('http_error', 'tls', 1)
        assert 'TLS certificate verification failed' in result.error
        assert 'self-signed' in result.error and 'ca_file' in result.error
        assert server.count == 0  # no request went out over the unverified connection

        trusted = Harness.make(server, ca_file=str(cert))
        assert trusted.run(trusted.ask).ok
        unverified = Harness.make(server, tls_verify=False)
        assert unverified.run(unverified.ask).ok


def test_a_missing_ca_file_is_a_clear_configuration_error(tmp_path):
    with pytest.raises(ValueError, match='CA bundle'):
        OpenAiVlmClient('https://127.0.0.1:9/v1', MODEL, ca_file=str(tmp_path / 'none.pem'))


# ----------------------------------------------------------------------------- API key


def test_api_key_never_appears_in_errors_or_repr_even_when_the_server_echoes_it(server):
    server.start().set('status', status=401,
                       message=f'Incorrect API key provided: {API_KEY}')
    h = Harness.make(server, api_key=API_KEY)
    holder: list[OpenAiVlmClient] = []

    async def body(client):
        holder.append(client)
        return [await h.ask(client) for _ in range(4)]
    results = h.run(body)
    assert server.headers[0]['Authorization'] == f'Bearer {API_KEY}'
    for r in results:
        assert API_KEY not in r.error and API_KEY not in repr(r)
    assert '***' in results[0].error
    assert API_KEY not in repr(holder[0])
    assert API_KEY not in (holder[0].breaker.last_error or '')
    assert all(API_KEY not in json.dumps(b) for b in server.requests)


def test_a_key_echoed_where_the_error_text_is_cut_leaks_no_part_of_it(server):
    server.start().set('status', status=401, message='x' * (MAX_ERROR_CHARS - 10) + API_KEY)
    h = Harness.make(server, api_key=API_KEY)
    result = h.run(h.ask)
    assert result.fault == 'unauthorized' and API_KEY[:8] not in result.error



@pytest.mark.parametrize('value', ['hf_AbCdEfGhIjKlMnOpQrStUvWxYz012345', 'sk-proj-abc123',
                                   '0f3a9c2b7d1e4f5a6b8c9d0e1f2a3b4c', 'gsk_abcdef0123456789'])
def test_a_key_given_where_a_variable_name_goes_is_refused_without_showing_it(value):
    reason = BRIDGE_SPECS['api_key_env'].validate(value)
    assert reason and 'names an environment variable' in reason and value not in reason
    assert BRIDGE_SPECS['api_key_env'].validate('EDGEVLM_CLOUD_API_KEY') is None
    assert BRIDGE_SPECS['api_key_env'].validate('') is None


def test_credentials_in_the_url_are_refused_without_showing_them():
    url = 'https://robot1:s3cret-pass@proxy.example.org/v1'
    reason = BRIDGE_SPECS['base_url'].validate(url)
    assert reason and 's3cret-pass' not in reason and 'api_key' in reason
    with pytest.raises(ValueError) as e:
        OpenAiVlmClient(url, MODEL)
    assert 's3cret-pass' not in str(e.value)
    assert BRIDGE_SPECS['base_url'].validate('https://vlm.example.org:8443/v1') is None


# ----------------------------------------------------------------------------- nothing grows


def test_a_hanging_server_leaves_nothing_behind(server):
    server.start().set('hang')
    h = Harness.make(server, timeout_s=0.2, max_in_flight=2)

    async def body(client):
        results = await asyncio.gather(*(h.ask(client) for _ in range(6)))
        return results, client.in_flight
    results, in_flight = h.run(body)  # the harness also checks that no task is left
    assert in_flight == 0
    assert {r.status for r in results} <= {'timeout', 'dropped'}
    assert server.count <= 2 + 2  # two in flight, then the breaker: no more than a probe's worth


def test_client_for_a_closed_port_gives_up_at_once_per_try():
    port = free_port()
    server = FaultServer(port=port, served_model=MODEL)  # never started
    h = Harness.make(server)
    result = h.run(h.ask)
    assert (result.status, result.fault, result.attempts) == ('http_error', 'connect', 2)


# ----------------------------------------------------------------------------- the bridge node


@pytest.fixture
def bridge():
    """Make cloud_bridge nodes in this process, with parameters from the command line."""
    from edgevlm_ros.cloud_bridge_node import CloudBridgeNode
    import rclpy

    nodes = []
    given: list[dict] = []

    def make(**params: object):
        params = {'base_url': 'http://127.0.0.1:9/v1', 'model': MODEL, **params}
        if not given:  # one process, one set of command-line parameters
            args = ['--ros-args']
            for k, v in params.items():
                args += ['-p', f'{k}:={v}']
            rclpy.init(args=args)
            given.append(params)
        assert params == given[0], 'every bridge of a test gets the same parameters'
        nodes.append(CloudBridgeNode())
        return nodes[-1]
    try:
        yield make
    finally:
        for node in nodes:
            node.destroy_node()
        if given:
            rclpy.try_shutdown()


def test_retry_and_breaker_limits_that_contradict_each_other_are_refused_at_run_time(bridge):
    from rclpy.parameter import Parameter

    node = bridge()
    result = node.set_parameters([Parameter('retry.backoff_s', value=5.0)])[0]
    assert not result.successful and 'retry.max_backoff_s' in result.reason
    assert node.params['retry.backoff_s'] == 0.25  # the node still says what it uses
    result = node.set_parameters([Parameter('breaker.cooldown_s', value=100.0)])[0]
    assert not result.successful and node.params['breaker.cooldown_s'] == 2.0
    assert node.params.rejected == 2
    # Both ends at once are fine, and are applied.
    both = [Parameter('retry.backoff_s', value=5.0), Parameter('retry.max_backoff_s', value=10.0)]
    assert node.set_parameters_atomically(both).successful
    assert (node._client.retry.base_s, node._client.retry.max_s) == (5.0, 10.0)
    assert node.set_parameters([Parameter('breaker.max_cooldown_s', value=300.0)])[0].successful
    assert node.set_parameters([Parameter('breaker.cooldown_s', value=100.0)])[0].successful
    assert node._dispatch.breaker.cooldown_s == 100.0


def test_bridges_with_the_same_parameters_do_not_retry_in_step(bridge):
    a, b = bridge(), bridge()  # e.g. two robots started from the same params file (same seed)
    waits_a = [a._client.retry.backoff_s(k) for k in range(1, 6)]
    waits_b = [b._client.retry.backoff_s(k) for k in range(1, 6)]
    assert waits_a != waits_b


@pytest.mark.parametrize(('params', 'warning'), [
    ({'base_url': 'https://vlm.example.org/v1', 'tls_verify': 'false'},
     'certificates are NOT verified'),
    ({'base_url': 'http://vlm.example.org/v1'}, 'clear text'),
])
def test_unverified_or_clear_text_transport_is_warned_about_at_start(bridge, capfd, monkeypatch,
                                                                     params, warning):
    monkeypatch.setenv('EDGEVLM_CLOUD_API_KEY', API_KEY)
    bridge(**params)
    log = capfd.readouterr().err
    assert warning in log and API_KEY not in log


def test_verified_https_and_loopback_http_raise_no_transport_warning(bridge, capfd, monkeypatch):
    monkeypatch.setenv('EDGEVLM_CLOUD_API_KEY', API_KEY)
    bridge(base_url='http://127.0.0.1:9/v1')
    log = capfd.readouterr().err
    assert 'API key: $EDGEVLM_CLOUD_API_KEY' in log  # the start-up line is there
    assert 'NOT verified' not in log and 'clear text' not in log


def test_the_bridge_takes_the_edges_learned_hold_as_its_quiet_limit(bridge):
    from conftest import spin_until
    from edgevlm_msgs.msg import CloudHold
    from edgevlm_ros.ros.qos import LATCHED
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    node = bridge(scene_change=0.05, quiet_from_edge_hold='true')
    probe = rclpy.create_node('hold_probe')
    executor = SingleThreadedExecutor()
    try:
        executor.add_node(node)
        executor.add_node(probe)
        pub = probe.create_publisher(CloudHold, 'edgevlm/cloud_hold', LATCHED)
        q = 'What colour is the box?'
        # Published before the bridge's reader matched: latched, so it still arrives.
        pub.publish(CloudHold(question=q, kind='attribute', hold_s=3.0, duels=4.0))
        assert spin_until(executor, lambda: node.counters.get('cloud_holds_received') == 1, 30)
        selector = node._dispatch._selector
        assert selector.quiet_limit_s(0.0, q) == 3.0  # no round trip measured yet
        assert selector.quiet_limit_s(0.0, 'How many people?') == 5.0  # max_quiet_s
        # The gauge shows the limit in force: for the question of the last step sent.
        assert node._dispatch.gauges(0.0)['quiet_limit_s'] == '5.00'  # nothing sent yet
        sent = node._dispatch.offer(0.0, Step(question=q), frame())  # orders not carried out
        assert len(sent.send) == 1 and node._dispatch.gauges(0.0)['quiet_limit_s'] == '3.00'
        pub.publish(CloudHold(question=q, kind='attribute', hold_s=-1.0))
        assert spin_until(executor, lambda: node.counters.get('bad_cloud_hold') == 1, 30)
        assert selector.quiet_limit_s(0.0, q) == 3.0  # a bad one changes nothing
    finally:
        executor.shutdown()
        probe.destroy_node()


# ----------------------------------------------------------------------------- the real graph

STRATEGY = 'edgevlm'
GRAPH_BRIDGE = {'timeout_s': 1.0, 'max_age_s': 2.0, 'retry.max_retries': 1,
                'retry.backoff_s': 0.05, 'retry.max_backoff_s': 0.1,
                'breaker.failure_threshold': 2, 'breaker.cooldown_s': 1.0,
                'breaker.max_cooldown_s': 2.0}
STATE_LINE = re.compile(r'cloud (unknown|ok|failing|open|probing) -> (ok|failing|open|probing):')


def _params_file(tmp_path: Path, **bridge: object) -> str:
    """The package's parameters with the bridge's overridden (short timeouts for the tests)."""
    params = yaml.safe_load((PACKAGE / 'config' / 'edgevlm.yaml').read_text())
    params['/**/cloud_bridge']['ros__parameters'].update(GRAPH_BRIDGE, **bridge)
    path = tmp_path / 'params.yaml'
    path.write_text(yaml.safe_dump(params))
    return str(path)


def _answered_steps(probe, steps: list, answers: list, n: int) -> int:
    """How many of the next n published steps the edge answers (polling, no timing)."""
    # From the edge's first answer on: its first forward pass is slow, longer than n steps on a
    # loaded machine.
    assert probe.until(lambda: len(steps) > 0 and len(answers) > 0, 120)
    first = steps[-1].step_id + 1
    last = first + n - 1
    assert probe.until(lambda: steps[-1].step_id >= last, 120)
    # Answers lag their step by the model time: wait for one about a later step.
    assert probe.until(lambda: any(a.step_id > last for a in answers), 120)
    return len({a.step_id for a in answers if first <= a.step_id <= last})


def _state_changes_logged(graph) -> list[tuple[str, str]]:
    return STATE_LINE.findall(graph.log('cloud_bridge'))


def _latest_diagnostics(probe) -> dict[str, str]:
    return probe.diagnostics('cloud_bridge')


@pytest.mark.ros
def test_edge_keeps_its_rate_while_the_cloud_hangs_and_the_bridge_recovers(graph, probe,
                                                                          tmp_path):
    steps = probe.listen(Step, 'edgevlm/step', RESULTS)
    answers = probe.listen(Answer, 'edgevlm/answer', RESULTS)
    cloud = probe.listen(CloudResponse, 'edgevlm/cloud_response', RESULTS)
    probe.listen(DiagnosticArray, '/diagnostics', 10)
    with FaultServer(served_model=MODEL) as server:
        graph.launch(use_frame_source='true', strategy=STRATEGY, cloud_url=server.url,
                     cloud_model=MODEL, params_file=_params_file(tmp_path))
        assert probe.until(lambda: any(c.status == CloudResponse.STATUS_OK for c in cloud),
                           120), graph.log('cloud_bridge')
        healthy = _answered_steps(probe, steps, answers, 12)

        server.set('hang')
        n = len(cloud)
        assert probe.until(lambda: any(c.status == CloudResponse.STATUS_TIMEOUT
                                       for c in cloud[n:]), 60), graph.log('cloud_bridge')
        hanging = _answered_steps(probe, steps, answers, 12)
        # The cloud hanging costs the edge nothing: of the same number of steps, about as many
        # answered (the margin is machine noise; an edge waiting on the cloud would answer ~none).
        assert healthy >= 3 and hanging >= 0.6 * healthy, (healthy, hanging)
        assert any(c.status == CloudResponse.STATUS_DROPPED and 'circuit open' in c.error
                   for c in cloud[n:])
        # The bridge's own state (ros/diagnostics): degraded while the cloud does not answer.
        assert probe.until(lambda: _latest_diagnostics(probe).get('state') == 'degraded', 10)
        during = _latest_diagnostics(probe)
        assert during['cloud_state'] in ('failing', 'open', 'probing'), during
        assert int(during['in_flight']) <= 1 and int(during['pending']) <= 1
        assert int(during['http_tasks']) <= 1

        server.set('ok')
        n = len(cloud)
        assert probe.until(lambda: any(c.status == CloudResponse.STATUS_OK for c in cloud[n:]),
                           60), graph.log('cloud_bridge')
        # (A request sent while the server hung may still time out after the first success.)
        assert probe.until(lambda: _latest_diagnostics(probe).get('cloud_state') == 'ok', 30)
        assert probe.until(lambda: _latest_diagnostics(probe).get('state') == 'active', 10)
        diag = _latest_diagnostics(probe)
        logged = _state_changes_logged(graph)
    # One log line per state change, far fewer than the steps it handled.
    assert len(logged) == int(diag['state_changes']), (logged, diag)
    assert ('ok', 'failing') in logged or ('ok', 'open') in logged
    assert logged[-1][1] == 'ok' and int(diag['breaker_open']) >= 1
    assert len(logged) < int(diag['steps_received']) / 3
    assert int(diag['failures_timeout']) >= 1 and int(diag['dropped_circuit_open']) >= 1


@pytest.mark.ros
def test_cloud_down_at_start_then_refusing_the_key_then_up_and_the_key_never_shows(
        graph, probe, tmp_path, monkeypatch):
    monkeypatch.setenv('EDGEVLM_CLOUD_API_KEY', API_KEY)
    steps = probe.listen(Step, 'edgevlm/step', RESULTS)
    answers = probe.listen(Answer, 'edgevlm/answer', RESULTS)
    cloud = probe.listen(CloudResponse, 'edgevlm/cloud_response', RESULTS)
    probe.listen(DiagnosticArray, '/diagnostics', 10)
    server = FaultServer(served_model=MODEL)  # nothing listens on its port yet
    try:
        graph.launch(use_frame_source='true', strategy=STRATEGY, cloud_url=server.url,
                     cloud_model=MODEL, params_file=_params_file(tmp_path))
        assert probe.until(lambda: any(c.status == CloudResponse.STATUS_HTTP_ERROR
                                       for c in cloud), 120), graph.log('cloud_bridge')
        # The edge answers without a cloud (its rate with and without one is compared in the
        # hanging-cloud test; a count here would measure machine speed).
        assert _answered_steps(probe, steps, answers, 6) >= 1, 'the edge answers without a cloud'
        assert probe.until(lambda: any(c.status == CloudResponse.STATUS_DROPPED
                                       and 'circuit open' in c.error for c in cloud), 30)

        server.start().set('status', status=401,
                           message=f'Incorrect API key provided: {API_KEY}')
        assert probe.until(lambda: any('HTTP 401' in c.error for c in cloud), 60), (
            graph.log('cloud_bridge'))
        server.set('ok')
        n = len(cloud)
        assert probe.until(lambda: any(c.status == CloudResponse.STATUS_OK for c in cloud[n:]),
                           60), graph.log('cloud_bridge')
        assert server.headers[0]['Authorization'] == f'Bearer {API_KEY}'
        assert probe.until(lambda: _latest_diagnostics(probe).get('cloud_state') == 'ok', 30)
        diag = _latest_diagnostics(probe)
        log = graph.log('cloud_bridge')
    finally:
        server.stop()
    assert API_KEY not in log and '$EDGEVLM_CLOUD_API_KEY' in log
    assert all(API_KEY not in c.error for c in cloud)
    assert all(API_KEY not in v for v in diag.values())
    logged = STATE_LINE.findall(log)
    assert len(logged) == int(diag['state_changes']) and logged[-1][1] == 'ok'
    assert int(diag['failures_connect']) >= 1 and int(diag['failures_unauthorized']) >= 1


@pytest.mark.ros
@pytest.mark.parametrize(('params', 'expected'), [
    ({'api_key_file': '/nonexistent/key'}, 'cannot read the API key file'),
    ({'box_format': 'polar'}, "box_format='polar' is not one of"),
    ({'ca_file': '/nonexistent/ca.pem', 'base_url': 'https://127.0.0.1:9/v1'}, 'CA bundle'),
    ({'api_key_env': API_KEY + '!'}, 'names an environment variable'),
])
def test_a_bad_bridge_configuration_stops_it_with_one_clear_line(graph, params, expected):
    graph.node('cloud_bridge_node', 'cloud_bridge',
               {'base_url': 'http://127.0.0.1:9/v1', 'model': MODEL, **params})
    code = graph.popen('cloud_bridge').wait(60)
    log = graph.log('cloud_bridge')
    assert code == 2 and 'cannot start' in log and expected in log, log
    assert 'Traceback' not in log and API_KEY not in log  # a misplaced key stays secret


@pytest.mark.ros
def test_https_bridge_fails_clearly_without_the_private_ca_and_works_with_it(graph, probe,
                                                                             certificate):
    from edgevlm_ros.tooling import launch_runner

    cert, key = certificate
    robots = {'untrusted': {}, 'trusted': {'ca_file': str(cert)}}
    with FaultServer(served_model=MODEL, tls=server_tls_context(cert, key)) as server:
        bridges = [launch_runner.Node(
            package='edgevlm_ros', executable='cloud_bridge_node', name='cloud_bridge',
            namespace=ns, parameters=[{'base_url': server.url, 'model': MODEL, **GRAPH_BRIDGE,
                                       **extra}]) for ns, extra in robots.items()]
        procs, _, _ = launch_runner.plan(launch_runner.LaunchDescription(bridges), {})
        for proc, ns in zip(procs, robots):
            proc.name = f'cloud_bridge_{ns}'
        graph.start(procs)
        responses = {ns: probe.listen(CloudResponse, f'/{ns}/edgevlm/cloud_response', RESULTS)
                     for ns in robots}
        publishers = {ns: probe.node.create_publisher(Step, f'/{ns}/edgevlm/step', RESULTS)
                      for ns in robots}
        image = rgb_to_image(frame(), Header(frame_id='camera'))
        next_id = [0]

        def publish_steps() -> None:
            for pub in publishers.values():
                pub.publish(Step(header=Header(stamp=probe.node.get_clock().now().to_msg()),
                                 step_id=next_id[0], question='What is there?', image=image))
            next_id[0] += 1

        probe.node.create_timer(0.1, publish_steps)
        untrusted, trusted = responses['untrusted'], responses['trusted']
        assert probe.until(lambda: any(r.status == CloudResponse.STATUS_OK for r in trusted),
                           60), graph.log('cloud_bridge_trusted')
        assert probe.until(lambda: any('circuit open' in r.error for r in untrusted), 60), (
            graph.log('cloud_bridge_untrusted'))
        assert probe.until(lambda: len(untrusted) >= 40, 60)
        log = graph.log('cloud_bridge_untrusted')
    failed = [r for r in untrusted if r.status == CloudResponse.STATUS_HTTP_ERROR]
    assert failed and all('TLS certificate verification failed' in r.error
                          and 'ca_file' in r.error for r in failed)
    assert not any(r.status == CloudResponse.STATUS_OK for r in untrusted)
    # Many steps, few lines: one per state change (failing, open, then a probe per cool-down).
    logged = STATE_LINE.findall(log)
    assert logged[0] in (('unknown', 'open'), ('unknown', 'failing'))
    assert log.count('TLS certificate') <= len(logged) < len(untrusted) / 2


def test_a_cloud_failing_every_other_request_is_one_state_change_not_one_per_frame(bridge):
    from edgevlm_msgs.msg import Step
    from edgevlm_ros.cloud.openai_client import CloudResult

    node = bridge()
    ok = CloudResult(status='ok', answer='a cup', model=MODEL, attempts=1, round_trip_ms=50.0)
    bad = CloudResult(status='http_error', error='HTTP 500: boom', fault='server_error',
                      attempts=1)
    step_id = 0

    def report(result: CloudResult) -> None:
        nonlocal step_id
        step_id += 1
        node._report(Step(step_id=step_id, question='q?'), result)

    report(ok)
    assert node._dispatch.cloud_state == 'ok'
    for _ in range(10):  # under the breaker's threshold: never two failures in a row
        report(bad)
        report(ok)
    assert node._dispatch.cloud_state == 'failing'
    assert node.counters.get('state_changes') == 2  # unknown -> ok -> failing
    for _ in range(3):
        report(ok)
    assert node._dispatch.cloud_state == 'ok' and node.counters.get('state_changes') == 3


def test_boxes_the_bridge_could_not_use_are_counted(bridge):
    from edgevlm_msgs.msg import Step
    from edgevlm_ros.cloud.openai_client import CloudResult

    node = bridge()
    node._report(Step(step_id=1, question='q?'), CloudResult(
        status='ok', answer='a cup', model=MODEL, attempts=1, round_trip_ms=40.0, boxes_found=3,
        drop_reasons={'outside': 1, 'invalid': 1}, unparsed_boxes=True))
    assert node.counters.get('boxes_found') == 3
    assert node.counters.get('boxes_dropped_outside') == 1
    assert node.counters.get('boxes_dropped_invalid') == 1
    assert node.counters.get('replies_unparsed_boxes') == 1
