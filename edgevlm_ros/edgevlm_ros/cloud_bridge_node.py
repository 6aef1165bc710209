# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""cloud_bridge_node: sends selected Steps to an OpenAI-compatible LVLM, publishes late answers.

Every Step gets exactly one CloudResponse: the cloud's answer (or its failure: TIMEOUT,
HTTP_ERROR, PARSE_ERROR) when the step was sent, or DROPPED with the reason when it was not, so
nobody waits for an answer that will never come. Which steps go out and when is
``cloud.dispatch`` (``core.selection.CloudSelector``: in-flight limit, adaptive minimum interval,
scene change with a quiet limit from edge_svlm's learned hold of the question's answers
(edgevlm/cloud_hold), maximum age; gated by the circuit breaker); how a failing server is
survived is ``cloud.resilience`` (retries with jittered backoff, circuit breaker); the HTTP
exchange is ``cloud.openai_client``, run on the asyncio loop of ``cloud.loop_thread`` on the
clock of ``cloud.clock``; what a result publishes and counts is ``cloud.outcomes``; the
parameters' rules are ``cloud.bridge_config`` and the cloud state the log reports is
``cloud.health``. This node only wires them to topics, parameters, logs and /diagnostics
counters. Its /diagnostics state is 'loading' while the embedded stand-in loads its model,
then 'active', and 'degraded' while the cloud is not answering (failing, open, probing).

One-off questions: the action ``edgevlm/ask_cloud`` (edgevlm_msgs/action/Ask) streams the
LVLM's answer to a question about the newest step's frame (or a frame sent with the goal) as
feedback, on the bridge's ``ros.desk.Desk`` (``ros.cloud_ask``; rules in ``cloud.asks``, the
stream in ``cloud.ask_stream``), with slots of its own: an ask never takes a step's slot.

