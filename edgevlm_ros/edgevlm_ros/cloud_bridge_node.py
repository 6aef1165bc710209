# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""cloud_bridge_node: sends selected Steps to an OpenAI-compatible LVLM, publishes late answers.

Selection (in-flight limit, minimum interval, scene change) decides which steps go out; each goes
as a JPEG data URL plus the question, asking for an answer and grounding boxes as JSON. The reply
becomes a CloudResponse for the step it is about, with the measured round trip (including the
emulated network, when one is configured). With base_url "embedded" the bridge starts the project's
own LVLM server on 127.0.0.1 in this process and talks real HTTP to it: the embedded default needs
nothing from outside.
"""

import asyncio
import os
import threading
import time

from edgevlm_msgs.msg import CloudResponse, Step
import numpy as np
from rclpy.node import Node

from edgevlm_ros.cloud.openai_client import CloudResult, OpenAiVlmClient
from edgevlm_ros.core.images import ImageDecodeError, to_grey
from edgevlm_ros.core.netem import NetworkProfile
from edgevlm_ros.core.regions import BOX_FORMATS
from edgevlm_ros.core.selection import CloudSelector
from edgevlm_ros.core.stats import Counters, LatencyWindow
from edgevlm_ros.core.strategy import Strategy
from edgevlm_ros.ros_conversions import box_to_region, image_to_rgb
from edgevlm_ros.ros_diagnostics import StatusReporter
from edgevlm_ros.ros_entry import run_node
from edgevlm_ros.ros_params import ParamSet, ParamSpec
from edgevlm_ros.ros_qos import LATEST_FRAME, RESULTS

STATUS = {'ok': CloudResponse.STATUS_OK, 'timeout': CloudResponse.STATUS_TIMEOUT,
          'http_error': CloudResponse.STATUS_HTTP_ERROR,
          'parse_error': CloudResponse.STATUS_PARSE_ERROR}


def _check_profile(spec: str) -> str | None:
    try:
        NetworkProfile.parse(spec)
    except ValueError as e:
        return str(e)
    return None


def _check_url(url: str) -> str | None:
    if url == 'embedded' or url.startswith(('http://', 'https://')):
        return None
    return 'base_url must be "embedded" or an http(s):// URL of an OpenAI-compatible API'


def _check_env_name(name: str) -> str | None:
    return None if name.replace('_', '').isalnum() else (
        'api_key_env names an environment variable (letters, digits, _), not a key')


PARAMS = [
    ParamSpec('base_url', 'embedded', 'OpenAI-compatible API root, e.g. http://gpu-box:8000/v1 '
              '(vLLM, SGLang, Ollama); "embedded" starts a local LVLM stand-in on 127.0.0.1',
              read_only=True, check=_check_url),
    ParamSpec('model', 'edgevlm-local-lvlm', 'model name sent in each request (as the server '
              'knows it)', read_only=True),
    ParamSpec('embedded_model', 'tiny-cloud', 'model served by the embedded stand-in: '
              '"tiny-cloud" or a local checkpoint directory', read_only=True),
    ParamSpec('api_key_env', 'EDGEVLM_CLOUD_API_KEY', 'environment variable holding the API key '
              '(the key itself is never a parameter and never logged)', read_only=True,
              check=_check_env_name),
    ParamSpec('verify_tls', True, 'verify https certificates', read_only=True),
    ParamSpec('timeout_s', 10.0, 'request timeout, s', min=0.1, max=600.0, read_only=True),
    ParamSpec('max_tokens', 128, 'answer length cap sent to the LVLM', min=1, max=8192,
              read_only=True),
    ParamSpec('jpeg_quality', 85, 'JPEG quality of the uploaded frame', min=1, max=100,
              read_only=True),
    ParamSpec('max_image_side', 640, 'uploaded frame long side, px', min=32, max=4096,
              read_only=True),
    ParamSpec('box_format', 'auto', 'how the LVLM writes boxes: pixels (Qwen2.5-VL), grid1000 '
              '(Qwen2-VL/Qwen3-VL), normalized, or auto', choices=BOX_FORMATS, read_only=True),
    ParamSpec('max_in_flight', 1, 'requests in flight at once', min=1, max=64),
    ParamSpec('min_interval_s', 0.0, 'minimum time between two requests, s', min=0.0,
              max=3600.0),
    ParamSpec('scene_change', 0.0, 'send only when the frame differs this much (0..1) from the '
              'last one sent; 0 = off', min=0.0, max=1.0),
    ParamSpec('network_profile', 'none', 'emulated network added to every round trip: none, '
              'fixed:<ms>, jitter:<mean_ms>,<std_ms>', check=_check_profile),
    ParamSpec('strategy', 'edgevlm', 'strategies that use no cloud (edge_only) send nothing',
              choices=tuple(s.value for s in Strategy)),
    ParamSpec('seed', 0, 'seed of the emulated network', min=0, max=2**31 - 1, read_only=True),
]


class CloudBridgeNode(Node):
    """Sends selected steps to the cloud LVLM; publishes a CloudResponse when each answer lands."""

    def __init__(self) -> None:
        super().__init__('cloud_bridge')
        self.counters = Counters()
        self.params = ParamSet(self, PARAMS, on_change=self._on_params)
        self.round_trip = LatencyWindow(1000)
        self._profile = NetworkProfile.parse(self.params['network_profile'], self.params['seed'])
        self._selector = self._make_selector()
        self._in_flight = 0
        self._in_flight_lock = threading.Lock()  # the executor adds, the HTTP loop thread removes
        self._cloud_state = 'unknown'
        self._server = None
        base_url = self.params['base_url']
        if base_url == 'embedded':
            from edgevlm_ros.models.lvlm_server import LvlmServer

            self._server = LvlmServer(model=self.params['embedded_model'], host='127.0.0.1',
                                      port=0, served_name=self.params['model'])
            base_url = self._server.start()
            self.get_logger().info(f'embedded LVLM stand-in serving {self.params["model"]} '
                                   f'at {base_url}')
        key_env = self.params['api_key_env']
        api_key = os.environ.get(key_env) or None
        self._client = OpenAiVlmClient(
            base_url, self.params['model'], api_key=api_key, timeout_s=self.params['timeout_s'],
            max_tokens=self.params['max_tokens'], jpeg_quality=self.params['jpeg_quality'],
            max_image_side=self.params['max_image_side'], box_format=self.params['box_format'],
            verify_tls=self.params['verify_tls'])
        self._loop = asyncio.new_event_loop()
        self._loop_thread = threading.Thread(target=self._loop.run_forever,
                                             name='cloud_bridge_http', daemon=True)
        self._loop_thread.start()
        self._pub = self.create_publisher(CloudResponse, 'edgevlm/cloud_response', RESULTS)
        self.create_subscription(Step, 'edgevlm/step', self._on_step, LATEST_FRAME)
        self._status = StatusReporter(self, self.counters, gauges=self._gauges)
        self.get_logger().info(
            f"cloud: {base_url} model {self.params['model']}, "
            f"{'API key from $' + key_env if api_key else 'no API key'}, network "
            f'{self._profile.describe()}, at most {self.params["max_in_flight"]} in flight')

    def _make_selector(self) -> CloudSelector:
        return CloudSelector(max_in_flight=self.params['max_in_flight'],
                             min_interval_s=self.params['min_interval_s'],
                             scene_change=self.params['scene_change'])

    def _on_params(self, changed: dict) -> None:
        if 'network_profile' in changed:
            self._profile = NetworkProfile.parse(changed['network_profile'], self.params['seed'])
            self.get_logger().info(f'network profile is now {self._profile.describe()}')
        if {'max_in_flight', 'min_interval_s', 'scene_change'} & changed.keys():
            self._selector = self._make_selector()

    def _on_step(self, msg: Step) -> None:
        self.counters.inc('steps_received')
        try:
            rgb = image_to_rgb(msg.image)
        except ImageDecodeError as e:
            self.counters.inc('bad_image')
            self.get_logger().warning(f'step {msg.step_id}: {e}', throttle_duration_sec=5.0)
            return
        now = time.monotonic()
        grey = to_grey(rgb, 64)
        if not Strategy.parse(self.params['strategy']).uses_cloud:
            send, reason = False, 'strategy'
        else:
            with self._in_flight_lock:
                send, reason = self._selector.decide(now, self._in_flight, grey)
                if send:
                    self._selector.mark_sent(now, grey)
                    self._in_flight += 1
        if not send:
            # Said out loud, so that whoever waits for this step's cloud answer stops waiting.
            self.counters.inc(f'not_sent_{reason}')
            self._pub.publish(CloudResponse(
                header=msg.header, step_id=msg.step_id, question=msg.question,
                model=self.params['model'], status=CloudResponse.STATUS_DROPPED,
                error=f'not sent: {reason}'))
            return
        self.counters.inc('requests_sent')
        future = asyncio.run_coroutine_threadsafe(self._ask(msg, rgb), self._loop)
        future.add_done_callback(self._request_done)

    def _request_done(self, future) -> None:
        if not future.cancelled() and future.exception() is not None:
            self.counters.inc('bridge_errors')
            self.get_logger().error(f'cloud request failed inside the bridge: '
                                    f'{future.exception()!r}', throttle_duration_sec=10.0)

    async def _ask(self, step: Step, rgb: np.ndarray) -> None:
        t0 = time.monotonic()
        try:
            # The emulated network: half the delay on the way up, half on the way down.
            delay = self._profile.delay_s(rgb.size // 10)
            await asyncio.sleep(delay / 2)
            result = await self._client.ask(rgb, step.question)
            await asyncio.sleep(delay / 2)
        except Exception as e:  # noqa: BLE001 - the client reports faults; this is a last guard
            result = CloudResult(status='http_error', answer='', boxes=[], round_trip_ms=0.0,
                                 model=self.params['model'], error=f'bridge error: {e}',
                                 request_bytes=0, response_bytes=0)
        finally:
            with self._in_flight_lock:
                self._in_flight -= 1
        rtt_ms = (time.monotonic() - t0) * 1000.0
        self._report(step, result, rtt_ms)

    def _report(self, step: Step, result: CloudResult, rtt_ms: float) -> None:
        msg = CloudResponse(header=step.header, step_id=step.step_id, question=step.question,
                            answer=result.answer, regions=[box_to_region(b) for b in result.boxes],
                            round_trip_ms=float(rtt_ms),
                            model=result.model or self.params['model'],
                            status=STATUS.get(result.status, CloudResponse.STATUS_HTTP_ERROR),
                            error=result.error)
        self._pub.publish(msg)
        self.counters.inc(f'responses_{result.status}')
        self.counters.inc('bytes_sent', result.request_bytes)
        self.counters.inc('bytes_received', result.response_bytes)
        state = 'reachable' if result.status == 'ok' else f'failing ({result.status})'
        if result.status == 'ok':
            self.round_trip.add(rtt_ms)
        if state != self._cloud_state:
            # One line per state change, never one per frame.
            log = self.get_logger().info if result.status == 'ok' else self.get_logger().warning
            log(f'cloud is {state}' + (f': {result.error}' if result.error else '')
                + f' (step {step.step_id}, {rtt_ms:.0f} ms)')
            self._cloud_state = state

    def _gauges(self) -> dict[str, object]:
        rt = self.round_trip.summary()
        return {'in_flight': self._in_flight, 'cloud_state': self._cloud_state,
                'round_trip_p50_ms': f"{rt['p50']:.1f}", 'round_trip_p95_ms': f"{rt['p95']:.1f}",
                'parameter_rejections': self.params.rejected}

    async def _shutdown_http(self) -> None:
        """Cancel requests still in flight, then close the connection pool."""
        current = asyncio.current_task()
        pending = [t for t in asyncio.all_tasks() if t is not current]
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        await self._client.aclose()

    def destroy_node(self) -> None:
        if self._loop.is_running():
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
