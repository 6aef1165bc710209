# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""cloud_bridge_node: sends selected Steps to an OpenAI-compatible LVLM, publishes late answers.

Every Step gets exactly one CloudResponse: the cloud's answer (or its failure: TIMEOUT,
HTTP_ERROR, PARSE_ERROR) when the step was sent, or DROPPED with the reason when it was not, so
nobody waits for an answer that will never come. Which steps go out and when is
``core.selection.CloudSelector`` (in-flight limit, adaptive minimum interval, scene change,
maximum age); how a failing server is survived is ``cloud.resilience`` (retries with jittered
backoff, circuit breaker); the HTTP exchange is ``cloud.openai_client``. This node only wires
them to topics, parameters, logs and /diagnostics counters.

Logs: one line per cloud state change (ok, failing, open, probing), never one per frame.
With base_url "embedded" the bridge starts the project's own LVLM server on 127.0.0.1 in this
process and talks real HTTP to it: the embedded default needs nothing from outside.
"""

import asyncio
from dataclasses import dataclass
import ipaddress
import re
import threading
import time
from urllib.parse import urlsplit

from edgevlm_msgs.msg import CloudResponse, Step
import numpy as np
from rclpy.node import Node

from edgevlm_ros.backends.base import DTYPES, check_device
from edgevlm_ros.cloud.openai_client import (
    MAX_RESPONSE_BYTES,
    STRUCTURED_OUTPUT,
    CloudResult,
    OpenAiVlmClient,
    resolve_api_key,
    url_has_credentials,
)
from edgevlm_ros.cloud.resilience import CircuitBreaker, RetryPolicy, Transition
from edgevlm_ros.core import regions
from edgevlm_ros.core.images import ImageDecodeError
from edgevlm_ros.core.netem import NetworkProfile
from edgevlm_ros.core.selection import CloudSelector, Decision
from edgevlm_ros.core.stats import Counters, LatencyWindow
from edgevlm_ros.core.strategy import Strategy
from edgevlm_ros.ros.conversions import box_to_region, image_to_rgb
from edgevlm_ros.ros.diagnostics import StatusReporter
from edgevlm_ros.ros.entry import run_node
from edgevlm_ros.ros.params import ParamSet, ParamSpec
from edgevlm_ros.ros.qos import LATEST_FRAME, RESULTS

STATUS = {'ok': CloudResponse.STATUS_OK, 'timeout': CloudResponse.STATUS_TIMEOUT,
          'http_error': CloudResponse.STATUS_HTTP_ERROR,
          'parse_error': CloudResponse.STATUS_PARSE_ERROR,
          'dropped': CloudResponse.STATUS_DROPPED}
# How often a step waiting for a free slot is checked against max_age_s.
EXPIRY_PERIOD_S = 0.1
# With use_sim_time, emulated network delays wait for the ROS clock, checked this often (wall s).
SIM_SLEEP_POLL_S = 0.005
# A failing cloud counts as 'ok' again only after this many answers in a row, so a cloud that
# fails every other request is one 'failing' line, not a line per frame.
RECOVER_AFTER = 3
SELECTION_PARAMS = ('max_in_flight', 'min_interval_s', 'scene_change', 'max_quiet_s',
                    'max_age_s', 'adaptive_interval', 'rtt_alpha')


def _check_profile(spec: str) -> str | None:
    try:
        NetworkProfile.parse(spec)
    except ValueError as e:
        return str(e)
    return None


def _check_url(url: str) -> str | None:
    if url == 'embedded':
        return None
    if not url.startswith(('http://', 'https://')):
        return 'base_url must be "embedded" or an http(s):// URL of an OpenAI-compatible API'
    if url_has_credentials(url):  # the URL is logged and quoted in errors; a key must not be
        return ('base_url must not carry credentials (user:password@); give the key through '
                'api_key_env or api_key_file')
    return None


# POSIX environment variable names: upper case, so that a key pasted here (hf_..., sk-..., hex)
# is refused instead of being logged as the name of an unset variable.
_ENV_NAME = re.compile(r'[A-Z_][A-Z0-9_]*')


def _check_env_name(name: str) -> str | None:
    return None if name == '' or _ENV_NAME.fullmatch(name) else (
        'api_key_env names an environment variable (upper-case letters, digits, _), not a key')


def _transport_warnings(url: str, tls_verify: bool, has_key: bool) -> list[str]:
    """What about the connection to the cloud a user must be told at start."""
    parts = urlsplit(url)
    warnings = []
    if parts.scheme == 'https' and not tls_verify:
        warnings.append('tls_verify is false: server certificates are NOT verified, so whoever '
                        'sits on the path can read the frames, answers and API key')
    if parts.scheme == 'http' and has_key and not _is_loopback(parts.hostname or ''):
        warnings.append(f'the API key goes in clear text over http:// to {parts.hostname}; '
                        'use an https:// endpoint')
    return warnings


def _is_loopback(host: str) -> bool:
    if host == 'localhost':
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_box_format(name: str) -> str | None:
    # Looked up when checked, so formats added to the parser are accepted without a change here.
    if name in regions.BOX_FORMATS:
        return None
    return f"box_format={name!r} is not one of {', '.join(regions.BOX_FORMATS)}"


PARAMS = [
    ParamSpec('base_url', 'embedded', 'OpenAI-compatible API root, e.g. http://gpu-box:8000/v1 '
              '(vLLM, SGLang, Ollama); "embedded" starts a local LVLM stand-in on 127.0.0.1',
              read_only=True, check=_check_url),
    ParamSpec('model', 'edgevlm-local-lvlm', 'model name sent in each request (as the server '
              'knows it)', read_only=True),
    ParamSpec('embedded_model', 'tiny-cloud', 'model served by the embedded stand-in: '
              '"tiny-cloud", a local checkpoint directory, "oracle:<eval bag>" (a test double '
              "for evaluations: the bag's ground truth), or the simulated LVLM (answers from the "
              "synthetic world's ground truth, wrong at rate error): "
              '"simulated:synth:<world keys>[,error=0.1][,error_seed=0]" or '
              '"simulated:<eval bag>[,error=0.1][,error_seed=0]"', read_only=True),
    ParamSpec('embedded_threads', 1, 'torch CPU threads of the embedded stand-in (it shares '
              'the robot computer with the edge model; 0 = torch default)', min=0, max=256,
              read_only=True),
    ParamSpec('embedded_device', 'auto', 'where the embedded stand-in runs its model: auto, '
              'cpu, cuda or cuda:N', check=check_device, read_only=True),
    ParamSpec('embedded_dtype', 'auto', "dtype of the embedded stand-in's model: auto "
              '(float16 on cuda, float32 on cpu), float32, float16 or bfloat16', choices=DTYPES,
              read_only=True),
    ParamSpec('api_key_env', 'EDGEVLM_CLOUD_API_KEY', 'environment variable holding the API key '
              '(the key itself is never a parameter and never logged); empty = none',
              read_only=True, check=_check_env_name),
    ParamSpec('api_key_file', '', 'file whose first line is the API key (wins over api_key_env);'
              ' empty = none', read_only=True),
    ParamSpec('tls_verify', True, 'verify https certificates (turn off only for a test server)',
              read_only=True),
    ParamSpec('ca_file', '', 'PEM bundle of a private CA that signed the server certificate; '
              'empty = the certifi (Mozilla) bundle, or $SSL_CERT_FILE if set', read_only=True),
    ParamSpec('timeout_s', 10.0, 'timeout of one request attempt, s', min=0.1, max=600.0,
              read_only=True),
    ParamSpec('max_tokens', 128, 'answer length cap sent to the LVLM', min=1, max=8192,
              read_only=True),
    ParamSpec('jpeg_quality', 85, 'JPEG quality of the uploaded frame', min=1, max=100,
              read_only=True),
    ParamSpec('max_image_side', 640, 'uploaded frame long side, px', min=32, max=4096,
              read_only=True),
    ParamSpec('box_format', 'auto', 'how the LVLM writes boxes: pixels (Qwen2.5-VL), grid1000 '
              '(Qwen2-VL/Qwen3-VL), normalized, auto, or a model family the parser knows',
              read_only=True, check=_check_box_format),
    ParamSpec('structured_output', 'json_schema', 'ask for JSON with response_format '
              '(json_schema, json_object) or not (off); dropped by itself if the server rejects '
              'it', choices=STRUCTURED_OUTPUT, read_only=True),
    ParamSpec('max_response_bytes', MAX_RESPONSE_BYTES, 'largest response body read; larger '
              'is a PARSE_ERROR', min=1024, max=64 * 1024 * 1024, read_only=True),
    ParamSpec('retry.max_retries', 2, 'retries of a request after a transient fault (connect '
              'error, 429, 500/502/503/504)', min=0, max=10),
    ParamSpec('retry.backoff_s', 0.25, 'first retry waits about this long (jittered, doubling)',
              min=0.001, max=60.0),
    ParamSpec('retry.max_backoff_s', 2.0, 'longest wait between two tries (Retry-After may ask '
              'for more, within max_age_s)', min=0.001, max=600.0),
    ParamSpec('breaker.failure_threshold', 5, 'failed tries in a row that open the circuit (no '
              'requests until a cool-down passes)', min=1, max=1000),
    ParamSpec('breaker.cooldown_s', 2.0, 'first cool-down of an open circuit, s; each failed '
              'probe doubles it', min=0.01, max=3600.0),
    ParamSpec('breaker.max_cooldown_s', 60.0, 'longest cool-down, s', min=0.01, max=86400.0),
    ParamSpec('max_in_flight', 1, 'requests in flight at once', min=1, max=64),
    ParamSpec('min_interval_s', 0.0, 'minimum time between two requests, s', min=0.0,
              max=3600.0),
    ParamSpec('adaptive_interval', True, 'also keep at least rtt_ewma / max_in_flight between '
              'two requests, so that requests do not queue'),
    ParamSpec('rtt_alpha', 0.3, 'weight of the newest round trip in its moving average',
              min=0.01, max=1.0),
    ParamSpec('scene_change', 0.0, 'send only when the frame differs this much (0..1) from the '
              'last one sent; 0 = off', min=0.0, max=1.0),
    ParamSpec('max_quiet_s', 5.0, 'with scene_change: send anyway after this long without a '
              'request, s', min=0.01, max=3600.0),
    ParamSpec('max_age_s', 3.0, 'a step not sent (first try or retry) within this long of '
              'arriving is dropped, not sent, s', min=0.01, max=3600.0),
    ParamSpec('network_profile', 'none', 'emulated network added to every try: none, '
              'fixed:<ms>, jitter:<mean_ms>,<std_ms>, trace:<name>, with @<up_mbit_s>[/<down>] '
              'and +outage:... modifiers (trace time and outages count from the bridge start; a '
              'lost request is a timeout)', check=_check_profile),
    ParamSpec('strategy', 'edgevlm', 'strategies that use no cloud (edge_only) send nothing',
              choices=tuple(s.value for s in Strategy)),
    ParamSpec('seed', 0, 'seed of the emulated network (the retry jitter is never seeded, so that '
              'robots started alike do not retry in step)', min=0, max=2**31 - 1, read_only=True),
]
SPECS = {s.name: s for s in PARAMS}


def _check_limits(values: dict) -> str | None:
    """Why retry or breaker limits contradict each other (the rules the policies enforce)."""
    try:
        RetryPolicy(values['retry.max_retries'], values['retry.backoff_s'],
                    values['retry.max_backoff_s'])
        CircuitBreaker(values['breaker.failure_threshold'], values['breaker.cooldown_s'],
                       values['breaker.max_cooldown_s'])
    except ValueError as e:
        return (f'{e} (retry.max_backoff_s >= retry.backoff_s, breaker.max_cooldown_s >= '
                'breaker.cooldown_s; set both at once or in the other order)')
    return None


@dataclass
class _Job:
    """One step on its way to the cloud."""

    step: Step
    rgb: np.ndarray
    offered_s: float  # the bridge's clock when it arrived; max_age_s counts from here


class CloudBridgeNode(Node):
    """Sends selected steps to the cloud LVLM; publishes a CloudResponse for every step."""

    def __init__(self) -> None:
        super().__init__('cloud_bridge')
        # Set first: destroy_node runs even when the configuration below makes __init__ fail.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server = None
        self.counters = Counters()
        self.params = ParamSet(self, PARAMS, on_change=self._on_params,
                               check_together=_check_limits)
        p = self.params
        self.round_trip = LatencyWindow(1000)
        self._lock = threading.Lock()  # the selector: the executor offers, the HTTP thread frees
        self._state_lock = threading.Lock()
        self._state = 'unknown'
        self._ok_streak = 0  # answers in a row since the last failure (for leaving 'failing')
        self._tasks = 0
        # Selection, round trips and emulated delays run on one clock: monotonic time, or the
        # ROS clock when a replay drives simulated time (/clock) at a speed-up.
        self._sim_time = bool(self.get_parameter('use_sim_time').value)
        self._profile = NetworkProfile.parse(p['network_profile'], p['seed'])
        self._selector = CloudSelector(**self._selection_args())
        self._breaker = CircuitBreaker(p['breaker.failure_threshold'], p['breaker.cooldown_s'],
                                       p['breaker.max_cooldown_s'],
                                       on_transition=self._on_breaker, clock=self._now)
        api_key, key_source = resolve_api_key(p['api_key_env'], p['api_key_file'])
        base_url = p['base_url']
        if base_url == 'embedded':
            from edgevlm_ros.lvlm.server import LvlmServer

            self._server = LvlmServer(model=p['embedded_model'], host='127.0.0.1', port=0,
                                      served_name=p['model'],
                                      num_threads=p['embedded_threads'],
                                      device=p['embedded_device'],
                                      dtype=p['embedded_dtype'])
            base_url = self._server.start()
            self.get_logger().info(f'embedded LVLM stand-in serving {p["model"]} at {base_url}')
        try:
            self._client = OpenAiVlmClient(
                base_url, p['model'], api_key=api_key, timeout_s=p['timeout_s'],
                max_tokens=p['max_tokens'], jpeg_quality=p['jpeg_quality'],
                max_image_side=p['max_image_side'], box_format=p['box_format'],
                tls_verify=p['tls_verify'], ca_file=p['ca_file'] or None,
                structured_output=p['structured_output'],
                max_response_bytes=p['max_response_bytes'], max_in_flight=p['max_in_flight'],
                retry=self._retry_policy(), breaker=self._breaker, network=self._profile,
                on_notice=self._on_notice, clock=self._now,
                sleep=self._sim_sleep if self._sim_time else asyncio.sleep)
        except ValueError:
            if self._server is not None:
                self._server.stop()
                self._server = None
            raise
        for warning in _transport_warnings(base_url, p['tls_verify'], api_key is not None):
            self.get_logger().warning(warning)
        self._loop = asyncio.new_event_loop()
        self._loop_thread = threading.Thread(target=self._loop.run_forever,
                                             name='cloud_bridge_http', daemon=True)
        self._loop_thread.start()
        self._pub = self.create_publisher(CloudResponse, 'edgevlm/cloud_response', RESULTS)
        self.create_subscription(Step, 'edgevlm/step', self._on_step, LATEST_FRAME)
        self._expiry = self.create_timer(EXPIRY_PERIOD_S, self._expire)
        self._status = StatusReporter(self, self.counters, gauges=self._gauges)
        self.get_logger().info(
            f"cloud: {base_url} model {p['model']}, API key: {key_source}, network "
            f'{self._profile.describe()}, at most {p["max_in_flight"]} in flight, steps older '
            f'than {p["max_age_s"]:g} s are not sent')

    # ------------------------------------------------------------------ time

    def _now(self) -> float:
        if self._sim_time:
            return self.get_clock().now().nanoseconds * 1e-9
        return time.monotonic()

    async def _sim_sleep(self, seconds: float) -> None:
        """Wait `seconds` of ROS (simulated) time; the HTTP timeout bounds it in wall time."""
        end = self._now() + seconds
        while (left := end - self._now()) > 0:
            await asyncio.sleep(min(SIM_SLEEP_POLL_S, left))

    # ------------------------------------------------------------------ configuration

    def _selection_args(self) -> dict:
        p = self.params
        return {'max_in_flight': p['max_in_flight'], 'min_interval_s': p['min_interval_s'],
                'scene_change': p['scene_change'], 'max_quiet_s': p['max_quiet_s'],
                'max_age_s': p['max_age_s'], 'adaptive': p['adaptive_interval'],
                'rtt_alpha': p['rtt_alpha']}

    def _retry_policy(self) -> RetryPolicy:
        p = self.params
        # Its own unseeded RNG: a shared seed would make a fleet retry at the same moments.
        return RetryPolicy(p['retry.max_retries'], p['retry.backoff_s'], p['retry.max_backoff_s'])

    def _on_params(self, changed: dict) -> None:
        p = self.params
        if 'network_profile' in changed:
            self._profile = NetworkProfile.parse(changed['network_profile'], p['seed'])
            self._client.network = self._profile
            self.get_logger().info(f'network profile is now {self._profile.describe()}')
        if set(SELECTION_PARAMS) & changed.keys():
            with self._lock:
                self._selector.configure(**self._selection_args())
            self._client.max_in_flight = p['max_in_flight']
        if any(k.startswith('retry.') for k in changed):
            self._client.retry = self._retry_policy()
        if any(k.startswith('breaker.') for k in changed):
            self._breaker.configure(p['breaker.failure_threshold'], p['breaker.cooldown_s'],
                                    p['breaker.max_cooldown_s'])

    # ------------------------------------------------------------------ steps

    def _on_step(self, msg: Step) -> None:
        self.counters.inc('steps_received')
        try:
            rgb = image_to_rgb(msg.image)
        except ImageDecodeError as e:
            self.counters.inc('bad_image')
            self.get_logger().warning(f'step {msg.step_id}: {e}', throttle_duration_sec=5.0)
            return
        if not Strategy.parse(self.params['strategy']).uses_cloud:
            self._publish_dropped(msg, 'strategy')
            return
        now = self._now()
        with self._lock:  # the selector thumbnails the frame only if the step may go
            decision = self._selector.offer(now, _Job(msg, rgb, now), rgb,
                                            gate=self._breaker.ready())
        self._apply(decision)

    def _expire(self) -> None:
        with self._lock:
            decision = self._selector.expire(self._now())
        self._apply(decision)

    def _apply(self, decision: Decision) -> None:
        for job, reason in decision.dropped:
            self._publish_dropped(job.step, reason)
        for job in decision.send:
            self.counters.inc('requests_sent')
            with self._state_lock:
                self._tasks += 1
            future = asyncio.run_coroutine_threadsafe(self._ask(job), self._loop)
            future.add_done_callback(self._request_done)

    def _publish_dropped(self, step: Step, reason: str, error: str = '') -> None:
        # Said out loud, so that whoever waits for this step's cloud answer stops waiting.
        self.counters.inc(f'dropped_{reason}')
        if not error:
            error = f'not sent: {reason}'
            if reason == 'circuit_open':
                error = (f'not sent: circuit open, next probe in '
                         f'{self._breaker.next_probe_in():.1f} s')
        self._pub.publish(CloudResponse(
            header=step.header, step_id=step.step_id, question=step.question,
            model=self.params['model'], status=CloudResponse.STATUS_DROPPED, error=error))

    def _request_done(self, future) -> None:
        with self._state_lock:
            self._tasks -= 1
        if not future.cancelled() and future.exception() is not None:
            self.counters.inc('bridge_errors')
            self.get_logger().error(f'cloud request failed inside the bridge: '
                                    f'{future.exception()!r}', throttle_duration_sec=10.0)

    async def _ask(self, job: _Job) -> None:
        deadline = job.offered_s + self._selector.max_age_s
        result = None
        try:
            result = await self._client.ask(job.rgb, job.step.question, deadline=deadline)
        except Exception as e:  # noqa: BLE001 - the client reports faults; this is a last guard
            self.counters.inc('bridge_errors')
            result = CloudResult(status='http_error', model=self.params['model'],
                                 error=f'bridge error: {type(e).__name__}: {e}')
        finally:
            rtt_s = result.round_trip_ms / 1000.0 if result is not None and result.ok else None
            with self._lock:
                decision = self._selector.finished(self._now(), rtt_s,
                                                   gate=self._breaker.ready())
        try:
            self._report(job.step, result)
        finally:
            self._apply(decision)  # the step that waited for this slot goes (or is dropped)

    def _report(self, step: Step, result: CloudResult) -> None:
        if result.status == 'dropped':
            self._publish_dropped(step, result.fault or 'client', result.error)
            return
        self._pub.publish(CloudResponse(
            header=step.header, step_id=step.step_id, question=step.question,
            answer=result.answer, regions=[box_to_region(b) for b in result.boxes],
            round_trip_ms=float(result.round_trip_ms),
            model=result.model or self.params['model'],
            status=STATUS.get(result.status, CloudResponse.STATUS_HTTP_ERROR),
            error=result.error))
        self.counters.inc(f'responses_{result.status}')
        self.counters.inc('attempts', result.attempts)
        self.counters.inc('retries', max(0, result.attempts - 1))
        self.counters.inc('bytes_sent', result.request_bytes)
        self.counters.inc('bytes_received', result.response_bytes)
        if result.ok:
            self.round_trip.add(result.round_trip_ms)
            if not result.structured:
                self.counters.inc('replies_unstructured')
            # Boxes the model wrote but that could not be used: a sign of a wrong box_format.
            self.counters.inc('boxes_found', result.boxes_found)
            for reason, n in result.drop_reasons.items():
                self.counters.inc(f'boxes_dropped_{reason}', n)
            if result.unparsed_boxes:
                self.counters.inc('replies_unparsed_boxes')
        else:
            self.counters.inc(f'failures_{result.fault or "other"}')
        with self._state_lock:
            self._ok_streak = self._ok_streak + 1 if result.ok else 0
            recovered = self._state != 'failing' or self._ok_streak >= RECOVER_AFTER
        if self._breaker.state == 'closed':  # else the breaker's own transitions say it all
            if result.ok and recovered:
                self._set_state('ok', f'answering (model {result.model}, '
                                      f'{result.round_trip_ms:.0f} ms, step {step.step_id})')
            elif not result.ok:
                self._set_state('failing', f'{result.error} (step {step.step_id}; '
                                           f'{self._breaker.failure_threshold} failures in a '
                                           'row open the circuit)')

    # ------------------------------------------------------------------ cloud state

    def _on_breaker(self, t: Transition) -> None:
        self.counters.inc(f'breaker_{t.new}')
        if t.new == 'open':
            self._set_state('open', f'{t.reason}, last error: {self._breaker.last_error}; '
                                    f'sending nothing for {t.cooldown_s:g} s')
        elif t.new == 'half_open':
            self._set_state('probing', 'cool-down over, sending one probe request')
        else:
            self._set_state('ok', 'probe answered, circuit closed')

    def _set_state(self, state: str, detail: str) -> None:
        """Log and count one line per cloud state change, never one per frame."""
        with self._state_lock:
            old = self._state
            if state == old:
                return
            self._state = state
        self.counters.inc('state_changes')
        # rclpy ties a severity to each call site: one call per severity.
        if state in ('ok', 'probing'):
            self.get_logger().info(f'cloud {old} -> {state}: {detail}')
        else:
            self.get_logger().warning(f'cloud {old} -> {state}: {detail}')

    def _on_notice(self, text: str) -> None:
        self.counters.inc('structured_output_disabled')
        self.get_logger().warning(text)

    def _gauges(self) -> dict[str, object]:
        rt = self.round_trip.summary()
        with self._lock:
            in_flight, pending = self._selector.in_flight, self._selector.pending
            interval = self._selector.interval_s
            ewma = self._selector.rtt_ewma_s
        return {'cloud_state': self._state, 'breaker_state': self._breaker.state,
                'next_probe_in_s': f'{self._breaker.next_probe_in():.2f}',
                'in_flight': in_flight, 'pending': pending, 'http_tasks': self._tasks,
                'interval_s': f'{interval:.3f}',
                'rtt_ewma_ms': 'nan' if ewma is None else f'{ewma * 1000:.1f}',
                'structured_output': self._client.structured_output,
                'round_trip_p50_ms': f"{rt['p50']:.1f}", 'round_trip_p95_ms': f"{rt['p95']:.1f}",
                'parameter_rejections': self.params.rejected}

    # ------------------------------------------------------------------ shutdown

    async def _shutdown_http(self) -> None:
        """Cancel requests still in flight, then close the connection pool."""
        current = asyncio.current_task()
        pending = [t for t in asyncio.all_tasks() if t is not current]
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        await self._client.aclose()

    def destroy_node(self) -> None:
        if self._loop is not None and self._loop.is_running():
            try:
                asyncio.run_coroutine_threadsafe(self._shutdown_http(), self._loop).result(5.0)
            except Exception:  # noqa: BLE001 - closing on shutdown is best effort
                pass
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._loop_thread.join(timeout=5.0)
        if self._server is not None:
            self._server.stop()
        super().destroy_node()


def main(args=None) -> int:
    return run_node(CloudBridgeNode, 'cloud_bridge', args)