Logs: one line per cloud state change (ok, failing, open, probing), never one per frame.
With base_url "embedded" the bridge starts the project's own LVLM server on 127.0.0.1 in this
process and talks real HTTP to it: the embedded default needs nothing from outside.
"""

from edgevlm_msgs.msg import CloudHold, CloudResponse, Step
from rclpy.node import Node

from edgevlm_ros.backends.base import DTYPES, check_device
from edgevlm_ros.cloud.ask_stream import StreamingAsker
from edgevlm_ros.cloud.asks import MAX_NEW_TOKENS
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
from edgevlm_ros.cloud.clock import BridgeClock
from edgevlm_ros.cloud.dispatch import CloudDispatch, Job, Orders
from edgevlm_ros.cloud.health import HealthChange
from edgevlm_ros.cloud.loop_thread import LoopThread
from edgevlm_ros.cloud.openai_client import (
    MAX_RESPONSE_BYTES,
    STRUCTURED_OUTPUT,
    CloudResult,
    OpenAiVlmClient,
    resolve_api_key,
)
from edgevlm_ros.cloud.outcomes import CLOUD_DOWN, bridge_error, outcome
from edgevlm_ros.cloud.resilience import CircuitBreaker, Transition
from edgevlm_ros.core.ask import MAX_DEADLINE_S, Admission
from edgevlm_ros.core.images import ImageDecodeError
from edgevlm_ros.core.netem import NetworkProfile
from edgevlm_ros.core.selection import CloudSelector
from edgevlm_ros.core.stats import Counters
from edgevlm_ros.core.strategy import Strategy
from edgevlm_ros.ros.cloud_ask import CloudAskAction
from edgevlm_ros.ros.conversions import box_to_region, image_to_rgb
from edgevlm_ros.ros.desk import Desk
from edgevlm_ros.ros.diagnostics import ACTIVE, DEGRADED, LOADING, StatusReporter
from edgevlm_ros.ros.entry import run_node, shutdown_in_stages
from edgevlm_ros.ros.params import ParamSet, ParamSpec
from edgevlm_ros.ros.qos import LATCHED, LATEST_FRAME, RESULTS

STATUS = {'ok': CloudResponse.STATUS_OK, 'timeout': CloudResponse.STATUS_TIMEOUT,
          'http_error': CloudResponse.STATUS_HTTP_ERROR,
          'parse_error': CloudResponse.STATUS_PARSE_ERROR,
          'dropped': CloudResponse.STATUS_DROPPED}
# How often a step waiting for a free slot is checked against max_age_s.
EXPIRY_PERIOD_S = 0.1

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
    ParamSpec('max_tokens', 128, 'answer length cap sent to the LVLM (also of an ask whose '
              'max_new_tokens is 0)', min=1, max=MAX_NEW_TOKENS, read_only=True),
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
    ParamSpec('max_in_flight', 1, 'requests in flight at once (one more right after the '
              'question changes: the first step of a new question is sent at once)', min=1,
              max=64),
    ParamSpec('min_interval_s', 0.0, 'minimum time between two requests, s', min=0.0,
              max=3600.0),
    ParamSpec('adaptive_interval', True, 'also keep at least rtt_ewma / max_in_flight between '
              'two requests, so that requests do not queue'),
    ParamSpec('rtt_alpha', 0.3, 'weight of the newest round trip in its moving average',
              min=0.01, max=1.0),
    ParamSpec('scene_change', 0.0, 'send only when the frame differs this much (0..1) from the '
              'last one sent; 0 = off', min=0.0, max=1.0),
    ParamSpec('max_quiet_s', 5.0, 'with scene_change: send anyway after this long without a '
              'request (sooner where edge_svlm says a cloud answer holds less long), s',
              min=0.01, max=3600.0),
    ParamSpec('quiet_from_edge_hold', False, 'with scene_change: send an unchanged scene again '
              "before the cloud answer expires by edge_svlm's learned hold of it "
              '(edgevlm/cloud_hold, edgevlm_carried), at most max_quiet_s after the last send; '
              'false (default; it cost requests for no gain, docs/evaluation.md): after '
              'max_quiet_s only'),
    ParamSpec('max_age_s', 3.0, 'a step not sent (first try or retry) within this long of '
              'arriving is dropped, not sent, s', min=0.01, max=3600.0),
    ParamSpec('network_profile', 'none', 'emulated network added to every try: none, '
              'fixed:<ms>, jitter:<mean_ms>,<std_ms>, trace:<name>, with @<up_mbit_s>[/<down>] '
              'and +outage:... modifiers (trace time and outages count from the bridge start; a '
              'lost request is a timeout)', check=check_profile),
    ParamSpec('strategy', 'edgevlm', 'strategies that use no cloud (edge_only) send nothing',
              choices=tuple(s.value for s in Strategy)),
    ParamSpec('ask.max_in_flight', 1, 'one-off questions (edgevlm/ask_cloud) streaming at once, '
              "on slots of their own (never a step's)", min=1, max=16, read_only=True),
    ParamSpec('ask.max_queue', 1, 'one-off questions waiting for a slot; one more is refused '
              'with QUEUE_FULL', min=0, max=64, read_only=True),
    ParamSpec('ask.deadline_s', 30.0, 'an ask whose deadline_s is 0 ends this long after it '
              'was accepted, with the text so far, s', min=0.1, max=MAX_DEADLINE_S),
    ParamSpec('ask.feedback_chunks', 4, 'ask feedback at most every this many streamed chunks '
              '(or ask.feedback_ms)', min=1, max=10000),
    ParamSpec('ask.feedback_ms', 100.0, 'ask feedback at most this often when chunks trickle '
              'in, ms (the first text goes at once)', min=0.0, max=60000.0),
    ParamSpec('embedded_service_ms', 0.0, 'least time each model call of the embedded stand-in '
              'holds its model (gives a fast simulated LVLM the pace of a real one; streamed '
              'answers are spread over it); 0 = off', min=0.0, max=600000.0, read_only=True),
    ParamSpec('seed', 0, 'seed of the emulated network (the retry jitter is never seeded, so that '
              'robots started alike do not retry in step)', min=0, max=2**31 - 1, read_only=True),
]
SPECS = {s.name: s for s in PARAMS}


class CloudBridgeNode(Node):
    """Sends selected steps to the cloud LVLM; publishes a CloudResponse for every step."""

    def __init__(self) -> None:
        super().__init__('cloud_bridge')
        # Set first: destroy_node runs even when the configuration below makes __init__ fail.
        self._http = LoopThread('cloud_bridge_http')
        self._server = None
        self._desk = None
        self._status = None
        self._newest = None  # (Step, rgb) of the newest decodable step: an ask's default frame
        self.counters = Counters()
        self.params = ParamSet(self, PARAMS, on_change=self._on_params,
                               check_together=check_together)
        self._config = c = self._read_config()
        # Selection, round trips and emulated delays run on one clock: monotonic time, or the
        # ROS clock when a replay drives simulated time (/clock) at a speed-up.
        # (Not self._clock: rclpy's Node keeps its own clock there.)
        sim_time = self.get_parameter('use_sim_time').value
        self._time = BridgeClock(self._ros_now if sim_time else None)
        self._profile = NetworkProfile.parse(c.network_profile, c.seed)
        self._dispatch = CloudDispatch(CloudSelector(**c.selection()), CircuitBreaker(
            *c.breaker_limits(), on_transition=self._on_breaker, clock=self._time.now))
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
                retry=c.retry_policy(), breaker=self._dispatch.breaker, network=self._profile,
                on_notice=self._on_notice, clock=self._time.now, sleep=self._time.sleep)
        except ValueError:
            self._stop_embedded()
            raise
        for warning in transport_warnings(base_url, c.tls_verify, api_key is not None):
            self.get_logger().warning(warning)
        self._http.start()
        self._asker = StreamingAsker(self._client, c.ask_max_in_flight,
                                     on_notice=self._on_ask_notice)
        self._admission = Admission(c.ask_max_in_flight, c.ask_max_queue)
        self._desk = Desk(self, 'asks', c.ask_threads, counters=self.counters)
        CloudAskAction(self, self._desk, self._asker, self._admission, self._http,
                       self.counters, lambda: self._config, lambda: self._newest)
        self._pub = self.create_publisher(CloudResponse, 'edgevlm/cloud_response', RESULTS)
        self.create_subscription(Step, 'edgevlm/step', self._on_step, LATEST_FRAME)
        self.create_subscription(CloudHold, 'edgevlm/cloud_hold', self._on_hold, LATCHED)
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
        self._dispatch.configure(c, changed)  # the selector and the breaker
        if SELECTION_PARAMS & changed.keys():
            self._client.max_in_flight = c.client_slots
        if any(k.startswith('retry.') for k in changed):
            self._client.retry = c.retry_policy()

    def _ros_now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    # ------------------------------------------------------------------ steps

    def _on_hold(self, msg: CloudHold) -> None:
        """edge_svlm's learned hold of a question's cloud answers: scene_change's quiet limit."""
        try:
            self._dispatch.set_hold(msg.question, float(msg.hold_s))
        except ValueError as e:
            self.counters.inc('bad_cloud_hold')
            self.get_logger().warning(f'edgevlm/cloud_hold: {e}', throttle_duration_sec=5.0)
            return
        self.counters.inc('cloud_holds_received')

    def _on_step(self, msg: Step) -> None:
        self.counters.inc('steps_received')
        try:
            rgb = image_to_rgb(msg.image)
        except ImageDecodeError as e:
            self.counters.inc('bad_image')
            self.get_logger().warning(f'step {msg.step_id}: {e}', throttle_duration_sec=5.0)
            return
        self._newest = (msg, rgb)
        if not self._config.uses_cloud:
            self._publish_dropped(msg, 'strategy', self._dispatch.drop_error('strategy'))
            return
        self._apply(self._dispatch.offer(self._time.now(), msg, rgb))

    def _expire(self) -> None:
        self._apply(self._dispatch.expire(self._time.now()))

    def _apply(self, orders: Orders) -> None:
        for job, reason, error in orders.dropped:
            self._publish_dropped(job.step, reason, error)
        for job in orders.send:
            self.counters.inc('requests_sent')
            self._http.submit(self._ask(job)).add_done_callback(self._request_done)

    def _publish_dropped(self, step: Step, reason: str, error: str) -> None:
        # Said out loud, so that whoever waits for this step's cloud answer stops waiting.
        self.counters.inc(f'dropped_{reason}')
        self._pub.publish(CloudResponse(
            header=step.header, step_id=step.step_id, question=step.question,
            model=self._config.model, status=CloudResponse.STATUS_DROPPED, error=error))

    def _request_done(self, future) -> None:
        if not future.cancelled() and future.exception() is not None:
            self.counters.inc('bridge_errors')
            self.get_logger().error(f'cloud request failed inside the bridge: '
                                    f'{future.exception()!r}', throttle_duration_sec=10.0)

    async def _ask(self, job: Job) -> None:
        result = None
        try:
            result = await self._client.ask(job.rgb, job.step.question,
                                            deadline=self._dispatch.deadline_s(job))
        except Exception as e:  # noqa: BLE001 - the client reports faults; this is a last guard
            self.counters.inc('bridge_errors')
            result = bridge_error(e, self._config.model)
        finally:
            orders = self._dispatch.finished(self._time.now(), result)
        try:
            self._report(job.step, result)
        finally:
            self._apply(orders)  # the step that waited for this slot goes (or is dropped)

    def _report(self, step: Step, result: CloudResult) -> None:
        out = outcome(result)
        if out.drop_reason:
            self._publish_dropped(step, out.drop_reason,
                                  self._dispatch.drop_error(out.drop_reason, out.error))
            return
        self._pub.publish(CloudResponse(
            header=step.header, step_id=step.step_id, question=step.question,
            answer=result.answer, regions=[box_to_region(b) for b in result.boxes],
            round_trip_ms=float(result.round_trip_ms),
            model=result.model or self._config.model,
            status=STATUS.get(out.status, CloudResponse.STATUS_HTTP_ERROR), error=out.error))
        for name, n in out.counts:
            self.counters.inc(name, n)
        self._log_change(self._dispatch.report(result, step.step_id))

    # ------------------------------------------------------------------ cloud state

    def _on_breaker(self, t: Transition) -> None:
        self.counters.inc(f'breaker_{t.new}')
        self._log_change(self._dispatch.on_breaker(t))

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

    def _on_ask_notice(self, text: str) -> None:
        self.get_logger().warning(text)

    def _gauges(self) -> dict[str, object]:
        return {**self._dispatch.gauges(self._time.now()), 'http_tasks': self._http.pending,
                'asks_active': self._admission.active,
                'structured_output': self._client.structured_output,
                'parameter_rejections': self.params.rejected}

    # ------------------------------------------------------------------ shutdown

    def destroy_node(self) -> None:
        shutdown_in_stages(self.get_logger(), [
            ('HTTP loop', self._stop_http), ('ask desk', self._close_desk),
            ('embedded LVLM', self._stop_embedded), ('heartbeat', self._stop_heartbeat),
            ('node', super().destroy_node)])

    def _stop_http(self) -> None:
        # Requests and asks in flight are cancelled, then the connection pool is closed.
        self._http.stop(close=self._client.aclose if self._http.running else None)

    def _close_desk(self) -> None:
        if self._desk is not None:  # its goals end once their streams are cancelled
            self._desk.close()

    def _stop_heartbeat(self) -> None:
        if self._status is not None:
            self._status.destroy()


def main(args=None) -> int:
    return run_node(CloudBridgeNode, 'cloud_bridge', args)
