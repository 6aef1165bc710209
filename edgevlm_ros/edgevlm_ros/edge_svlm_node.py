# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
edge_svlm_node: answers every Step it can take with the edge SVLM.

Always the newest Step: a Step that arrives while another one waits is replaced and counted as
skipped, never queued. The SVLM sees a multi-turn history (one slot per step); with Context
Replacement the cloud's late answers overwrite the edge's own answers in their slots, and with
Visual Focus the newest fresh FocusMask biases attention towards the regions the cloud relied on.
With edgevlm_arbitrated the newest cloud answer stands for the step instead of the SVLM's when
core.arbitration says it may (fresh, same question, a cloud that does not contradict itself); the
Answer says why in `reason`.
The model is loaded once, in the lifecycle configure transition (autostart does configure +
activate).
"""

from collections import OrderedDict
import re
import threading
import time

from edgevlm_msgs.msg import Answer, CloudResponse, ContextUpdate, FocusMask, Prompt, Step
from edgevlm_msgs.srv import Ask
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.lifecycle import LifecycleState, Node, TransitionCallbackReturn

from edgevlm_ros.backends.base import (
    BACKENDS,
    DTYPES,
    QUANTIZATIONS,
    STAGES,
    check_device,
    parse_providers,
)
from edgevlm_ros.core.arbitration import (
    ArbitrationParams,
    CloudConsistency,
    CloudView,
    EdgeAnswerLog,
    arbitrate,
)
from edgevlm_ros.core.context import ContextStore
from edgevlm_ros.core.images import ImageDecodeError
from edgevlm_ros.core.regions import Box
from edgevlm_ros.core.stats import Counters, LatencyWindow
from edgevlm_ros.core.strategy import Strategy
from edgevlm_ros.core.zoom import focus_view
from edgevlm_ros.ros.conversions import image_to_rgb, region_to_box, stamp_to_s
from edgevlm_ros.ros.diagnostics import StatusReporter
from edgevlm_ros.ros.entry import run_node
from edgevlm_ros.ros.params import ParamSet, ParamSpec
from edgevlm_ros.ros.qos import LATEST_FRAME, RESULTS

# How Visual Focus reaches the SVLM: an attention bias, or a different image for models whose
# attention is out of reach (ONNX, HTTP) or for an ablation.
FOCUS_MODES = ('auto', 'attention', 'crop', 'overlay')

# Cloud responses kept for offload/cloud_stale look-ups, newest last (a bound, not a history).
MAX_CLOUD_RESPONSES = 64
# edgevlm_arbitrated: the SVLM's own answers kept to compare with late cloud answers (a bound).
MAX_OWN_ANSWERS = 64
# offload: how often a step waiting for its cloud answer checks its deadline (wall s).
OFFLOAD_POLL_S = 0.02


def parse_layers(text: str) -> list[int] | None:
    """'all' -> None (every decoder layer); '0,2,5' -> [0, 2, 5]."""
    text = text.strip().lower()
    if text in ('', 'all'):
        return None
    layers = [int(x) for x in text.split(',') if x.strip()]
    if any(x < 0 for x in layers):
        raise ValueError('layer indices must be >= 0')
    return layers


def _check_layers(text: str) -> str | None:
    try:
        parse_layers(text)
    except ValueError as e:
        return f'focus.layers must be "all" or comma-separated layer indices: {e}'
    return None


def providers_option(text: str) -> tuple[str, ...]:
    """The providers parameter as the backend keyword: 'auto' or '' -> () (runtime default)."""
    return () if text.strip().lower() in ('', 'auto') else parse_providers(text)


def _check_providers(text: str) -> str | None:
    bad = [p for p in providers_option(text) if not p.endswith('ExecutionProvider')]
    if bad:
        return ('providers must be auto or ONNX Runtime execution provider names '
                f"(CUDAExecutionProvider, CPUExecutionProvider, ...), got {', '.join(bad)}")
    return None


def _check_pattern(text: str) -> str | None:
    try:
        re.compile(text)
    except re.error as e:
        return f'focus.skip_questions must be a regular expression: {e}'
    return None


PARAMS = [
    ParamSpec('model', 'tiny', 'edge SVLM: "tiny" (built offline on first use), a local '
              'checkpoint directory or a hub id (SmolVLM-256M/500M-Instruct, any '
              'AutoModelForImageTextToText); "scripted:<json>" is a test double for '
              'evaluation tests', read_only=True),
    ParamSpec('backend', 'transformers', 'runtime of the edge model: transformers (PyTorch), '
              'onnxruntime or openvino (an ONNX export, edgevlm export-onnx), auto (chosen per '
              'model and machine)', choices=BACKENDS, read_only=True),
    ParamSpec('device', 'auto', 'where the model runs: auto (cuda when torch sees a GPU, else '
              'cpu), cpu, cuda or cuda:N', check=check_device, read_only=True),
    ParamSpec('dtype', 'auto', 'weights and activations: auto (float16 on cuda, float32 on cpu), '
              'float32, float16 or bfloat16', choices=DTYPES, read_only=True),
    ParamSpec('quantize', 'none', 'none or int8: transformers dynamic int8 Linear layers; '
              'onnxruntime the int8 graphs; openvino a static int8 vision encoder (calibrated '
              'once, on the first load) and the int8 decoder', choices=QUANTIZATIONS,
              read_only=True),
    ParamSpec('providers', 'auto', 'ONNX Runtime execution providers in order of preference, '
              'comma-separated (e.g. "CUDAExecutionProvider,CPUExecutionProvider"); auto = the '
              "runtime's default for the device; ignored by the transformers backend",
              check=_check_providers, read_only=True),
    ParamSpec('kv_reuse', True, 'keep the KV cache of the unchanged prompt prefix (the history) '
              'between steps, so a step pays only for what changed', read_only=True),
    ParamSpec('strategy', Strategy.EDGEVLM.value, 'how answers are produced',
              choices=tuple(s.value for s in Strategy)),
    ParamSpec('max_new_tokens', 24, 'answer length cap, tokens', min=1, max=512),
    ParamSpec('image_longest_edge', 512, 'SVLM input resolution (long side), px', min=64,
              max=4096, read_only=True),
    ParamSpec('do_image_splitting', False, 'Idefics3/SmolVLM tiling (about 17x the vision '
              'cost on a CPU)', read_only=True),
    ParamSpec('num_threads', 0, 'torch CPU threads (0 = torch default)', min=0, max=256,
              read_only=True),
    ParamSpec('history.max_turns', 8, 'history slots (0 = no history)', min=0, max=64),
    ParamSpec('history.max_tokens', 512, 'history token cap (question + answer of all slots)',
              min=0, max=8192),
    ParamSpec('history.evict_block', 4, 'turns dropped at once from the front of the history '
              'when a cap is exceeded, so its first turns (the KV-cached prompt prefix) stay the '
              'same for several steps; 1 = a window sliding by one turn every step', min=1,
              max=64),
    ParamSpec('focus.alpha', 2.0, 'Visual Focus: logit bias on focused image tokens', min=0.0,
              max=20.0),
    ParamSpec('focus.layers', 'all', 'decoder layers that get the bias: "all" or "0,1,..."',
              check=_check_layers),
    ParamSpec('focus.mode', 'auto', 'how Visual Focus steers the SVLM: attention (logit bias '
              'on focused image tokens), crop (the SVLM sees the focus region zoomed in, with '
              'context), overlay (boxes outlined, the rest dimmed), auto (attention when the '
              'model allows it, else crop)', choices=FOCUS_MODES),
    ParamSpec('focus.crop_margin', 0.25, 'crop/auto mode: context kept around the focus boxes, '
              'as a fraction of their size', min=0.0, max=4.0),
    ParamSpec('focus.skip_questions', r'^\s*how many\b', 'Visual Focus: questions matching '
              'this regular expression (case-insensitive, searched; empty = none) are answered '
              'without it. Default: counting questions, because focusing the counted objects '
              'makes the micro SVLM miscount (docs/evaluation.md)', check=_check_pattern),
    ParamSpec('focus.max_age_s', 5.0, 'masks whose source frame is older are not applied, s',
              min=0.0, max=600.0),
    ParamSpec('arbitration.max_age_s', ArbitrationParams.max_age_s, 'edgevlm_arbitrated: a cloud '
              'answer about a frame older than this (camera time) never stands for a step, s',
              min=0.0, max=600.0),
    ParamSpec('arbitration.max_self_disagreement', ArbitrationParams.max_self_disagreement,
              'edgevlm_arbitrated: the cloud is not trusted while it contradicts itself on more '
              'than this share of consecutive answers to one question (1 = always trusted)',
              min=0.0, max=1.0),
    ParamSpec('offload.deadline_s', 1.0, 'offload strategy: wait for the cloud up to this long '
              'when its predicted round trip fits, s', min=0.0, max=60.0),
    ParamSpec('debug.publish_prompt', False, 'publish what the SVLM received for every step '
              '(rendered chat template, token counts) on edgevlm/prompt'),
    ParamSpec('autostart', True, 'configure and activate on start-up, as a lifecycle manager '
              'would', read_only=True),
]


class EdgeSvlmNode(Node):
    """Answers every Step it can take with the edge SVLM, using cloud context when it is fresh."""

    def __init__(self) -> None:
        super().__init__('edge_svlm')
        # Set first: destroy_node runs (at context shutdown) even when a bad parameter makes
        # __init__ fail.
        self._lock = threading.Condition()
        self._running = False
        self._worker: threading.Thread | None = None
        self.counters = Counters()
        self.params = ParamSet(self, PARAMS, on_change=self._on_params)
        self.latency = LatencyWindow(1000)
        self.model_time = LatencyWindow(1000)
        self.stage_time = {stage: LatencyWindow(1000) for stage in STAGES}
        self._runtime = self.params['backend']  # what 'auto' became, once loaded
        self.svlm = None
        self.store: ContextStore | None = None
        self._pending: Step | None = None
        self._newest_step: Step | None = None
        self._focus: FocusMask | None = None
        self._cloud: OrderedDict[int, CloudResponse] = OrderedDict()
        self._rtt_ewma_s: float | None = None
        self._own = EdgeAnswerLog(MAX_OWN_ANSWERS)
        self._consistency = CloudConsistency()
        self._subs = []
        self._answer_pub = None
        self._prompt_pub = None
        self._ask_srv = None
        self._status = None
        self._io_group = MutuallyExclusiveCallbackGroup()
        self._ask_group = ReentrantCallbackGroup()
        if self.params['autostart']:
            self._autostart_timer = self.create_timer(0.0, self._autostart)

    # ------------------------------------------------------------------ lifecycle
    def _autostart(self) -> None:
        self.destroy_timer(self._autostart_timer)
        if self.trigger_configure() != TransitionCallbackReturn.SUCCESS:
            # Nothing would ever answer: exit like any node that cannot start on its configuration.
            self.get_logger().fatal('cannot start: configure failed (see above)')
            raise SystemExit(2)
        self.trigger_activate()

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        from edgevlm_ros.backends.base import load_svlm

        t0 = time.monotonic()
        try:
            options = self._backend_options()
            if options['backend'] == 'auto':
                from edgevlm_ros.backends.base import choose_backend

                options['backend'], why = choose_backend(self.params['model'],
                                                         options['device'])
                self.get_logger().info(f"backend auto: {options['backend']} ({why})")
            self._runtime = options['backend']
            self.svlm = load_svlm(self.params['model'], **options)
        except Exception as e:  # noqa: BLE001 - any load failure must fail the transition cleanly
            self.get_logger().error(f"cannot load edge model {self.params['model']!r}: {e}")
            return TransitionCallbackReturn.FAILURE
        self._make_store()
        self._answer_pub = self.create_lifecycle_publisher(Answer, 'edgevlm/answer', RESULTS)
        self._prompt_pub = self.create_lifecycle_publisher(Prompt, 'edgevlm/prompt', RESULTS)
        self._status = StatusReporter(self, self.counters, gauges=self._gauges)
        self.get_logger().info(
            f"loaded edge model {self.svlm.name} on {self._runtime} in "
            f"{time.monotonic() - t0:.1f} s; strategy {self.params['strategy']}")
        return TransitionCallbackReturn.SUCCESS

    def _backend_options(self) -> dict:
        """Every keyword of the backend interface (backends/base.py), from the parameters."""
        p = self.params
        return dict(backend=p['backend'], max_new_tokens=p['max_new_tokens'],
                    image_longest_edge=p['image_longest_edge'],
                    do_image_splitting=p['do_image_splitting'], num_threads=p['num_threads'],
                    focus_layers=parse_layers(p['focus.layers']), device=p['device'],
                    dtype=p['dtype'], quantize=p['quantize'],
                    providers=providers_option(p['providers']), kv_reuse=p['kv_reuse'])

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._subs = [
            self.create_subscription(Step, 'edgevlm/step', self._on_step, LATEST_FRAME,
                                     callback_group=self._io_group),
            self.create_subscription(ContextUpdate, 'edgevlm/context_update',
                                     self._on_context_update, RESULTS,
                                     callback_group=self._io_group),
            self.create_subscription(FocusMask, 'edgevlm/focus_mask', self._on_focus_mask,
                                     RESULTS, callback_group=self._io_group),
            self.create_subscription(CloudResponse, 'edgevlm/cloud_response',
                                     self._on_cloud_response, RESULTS,
                                     callback_group=self._io_group),
        ]
        self._ask_srv = self.create_service(Ask, 'edgevlm/ask', self._on_ask,
                                            callback_group=self._ask_group)
        self._running = True
        self._worker = threading.Thread(target=self._work, name='edge_svlm_worker', daemon=True)
        self._worker.start()
        self.get_logger().info('active: answering edgevlm/step on edgevlm/answer')
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_worker()
        for s in self._subs:
            self.destroy_subscription(s)
        self._subs = []
        if self._ask_srv is not None:
            self.destroy_service(self._ask_srv)
            self._ask_srv = None
        self.get_logger().info('inactive: not answering')
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_worker()
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def _release(self) -> None:
        if self._answer_pub is not None:
            self.destroy_lifecycle_publisher(self._answer_pub)
            self._answer_pub = None
        if self._prompt_pub is not None:
            self.destroy_lifecycle_publisher(self._prompt_pub)
            self._prompt_pub = None
        if self._status is not None:
            self._status.destroy()
            self._status = None
        self.svlm = None
        self.store = None

    def destroy_node(self) -> None:
        self._stop_worker()
        super().destroy_node()

    def _stop_worker(self) -> None:
        with self._lock:
            self._running = False
            self._lock.notify_all()
        if self._worker is not None and self._worker is not threading.current_thread():
            self._worker.join(timeout=30.0)
        self._worker = None

    # ------------------------------------------------------------------ parameters
    def _make_store(self) -> None:
        count = self.svlm.count_tokens if self.svlm is not None else None
        kwargs = {'count_tokens': count} if count is not None else {}
        self.store = ContextStore(max_turns=self.params['history.max_turns'],
                                  max_tokens=self.params['history.max_tokens'],
                                  evict_block=self.params['history.evict_block'], **kwargs)

    def _on_params(self, changed: dict) -> None:
        if self.svlm is None:
            return
        if changed.keys() & {'history.max_turns', 'history.max_tokens', 'history.evict_block'}:
            with self._lock:
                self._make_store()
            self.get_logger().info('history caps changed: history restarted empty')
        if 'focus.layers' in changed:
            self.svlm.focus_layers = parse_layers(changed['focus.layers'])
        if 'max_new_tokens' in changed:
            self.svlm.max_new_tokens = changed['max_new_tokens']
        if 'strategy' in changed:
            self.get_logger().info(f"strategy is now {changed['strategy']}")

    @property
    def strategy(self) -> Strategy:
        return Strategy.parse(self.params['strategy'])

    # ------------------------------------------------------------------ inputs
    def _on_step(self, msg: Step) -> None:
        self.counters.inc('steps_received')
        with self._lock:
            newest = self._newest_step
            if newest is not None and msg.step_id <= newest.step_id:
                # Step ids went back: the camera restarted; old history, masks and answers are
                # about another run.
                self.counters.inc('step_id_resets')
                self.get_logger().info(f'step ids restarted at {msg.step_id}; context cleared')
                self._make_store()
                self._cloud.clear()
                self._focus = None
                self._own.clear()
                self._consistency = CloudConsistency()
            if self._pending is not None:
                self.counters.inc('steps_skipped')  # the model was busy; the newer step wins
            self._pending = msg
            self._newest_step = msg
            self._lock.notify_all()

    def _from_before_a_restart(self, step_id: int) -> bool:
        # Cloud context is about a step the edge has received; a newer id than the newest step
        # is from before the camera restarted (caller holds the lock).
        return self._newest_step is not None and step_id > self._newest_step.step_id

    def _on_context_update(self, msg: ContextUpdate) -> None:
        self.counters.inc('context_updates_received')
        if not self.strategy.uses_replacement or self.store is None:
            return
        with self._lock:
            if self._from_before_a_restart(msg.step_id):
                self.counters.inc('context_updates_from_before_restart')
                return
            applied = self.store.apply_cloud(msg.step_id, msg.question, msg.text)
        if applied:
            self.counters.inc('context_replacements')
        else:
            self.counters.inc('context_updates_dropped')
            self.get_logger().info(
                f'cloud answer for step {msg.step_id} arrived after its history slot was '
                'evicted; dropped', throttle_duration_sec=10.0)

    def _on_focus_mask(self, msg: FocusMask) -> None:
        self.counters.inc('focus_masks_received')
        with self._lock:
            if self._from_before_a_restart(msg.source_step_id):
                # It would outrank every mask of the new run and steer nothing.
                self.counters.inc('focus_masks_from_before_restart')
                return
            old = self._focus
            if old is None or (msg.source_step_id, msg.target_step_id) >= (
                    old.source_step_id, old.target_step_id):
                self._focus = msg

    def _on_cloud_response(self, msg: CloudResponse) -> None:
        with self._lock:
            if msg.status != CloudResponse.STATUS_DROPPED:
                # Failures count too: a slow, failing cloud must stop looking like a fit.
                rtt = msg.round_trip_ms / 1000.0
                self._rtt_ewma_s = rtt if self._rtt_ewma_s is None else (
                    0.8 * self._rtt_ewma_s + 0.2 * rtt)
            self._cloud[msg.step_id] = msg
            if msg.status == CloudResponse.STATUS_OK:
                self._consistency.add(stamp_to_s(msg.header.stamp), msg.question, msg.answer)
            while len(self._cloud) > MAX_CLOUD_RESPONSES:
                self._cloud.popitem(last=False)
            self._lock.notify_all()
        if self.strategy == Strategy.CLOUD_ONLY and msg.status == CloudResponse.STATUS_OK:
            self._publish(msg.header, msg.step_id, msg.question, msg.answer,
                          Answer.SOURCE_CLOUD, model_ms=0.0)

    # ------------------------------------------------------------------ answering
    def _work(self) -> None:
        while True:
            with self._lock:
                while self._running and self._pending is None:
                    self._lock.wait()
                if not self._running:
                    return
                step, self._pending = self._pending, None
            try:
                self._answer_step(step)
            except Exception as e:  # noqa: BLE001 - one bad step must not stop the node
                if not self.context.ok():
                    return  # shutting down (Ctrl-C): the answer has nowhere to go
                self.counters.inc('answer_errors')
                self.get_logger().error(f'step {step.step_id}: {e}', throttle_duration_sec=5.0)

    def _answer_step(self, step: Step) -> None:
        strategy = self.strategy
        if strategy == Strategy.CLOUD_ONLY:
            return  # answers come with the cloud responses
        if strategy == Strategy.CLOUD_STALE:
            newest = self._newest_ok_cloud()
            if newest is not None:
                self._publish(step.header, step.step_id, step.question, newest.answer,
                              Answer.SOURCE_CLOUD, model_ms=0.0,
                              newest_cloud_step=newest.step_id)
                return
            # Nothing from the cloud yet: the edge answers rather than leave the robot without one.
        if strategy == Strategy.OFFLOAD and self._offload(step):
            return
        self._answer_with_edge(step, strategy)

    def _newest_ok_cloud(self) -> CloudResponse | None:
        """The ok cloud answer that arrived last."""
        with self._lock:
            return next((c for c in reversed(self._cloud.values())
                         if c.status == CloudResponse.STATUS_OK), None)

    def _arbitrate(self, step: Step, edge_answer: str):
        """edgevlm_arbitrated: the SVLM's answer or the newest cloud answer (core.arbitration)."""
        with self._lock:  # one snapshot of the cloud state (the lock is re-entrant)
            cloud = self._newest_ok_cloud()
            own = None if cloud is None else self._own.answer_at(cloud.step_id, step.question)
            self._own.record(step.step_id, step.question, edge_answer)
            disagreement = self._consistency.estimate
        view = None if cloud is None else CloudView(
            cloud.step_id, stamp_to_s(cloud.header.stamp), cloud.question, cloud.answer)
        params = ArbitrationParams(
            max_age_s=self.params['arbitration.max_age_s'],
            max_self_disagreement=self.params['arbitration.max_self_disagreement'])
        decision = arbitrate(step.question, stamp_to_s(step.header.stamp), edge_answer, view,
                             own, params, disagreement)
        self.counters.inc(f'arbitration_{decision.source}')
        self.get_logger().debug(f'step {step.step_id}: {decision.source}: {decision.reason}')
        return decision

    def _offload(self, step: Step) -> bool:
        """Wait for the cloud's answer to this step when its predicted round trip fits."""
        deadline = self.params['offload.deadline_s']
        with self._lock:
            if self._rtt_ewma_s is None or self._rtt_ewma_s > deadline:
                return False
            end = stamp_to_s(step.header.stamp) + deadline
            while self._running and step.step_id not in self._cloud:
                remaining = end - self.get_clock().now().nanoseconds * 1e-9
                if remaining <= 0:
                    break
                # Capped: in a sped-up replay (use_sim_time) ROS seconds pass faster than wall
                # seconds, so the deadline is checked again on the ROS clock.
                self._lock.wait(timeout=min(remaining, OFFLOAD_POLL_S))
            got = self._cloud.get(step.step_id)
        if got is None or got.status != CloudResponse.STATUS_OK:
            self.counters.inc('offload_fallbacks')  # not sent, failed, or later than the deadline
            return False
        self._publish(step.header, step.step_id, step.question, got.answer, Answer.SOURCE_CLOUD,
                      model_ms=0.0, newest_cloud_step=got.step_id)
        return True

    def _skips_focus(self, question: str) -> bool:
        pattern = self.params['focus.skip_questions']
        return bool(pattern) and re.search(pattern, question, re.IGNORECASE) is not None

    def _fresh_focus(self, step: Step) -> tuple[list[Box], FocusMask | None, float]:
        with self._lock:
            mask = self._focus
        if mask is None or mask.source_step_id > step.step_id:
            return [], None, 0.0
        source_stamp = stamp_to_s(mask.header.stamp) - mask.age_s
        age = stamp_to_s(step.header.stamp) - source_stamp
        if age > self.params['focus.max_age_s']:
            self.counters.inc('focus_masks_too_old')
            return [], None, age
        return [region_to_box(r) for r in mask.regions], mask, age

    def _answer_with_edge(self, step: Step, strategy: Strategy) -> None:
        try:
            rgb = image_to_rgb(step.image)
        except ImageDecodeError as e:
            self.counters.inc('bad_image')
            self.get_logger().warning(f'step {step.step_id}: {e}', throttle_duration_sec=5.0)
            return
        with self._lock:
            store = self.store
            history = store.history() if store is not None else []
        boxes, mask, age = ([], None, 0.0)
        if strategy.uses_focus:
            if self._skips_focus(step.question):
                self.counters.inc('focus_skipped_questions')
            else:
                boxes, mask, age = self._fresh_focus(step)
        mode = self.params['focus.mode']
        if mode == 'auto':
            mode = 'attention' if self.svlm.focus_supported else 'crop'
        shown, viewed = rgb, False
        if boxes and mode in ('crop', 'overlay'):
            shown, crop = focus_view(rgb, boxes, mode, **(
                {'margin': self.params['focus.crop_margin']} if mode == 'crop' else {}))
            viewed = crop.zoomed or mode == 'overlay'  # a crop of the whole frame changes nothing
            boxes = []
        result = self.svlm.answer(shown, step.question,
                                  [(t.question, t.answer) for t in history],
                                  focus=boxes, focus_alpha=self.params['focus.alpha'],
                                  history_sources=[t.from_cloud for t in history])
        focus_mode = mode if viewed else ('attention' if result.focus_applied else 'none')
        with self._lock:
            # Only into the history it was asked with: after a restart (or new caps) this
            # step's id would sit in the new history as its newest turn.
            if store is not None and self.store is store:
                store.record_edge(step.step_id, step.question, result.text)
        replaced = [t for t in history if t.from_cloud]
        newest_cloud = max((t.step_id for t in replaced), default=-1)
        text, source, reason = result.text, Answer.SOURCE_EDGE, ''
        if strategy == Strategy.EDGEVLM_ARBITRATED:
            decision = self._arbitrate(step, result.text)
            reason = decision.reason
            if decision.source == 'cloud':
                text, source, newest_cloud = decision.answer, Answer.SOURCE_CLOUD, \
                    decision.cloud_step
        self._publish_prompt(step, result, focus_mode)
        self._publish(step.header, step.step_id, step.question, text, source,
                      model_ms=result.model_ms, history_turns=len(history),
                      replaced_turns=len(replaced), newest_cloud_step=newest_cloud,
                      focus=(mask, age) if focus_mode != 'none' else None,
                      stages=getattr(result, 'stages', None), reason=reason)

    def _publish_prompt(self, step: Step, result, focus_mode: str) -> None:
        self.get_logger().debug(f'step {step.step_id} prompt:\n{result.prompt}')
        if self.params['debug.publish_prompt'] and self._prompt_pub is not None:
            self._prompt_pub.publish(Prompt(
                header=step.header, step_id=step.step_id, prompt=result.prompt,
                prompt_tokens=result.prompt_tokens, focused_tokens=result.focused_tokens,
                focus_mode=focus_mode))

    def _publish(self, header, step_id: int, question: str, text: str, source: int, *,
                 model_ms: float, history_turns: int = 0, replaced_turns: int = 0,
                 newest_cloud_step: int = -1, focus: tuple[FocusMask, float] | None = None,
                 stages: dict[str, float] | None = None, reason: str = '') -> Answer:
        now = self.get_clock().now().nanoseconds * 1e-9
        msg = Answer(header=header, step_id=step_id, question=question, answer=text,
                     strategy=self.params['strategy'], source=source, reason=reason,
                     latency_ms=float((now - stamp_to_s(header.stamp)) * 1000.0),
                     model_ms=float(model_ms), history_turns=history_turns,
                     replaced_turns=replaced_turns, newest_cloud_step=newest_cloud_step)
        if focus is not None:
            mask, age = focus
            msg.focus_applied = True
            msg.focus_source_step = mask.source_step_id
            msg.focus_age_s = float(age)
            self.counters.inc('answers_with_focus')
        if replaced_turns:
            self.counters.inc('answers_with_replaced_history')
        if self._answer_pub is not None:
            self._answer_pub.publish(msg)
        self.counters.inc('answers_published')
        self.latency.add(msg.latency_ms)
        if model_ms > 0:  # the SVLM ran (its answer may have been arbitrated away)
            self.model_time.add(model_ms)
            for stage, ms in (stages or {}).items():
                if stage in self.stage_time:
                    self.stage_time[stage].add(ms)
        if self.counters.get('answers_published') == 1:
            self.get_logger().info(f'first answer: step {step_id} in {msg.latency_ms:.0f} ms')
        return msg

    def _gauges(self) -> dict[str, object]:
        lat = self.latency.summary()
        gauges = {'latency_p50_ms': f"{lat['p50']:.1f}", 'latency_p95_ms': f"{lat['p95']:.1f}",
                  'model_p50_ms': f'{self.model_time.percentile(50):.1f}',
                  'history_turns': len(self.store) if self.store is not None else 0,
                  'strategy': self.params['strategy'], 'backend': self._runtime,
                  'parameter_rejections': self.params.rejected}
        for stage, window in self.stage_time.items():
            if window.count:
                gauges[f'{stage}_p50_ms'] = f'{window.percentile(50):.1f}'
        # The history KV cache: how much of each prompt the previous step's keys/values served.
        stats = getattr(self.svlm, 'cache_stats', None)
        if stats is not None:
            gauges.update({'history_cache_calls': stats.calls,
                           'history_cache_hits': stats.hits,
                           'history_cache_token_hit_rate': f'{stats.token_hit_rate:.3f}'})
        return gauges

    # ------------------------------------------------------------------ one-off questions
    def _on_ask(self, request: Ask.Request, response: Ask.Response) -> Ask.Response:
        if not request.question.strip():
            response.success, response.message = False, 'question is empty'
            self.counters.inc('ask_rejected')
            return response
        if self.svlm is None:
            response.success, response.message = False, 'edge model is not loaded'
            return response
        if request.image.width == 0:
            with self._lock:
                step = self._newest_step
            if step is None:
                response.success, response.message = False, 'no frame received yet'
                return response
            header, image = step.header, step.image
        else:
            header, image = request.image.header, request.image
        try:
            rgb = image_to_rgb(image)
        except ImageDecodeError as e:
            self.counters.inc('ask_rejected')
            response.success, response.message = False, str(e)
            return response
        svlm = self.svlm
        if svlm is None:
            response.success, response.message = False, 'edge model is not loaded'
            return response
        t0 = self.get_clock().now().nanoseconds * 1e-9
        try:
            result = svlm.answer(rgb, request.question.strip())
        except Exception as e:  # noqa: BLE001 - a bad request must not take the node down
            self.counters.inc('ask_rejected')
            response.success, response.message = False, f'edge model failed: {e}'
            return response
        response.answer = Answer(
            header=header, question=request.question.strip(), answer=result.text,
            strategy='ask', source=Answer.SOURCE_EDGE, model_ms=float(result.model_ms),
            latency_ms=float((self.get_clock().now().nanoseconds * 1e-9 - t0) * 1000.0),
            newest_cloud_step=-1)
        response.success, response.message = True, ''
        self.counters.inc('ask_answered')
        return response


def main(args=None) -> int:
    # Single-threaded: the model runs in the node's own worker thread, and rclpy's
    # MultiThreadedExecutor busy-polls its futures (py-spy: ~60 % of the process), starving that
    # worker of the GIL so that depth-1 Steps were overwritten (up to half lost in replays).
    return run_node(EdgeSvlmNode, 'edge_svlm', args)
