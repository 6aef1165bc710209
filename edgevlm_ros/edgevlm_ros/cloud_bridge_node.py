# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""cloud_bridge_node: sends selected Steps to an OpenAI-compatible LVLM, publishes late answers.

Every Step gets exactly one CloudResponse: the cloud's answer (or its failure: TIMEOUT,
HTTP_ERROR, PARSE_ERROR) when the step was sent, or DROPPED with the reason when it was not, so
nobody waits for an answer that will never come. Which steps go out and when is
``core.selection.CloudSelector`` (in-flight limit, adaptive minimum interval, scene change,
maximum age); how a failing server is survived is ``cloud.resilience`` (retries with jittered
backoff, circuit breaker); the HTTP exchange is ``cloud.openai_client``, run on the asyncio loop
of ``cloud.loop_thread``; the parameters' rules are ``cloud.bridge_config`` and the cloud state
the log reports is ``cloud.health``. This node only wires them to topics, parameters, logs and
/diagnostics counters. Its /diagnostics state is 'loading' while the embedded stand-in loads its
model, then 'active', and 'degraded' while the cloud is not answering (failing, open, probing).

Logs: one line per cloud state change (ok, failing, open, probing), never one per frame.
With base_url "embedded" the bridge starts the project's own LVLM server on 127.0.0.1 in this
process and talks real HTTP to it: the embedded default needs nothing from outside.
"""

import asyncio
from dataclasses import dataclass
import threading
import time

from edgevlm_msgs.msg import CloudResponse, Step
import numpy as np
from rclpy.node import Node

from edgevlm_ros.backends.base import DTYPES, check_device
from edgevlm_ros.cloud.bridge_config import (
    EMBEDDED,
    SELECTION_PARAMS,
    BridgeConfig,
    check_box_format,
    check_env_name,
    check_profile,
    check_together,
    check_url,
    transport_warnings,
)
from edgevlm_ros.cloud.health import CloudHealth, HealthChange
from edgevlm_ros.cloud.loop_thread import LoopThread
from edgevlm_ros.cloud.openai_client import (
    MAX_RESPONSE_BYTES,
    STRUCTURED_OUTPUT,
    CloudResult,
    OpenAiVlmClient,
    resolve_api_key,
)
from edgevlm_ros.cloud.resilience import CircuitBreaker, Transition
from edgevlm_ros.core.images import ImageDecodeError
from edgevlm_ros.core.netem import NetworkProfile
from edgevlm_ros.core.selection import CloudSelector, Decision
from edgevlm_ros.core.stats import Counters, LatencyWindow
from edgevlm_ros.core.strategy import Strategy
from edgevlm_ros.ros.conversions import box_to_region, image_to_rgb
from edgevlm_ros.ros.diagnostics import ACTIVE, DEGRADED, LOADING, StatusReporter
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

PARAMS = [
    ParamSpec('base_url', EMBEDDED, 'OpenAI-compatible API root, e.g. http://gpu-box:8000/v1 '
              '(vLLM, SGLang, Ollama); "embedded" starts a local LVLM stand-in on 127.0.0.1',
              read_only=True, check=check_url),
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
              read_only=True, check=check_env_name),
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
              read_only=True, check=check_box_format),
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
              'lost request is a timeout)', check=check_profile),
    ParamSpec('strategy', 'edgevlm', 'strategies that use no cloud (edge_only) send nothing',
              choices=tuple(s.value for s in Strategy)),
    ParamSpec('seed', 0, 'seed of the emulated network (the retry jitter is never seeded, so that '
              'robots started alike do not retry in step)', min=0, max=2**31 - 1, read_only=True),
]
SPECS = {s.name: s for s in PARAMS}
# Cloud health states (cloud.health) in which the bridge reports itself 'degraded'.
CLOUD_DOWN = frozenset({'failing', 'open', 'probing'})


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
        self._http = LoopThread('cloud_bridge_http')
        self._server = None
        self.counters = Counters()
        self.params = ParamSet(self, PARAMS, on_change=self._on_params,
                               check_together=check_together)
        self._config = c = self._read_config()
        self.round_trip = LatencyWindow(1000)
        # The selector and the cloud health: the executor offers steps, the HTTP thread frees
        # slots and reports outcomes, the breaker reports its transitions from either.
        self._lock = threading.Lock()
        self._health = CloudHealth()
        # Selection, round trips and emulated delays run on one clock: monotonic time, or the
        # ROS clock when a replay drives simulated time (/clock) at a speed-up.
        self._sim_time = bool(self.get_parameter('use_sim_time').value)
        self._profile = NetworkProfile.parse(c.network_profile, c.seed)
        self._selector = CloudSelector(**c.selection())
        self._breaker = CircuitBreaker(*c.breaker_limits(), on_transition=self._on_breaker,
                                       clock=self._now)
        api_key, key_source = resolve_api_key(c.api_key_env, c.api_key_file)
        # The heartbeat before the embedded stand-in loads its model (it may build it first);
        # its gauges once everything they read exists.
        self._status = StatusReporter(self, self.counters)
        if c.embedded:
            self._status.set_state(LOADING, f'embedded LVLM {c.embedded_model}')
        base_url = self._start_embedded() if c.embedded else c.base_url
        try:
            self._client = OpenAiVlmClient(
                base_url, c.model, api_key=api_key, **c.client_options(),
                retry=c.retry_policy(), breaker=self._breaker, network=self._profile,
                on_notice=self._on_notice, clock=self._now,
                sleep=self._sim_sleep if self._sim_time else asyncio.sleep)
        except ValueError:
            self._stop_embedded()
            raise
        for warning in transport_warnings(base_url, c.tls_verify, api_key is not None):
            self.get_logger().warning(warning)
        self._http.start()
        self._pub = self.create_publisher(CloudResponse, 'edgevlm/cloud_response', RESULTS)
        self.create_subscription(Step, 'edgevlm/step', self._on_step, LATEST_FRAME)
        self._expiry = self.create_timer(EXPIRY_PERIOD_S, self._expire)
        self._status.gauges = self._gauges
        self._status.set_state(ACTIVE)
        self.get_logger().info(
            f'cloud: {base_url} model {c.model}, API key: {key_source}, network '
            f'{self._profile.describe()}, at most {c.max_in_flight} in flight, steps older '
            f'than {c.max_age_s:g} s are not sent')

    # ------------------------------------------------------------------ configuration

    def _read_config(self) -> BridgeConfig:
        return BridgeConfig.from_values({name: self.params[name] for name in SPECS})

    def _start_embedded(self) -> str:
        from edgevlm_ros.lvlm.server import LvlmServer

        self._server = LvlmServer(**self._config.embedded_server())
        base_url = self._server.start()
        self.get_logger().info(f'embedded LVLM stand-in serving {self._config.model} at '
                               f'{base_url}')
        return base_url

    def _stop_embedded(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def _on_params(self, changed: dict) -> None:
        self._config = c = self._read_config()
        if 'network_profile' in changed:
            self._profile = NetworkProfile.parse(c.network_profile, c.seed)
            self._client.network = self._profile
            self.get_logger().info(f'network profile is now {self._profile.describe()}')
        if SELECTION_PARAMS & changed.keys():
            with self._lock:
                self._selector.configure(**c.selection())
            self._client.max_in_flight = c.max_in_flight
        if any(k.startswith('retry.') for k in changed):
            self._client.retry = c.retry_policy()
        if any(k.startswith('breaker.') for k in changed):
            self._breaker.configure(*c.breaker_limits())

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

    # ------------------------------------------------------------------ steps

    def _on_step(self, msg: Step) -> None:
        self.counters.inc('steps_received')
        try:
            rgb = image_to_rgb(msg.image)
        except ImageDecodeError as e:
            self.counters.inc('bad_image')
            self.get_logger().warning(f'step {msg.step_id}: {e}', throttle_duration_sec=5.0)
            return
        if not self._config.uses_cloud:
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
            self._http.submit(self._ask(job)).add_done_callback(self._request_done)

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
            model=self._config.model, status=CloudResponse.STATUS_DROPPED, error=error))

    def _request_done(self, future) -> None:
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
            result = CloudResult(status='http_error', model=self._config.model,
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
            model=result.model or self._config.model,
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
        with self._lock:
            change = self._health.observe(result, step.step_id, self._breaker.state,
                                          self._breaker.failure_threshold)
        self._log_change(change)

    # ------------------------------------------------------------------ cloud state

    def _on_breaker(self, t: Transition) -> None:
        self.counters.inc(f'breaker_{t.new}')
        with self._lock:
            change = self._health.observe_breaker(t, self._breaker.last_error)
        self._log_change(change)

    def _log_change(self, change: HealthChange | None) -> None:
        """Log and count one line per cloud state change, never one per frame."""
        if change is None:
            return
        self.counters.inc('state_changes')
        if change.new in CLOUD_DOWN:
            self._status.set_state(DEGRADED, f'cloud {change.new}')
        else:
            self._status.set_state(ACTIVE)
        # rclpy ties a severity to each call site: one call per severity.
        if change.is_warning:
            self.get_logger().warning(str(change))
        else:
            self.get_logger().info(str(change))

    def _on_notice(self, text: str) -> None:
        self.counters.inc('structured_output_disabled')
        self.get_logger().warning(text)

    def _gauges(self) -> dict[str, object]:
        rt = self.round_trip.summary()
        with self._lock:
            in_flight, pending = self._selector.in_flight, self._selector.pending
            interval = self._selector.interval_s
            ewma = self._selector.rtt_ewma_s
            cloud_state = self._health.state
        return {'cloud_state': cloud_state, 'breaker_state': self._breaker.state,
                'next_probe_in_s': f'{self._breaker.next_probe_in():.2f}',
                'in_flight': in_flight, 'pending': pending, 'http_tasks': self._http.pending,
                'interval_s': f'{interval:.3f}',
                'rtt_ewma_ms': 'nan' if ewma is None else f'{ewma * 1000:.1f}',
                'structured_output': self._client.structured_output,
                'round_trip_p50_ms': f"{rt['p50']:.1f}", 'round_trip_p95_ms': f"{rt['p95']:.1f}",
                'parameter_rejections': self.params.rejected}

    # ------------------------------------------------------------------ shutdown

    def destroy_node(self) -> None:
        # Requests still in flight are cancelled, then the connection pool is closed.
        self._http.stop(close=self._client.aclose if self._http.running else None)
        self._stop_embedded()
        super().destroy_node()


def main(args=None) -> int:
    return run_node(CloudBridgeNode, 'cloud_bridge', args)
