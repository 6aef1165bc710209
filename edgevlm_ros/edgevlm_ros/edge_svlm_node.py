# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
edge_svlm_node: answers every Step it can take with the edge SVLM.

Why one module of 420 lines: 70 of them are the parameter table and its descriptions; the class
is the lifecycle (each transition also sets the heartbeat's state), message conversion and
publishing, with no step rules (core.edge_step, core.edge_runner).

Always the newest Step: a Step that arrives while another one waits is replaced and counted as
skipped, never queued. How a step is answered (strategy, history with Context Replacement,
Visual Focus, offload's wait, edgevlm_arbitrated's choice and its reason) is core.edge_step, the
same code the evaluation replays; this node carries messages to it and its answers out.

edgevlm_carried also publishes, latched and on change, how long a standing cloud answer to the
current question holds in this scene (edgevlm/cloud_hold, core.validity): the bridge's send
policy uses it with scene_change gating.

The model is loaded once, in the lifecycle configure transition (autostart does configure +
activate), and runs only on the model worker thread (core.model_worker): steps through its
newest-step slot, one-off Asks as requests with a future (`ask.policy` says which goes first).
The edgevlm/ask action and service (ros.ask_server) wait for that future on their own executor
threads, so the node's executor (subscriptions, parameters, diagnostics) never waits for the
model. A single-threaded executor on purpose: rclpy's
MultiThreadedExecutor busy-polls its futures (py-spy: ~60 % of the process), starving the model
thread of the GIL (docs/design-decisions.md).
"""

import time

from edgevlm_msgs.msg import (
    Answer,
    CloudHold,
    CloudResponse,
    ContextUpdate,
    FocusMask,
    Prompt,
    Step,
)
from rclpy.lifecycle import LifecycleState, Node, TransitionCallbackReturn

from edgevlm_ros.backends.base import (
    BACKENDS,
    DTYPES,
    QUANTIZATIONS,
    STAGES,
    check_device,
    check_layers,
    check_providers,
    parse_layers,
    providers_option,
)
from edgevlm_ros.core import ask
from edgevlm_ros.core import edge_step as es
from edgevlm_ros.core.arbitration import ArbitrationParams
from edgevlm_ros.core.carry import CarryParams
from edgevlm_ros.core.edge_runner import EdgeRunner
from edgevlm_ros.core.edge_step import DEFAULT_SKIP_FOCUS, FOCUS_MODES
from edgevlm_ros.core.images import ImageDecodeError
from edgevlm_ros.core.model_worker import MAX_REQUESTS, POLICIES, ModelWorker
from edgevlm_ros.core.stats import Counters, StepTimes
from edgevlm_ros.core.strategy import Strategy
from edgevlm_ros.ros.ask_server import AskJob, AskServer, AskSettings, NotActive
from edgevlm_ros.ros.conversions import answer_to_msg, image_to_rgb, region_to_box, stamp_to_s
from edgevlm_ros.ros.diagnostics import ACTIVE, DEGRADED, LOADING, STARTING, StatusReporter
from edgevlm_ros.ros.entry import run_node, shutdown_in_stages
from edgevlm_ros.ros.params import ParamSet, ParamSpec
from edgevlm_ros.ros.qos import LATCHED, LATEST_FRAME, RESULTS

# A goal's largest max_new_tokens (and the max_new_tokens parameter's).
MAX_NEW_TOKENS = 512


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
    ParamSpec('quantize', 'none', 'none, int8 or int4. int8: transformers dynamic int8 Linear '
              'layers; onnxruntime the int8 graphs; openvino a static int8 vision encoder '
              '(calibrated once, on the first load) and the int8 decoder. int4 (onnxruntime, '
              'openvino): int8 with a 4-bit decoder on ONNX Runtime (0.57x its weights; faster '
              'token steps, slower prefill)', choices=QUANTIZATIONS, read_only=True),
    ParamSpec('providers', 'auto', 'ONNX Runtime execution providers in order of preference, '
              'comma-separated (e.g. "CUDAExecutionProvider,CPUExecutionProvider"); auto = the '
              "runtime's default for the device; ignored by the transformers backend",
              check=check_providers, read_only=True),
    ParamSpec('kv_reuse', True, 'keep the KV cache of the unchanged prompt prefix (the history) '
              'between steps, so a step pays only for what changed', read_only=True),
    ParamSpec('strategy', Strategy.EDGEVLM.value, 'how answers are produced',
              choices=tuple(s.value for s in Strategy)),
    ParamSpec('max_new_tokens', 24, 'answer length cap, tokens', min=1, max=MAX_NEW_TOKENS),
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
              check=check_layers),
    ParamSpec('focus.mode', 'auto', 'how Visual Focus steers the SVLM: attention (logit bias '
              'on focused image tokens), crop (the SVLM sees the focus region zoomed in, with '
              'context), overlay (boxes outlined, the rest dimmed), auto (attention when the '
              'model allows it, else crop)', choices=FOCUS_MODES),
    ParamSpec('focus.crop_margin', 0.25, 'crop/auto mode: context kept around the focus boxes, '
              'as a fraction of their size', min=0.0, max=4.0),
    ParamSpec('focus.skip_questions', DEFAULT_SKIP_FOCUS, 'Visual Focus: questions matching '
              'this regular expression (case-insensitive, searched; empty = none) are answered '
              'without it. Default: counting questions, because focusing the counted objects '
              'makes the micro SVLM miscount (docs/evaluation.md)', check=es.check_skip_pattern),
    ParamSpec('focus.max_age_s', 5.0, 'masks whose source frame is older are not applied, s',
              min=0.0, max=600.0),
    ParamSpec('arbitration.max_age_s', ArbitrationParams.max_age_s, 'edgevlm_arbitrated: a cloud '
              'answer about a frame older than this (camera time) never stands for a step, s',
              min=0.0, max=600.0),
    ParamSpec('arbitration.max_self_disagreement', ArbitrationParams.max_self_disagreement,
              'edgevlm_arbitrated: the cloud is not trusted while it contradicts itself on more '
              'than this share of consecutive answers to one question (1 = always trusted)',
              min=0.0, max=1.0),
    ParamSpec('carry.max_carry_s', CarryParams.max_carry_s, 'edgevlm_carried: a cloud answer '
              'about a frame older than this (camera time) is never weighed, s', min=0.0,
              max=600.0),
    ParamSpec('carry.min_track_quality', CarryParams.min_track_quality, 'edgevlm_carried: a '
              'cloud answer is carried only while its tracked boxes are at least this good '
              '(FocusMask.quality)', min=0.0, max=1.0),
    ParamSpec('offload.deadline_s', 1.0, 'offload strategy: wait for the cloud up to this long '
              'when its predicted round trip fits, s', min=0.0, max=60.0),
    ParamSpec('debug.publish_prompt', False, 'publish what the SVLM received for every step '
              '(rendered chat template, token counts) on edgevlm/prompt'),
    ParamSpec('ask.max_queue', MAX_REQUESTS, 'one-off asks (edgevlm/ask) waiting for the model '
              'at once; one more is rejected at once (QUEUE_FULL)', min=1, max=32,
              read_only=True),
    ParamSpec('ask.policy', 'alternate', 'an ask and a waiting step: alternate (one ask, then '
              'the newest step, then the next ask) or asks_first (every waiting ask before the '
              'step stream goes on)', choices=POLICIES),
    ParamSpec('ask.deadline_s', 60.0, "an ask's deadline when its goal sets none (deadline_s "
              '0), s', min=0.1, max=ask.MAX_DEADLINE_S),
    ParamSpec('ask.feedback_tokens', ask.FEEDBACK_TOKENS, 'ask feedback at most every this '
              'many tokens (or ask.feedback_ms)', min=1, max=MAX_NEW_TOKENS),
    ParamSpec('ask.feedback_ms', ask.FEEDBACK_S * 1000.0, 'ask feedback at most every this '
              'long (or ask.feedback_tokens), ms', min=0.0, max=10000.0),
    ParamSpec('autostart', True, 'configure and activate on start-up, as a lifecycle manager '
              'would', read_only=True),
]


class EdgeSvlmNode(Node):
    """Answers every Step it can take with the edge SVLM, using cloud context when it is fresh."""

    def __init__(self, **kwargs) -> None:
        super().__init__('edge_svlm', **kwargs)
        # Set first: destroy_node runs (at context shutdown) even when a bad parameter makes
        # __init__ fail.
        self.worker: ModelWorker | None = None
        self._asks: AskServer | None = None
        self._status: StatusReporter | None = None
        self.counters = Counters()
        self.runner = EdgeRunner(es.EdgeConfig(), self.counters)
        self.params = ParamSet(self, PARAMS, on_change=self._on_params)
        self.runner.reconfigure(self._edge_config(), history_caps_changed=False)
        self.times = StepTimes(STAGES)
        self._runtime = self.params['backend']  # what 'auto' became, once loaded
        self.svlm = None
        self._newest_step: Step | None = None
        self._subs = []
        self._answer_pub = None
        self._prompt_pub = None
        self._hold_pub = None
        self._hold_sent: tuple[str, str, float] | None = None
        # The heartbeat from construction on: it goes on through the model load (state
        # 'loading'), which blocks this node's executor for as long as the load takes.
        self._status = StatusReporter(self, self.counters, gauges=self._gauges)
        # From construction on: a goal sent while the model is not active is told so.
        self._asks = AskServer(self, self.counters, run_edge=self._run_ask,
                               newest_step=lambda: self._newest_step,
                               settings=self._ask_settings,
                               max_queue=self.params['ask.max_queue'])
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
        from edgevlm_ros.backends import base, registry

        t0 = time.monotonic()
        self._status.set_state(LOADING, f"loading {self.params['model']}")
        try:
            options = self._backend_options()
            if options['backend'] == 'auto':
                options['backend'], why = base.choose_backend(self.params['model'],
                                                              options['device'])
                self.get_logger().info(f"backend auto: {options['backend']} ({why})")
            self._runtime = options['backend']
            self.svlm = registry.load_svlm(self.params['model'], **options)
        except Exception as e:  # noqa: BLE001 - any load failure must fail the transition cleanly
            self.get_logger().error(f"cannot load edge model {self.params['model']!r}: {e}")
            self._status.set_state(STARTING, 'unconfigured: the model load failed')
            return TransitionCallbackReturn.FAILURE
        self.runner.configure(self.svlm.count_tokens)
        try:
            warm_s = self.runner.warm_up(self.svlm, self.params['image_longest_edge'])
        except Exception as e:  # noqa: BLE001 - a model that cannot answer must fail the load
            self.get_logger().error(f"edge model {self.params['model']!r} loaded but cannot "
                                    f'answer: {e}')
            self.svlm = None
            self._status.set_state(STARTING, 'unconfigured: the model cannot answer')
            return TransitionCallbackReturn.FAILURE
        self.svlm.cache_stats = type(self.svlm.cache_stats)()  # count the steps only
        self._answer_pub = self.create_lifecycle_publisher(Answer, 'edgevlm/answer', RESULTS)
        self._prompt_pub = self.create_lifecycle_publisher(Prompt, 'edgevlm/prompt', RESULTS)
        self._hold_pub = self.create_lifecycle_publisher(CloudHold, 'edgevlm/cloud_hold',
                                                         LATCHED)
        self._hold_sent = None
        self._status.set_state(STARTING, 'inactive')
        self.get_logger().info(
            f"loaded edge model {self.svlm.name} on {self._runtime} in "
            f"{time.monotonic() - t0:.1f} s ({warm_s:.1f} s of it a first answer with a full "
            f"history); strategy {self.params['strategy']}")
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

    def _edge_config(self) -> es.EdgeConfig:
        p = self.params
        return es.EdgeConfig(
            strategy=Strategy.parse(p['strategy']), history_turns=p['history.max_turns'],
            history_tokens=p['history.max_tokens'],
            history_evict_block=p['history.evict_block'], focus_alpha=p['focus.alpha'],
            focus_mode=p['focus.mode'], focus_crop_margin=p['focus.crop_margin'],
            focus_skip_questions=p['focus.skip_questions'],
            focus_max_age_s=p['focus.max_age_s'], offload_deadline_s=p['offload.deadline_s'],
            arbitration=ArbitrationParams(
                max_age_s=p['arbitration.max_age_s'],
                max_self_disagreement=p['arbitration.max_self_disagreement']),
            carry=CarryParams(max_carry_s=p['carry.max_carry_s'],
                              min_track_quality=p['carry.min_track_quality']))

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._subs = [
            self.create_subscription(Step, 'edgevlm/step', self._on_step, LATEST_FRAME),
            self.create_subscription(ContextUpdate, 'edgevlm/context_update',
                                     self._on_context_update, RESULTS),
            self.create_subscription(FocusMask, 'edgevlm/focus_mask', self._on_focus_mask,
                                     RESULTS),
            self.create_subscription(CloudResponse, 'edgevlm/cloud_response',
                                     self._on_cloud_response, RESULTS),
        ]
        # The asks the action lets in (ask.max_queue waiting and the one being answered) may
        # all sit in the worker's queue for a moment, before it takes the first one out.
        self.worker = ModelWorker(self._answer_step, self._step_failed,
                                  max_requests=self.params['ask.max_queue'] + 1,
                                  policy=self.params['ask.policy'], name='edge_svlm_model')
        self.worker.start()
        self.get_logger().info('active: answering edgevlm/step on edgevlm/answer')
        self._status.set_state(ACTIVE)
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_worker()
        for s in self._subs:
            self.destroy_subscription(s)
        self._subs = []
        self.get_logger().info('inactive: not answering')
        self._status.set_state(STARTING, 'inactive')
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        self._status.set_state(STARTING, 'unconfigured')
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
        if self._hold_pub is not None:
            self.destroy_lifecycle_publisher(self._hold_pub)
            self._hold_pub = None
        self.svlm = None
        self.runner.release()

    def destroy_node(self) -> None:
        shutdown_in_stages(self.get_logger(), [
            ('model worker', self._stop_worker), ('asks', self._close_asks),
            ('heartbeat', self._stop_heartbeat), ('node', self._destroy_lifecycle_node)])

    def _close_asks(self) -> None:
        if self._asks is not None:
            self._asks.close()
            self._asks = None

    def _stop_heartbeat(self) -> None:
        if self._status is not None:
            self._status.destroy()

    def _destroy_lifecycle_node(self) -> None:
        super().destroy_node()
        # rclpy's lifecycle node leaves its state machine (and the DDS readers of its lifecycle
        # services) to the garbage collector. Collected after its context has shut down, that
        # hung a test process in Fast DDS for good: destroy it now, while the context lives.
        state_machine = getattr(self, '_state_machine', None)
        if state_machine is not None:
            state_machine.destroy_when_not_in_use()

    def _stop_worker(self) -> None:
        self.runner.stop_waiting()
        if self._asks is not None:
            self._asks.stop_all()  # a long answer stops at its next token, not at its end
        if self.worker is not None:
            self.worker.stop()
            self.worker = None

    # ------------------------------------------------------------------ parameters
    def _on_params(self, changed: dict) -> None:
        if self.runner.reconfigure(self._edge_config(), bool(changed.keys() & {
                'history.max_turns', 'history.max_tokens', 'history.evict_block'})):
            self.get_logger().info('history caps changed: history restarted empty')
        if self.svlm is not None and 'focus.layers' in changed:
            self.svlm.focus_layers = parse_layers(changed['focus.layers'])
        if self.svlm is not None and 'max_new_tokens' in changed:
            self.svlm.max_new_tokens = changed['max_new_tokens']
        if self.worker is not None and 'ask.policy' in changed:
            self.worker.policy = changed['ask.policy']
        if 'strategy' in changed:
            self.get_logger().info(f"strategy is now {changed['strategy']}")

    # ------------------------------------------------------------------ inputs
    def _on_step(self, msg: Step) -> None:
        self.counters.inc('steps_received')
        if self.runner.on_step(msg.step_id):
            # Old history, masks and answers are about another run.
            self.get_logger().info(f'step ids restarted at {msg.step_id}; context cleared')
        self._newest_step = msg
        if self.worker is not None and self.worker.offer(msg):
            self.counters.inc('steps_skipped')  # the model was busy; the newer step wins

    def _on_context_update(self, msg: ContextUpdate) -> None:
        if self.runner.on_context(msg.step_id, msg.question, msg.text) == 'dropped':
            self.get_logger().info(
                f'cloud answer for step {msg.step_id} arrived after its history slot was '
                'evicted; dropped', throttle_duration_sec=10.0)

    def _on_focus_mask(self, msg: FocusMask) -> None:
        self.runner.on_mask(es.MaskNote(msg.source_step_id, msg.target_step_id,
                                        tuple(region_to_box(r) for r in msg.regions),
                                        stamp_to_s(msg.header.stamp) - msg.age_s,
                                        quality=msg.quality))

    def _on_cloud_response(self, msg: CloudResponse) -> None:
        arrival = self.runner.on_cloud(es.CloudNote(
            msg.step_id, stamp_to_s(msg.header.stamp), msg.question, msg.answer,
            msg.status == CloudResponse.STATUS_OK,
            None if msg.status == CloudResponse.STATUS_DROPPED else msg.round_trip_ms / 1e3,
            len(msg.regions)))
        if arrival is not None:  # cloud_only
            self._publish(msg.header, msg.step_id, msg.question, arrival, model_ms=0.0)

    # ------------------------------------------------------------------ answering (model thread)
    def _step_failed(self, step: Step, error: Exception) -> None:
        if not self.context.ok():
            return  # shutting down (Ctrl-C): the answer has nowhere to go
        self.counters.inc('answer_errors')
        self._status.set_state(DEGRADED, f'step {step.step_id} failed: {error}')
        self.get_logger().error(f'step {step.step_id}: {error}', throttle_duration_sec=5.0)

    def _answer_step(self, step: Step) -> None:
        svlm = self.svlm
        if svlm is None:
            return
        view = es.StepView(step.step_id, stamp_to_s(step.header.stamp), step.question)
        try:
            done = self.runner.answer(view, lambda: image_to_rgb(step.image), svlm,
                                      lambda: self.get_clock().now().nanoseconds * 1e-9)
        except ImageDecodeError as e:
            self.counters.inc('bad_image')
            self.get_logger().warning(f'step {step.step_id}: {e}', throttle_duration_sec=5.0)
            return
        self._status.set_state(ACTIVE)  # a step went through: no longer degraded
        if done is None:
            return
        result = done.result
        if result is not None:
            self.get_logger().debug(f'step {step.step_id}: {done.answer.arbitration or "edge"}'
                                    f' {done.answer.reason}; prompt:\n{result.prompt}')
            if self.params['debug.publish_prompt'] and self._prompt_pub is not None:
                self._prompt_pub.publish(Prompt(
                    header=step.header, step_id=step.step_id, prompt=result.prompt,
                    prompt_tokens=result.prompt_tokens, focused_tokens=result.focused_tokens,
                    focus_mode=done.answer.focus_mode))
        self._publish(step.header, step.step_id, step.question, done.answer,
                      model_ms=result.model_ms if result is not None else 0.0,
                      stages=getattr(result, 'stages', None))
        self._publish_hold(step)

    def _publish_hold(self, step: Step) -> None:
        """edgevlm_carried: how long a cloud answer to the step's question holds, on change."""
        if self._hold_pub is None:
            return
        hold = self.runner.hold(step.question)
        if hold is None:  # another strategy: withdraw a latched estimate (0 = no sooner send)
            if self._hold_sent is not None:
                self._hold_pub.publish(CloudHold(header=step.header,
                                                 question=self._hold_sent[0],
                                                 kind=self._hold_sent[1], hold_s=0.0))
                self._hold_sent = None
            return
        kind, hold_s, duels = hold
        key = (step.question.strip(), kind, hold_s)
        if key == self._hold_sent:
            return
        self._hold_sent = key
        self._hold_pub.publish(CloudHold(header=step.header, question=key[0], kind=kind,
                                         hold_s=float(hold_s), duels=float(duels)))

    def _publish(self, header, step_id: int, question: str, answer: es.StepAnswer, *,
                 model_ms: float, stages: dict[str, float] | None = None) -> Answer:
        latency_ms = (self.get_clock().now().nanoseconds * 1e-9 - stamp_to_s(header.stamp)) * 1e3
        msg = answer_to_msg(header, step_id, question, answer, self.params['strategy'],
                            latency_ms, model_ms)
        if self._answer_pub is not None:
            self._answer_pub.publish(msg)
        for counted, name in ((True, 'answers_published'),
                              (answer.focus_applied, 'answers_with_focus'),
                              (answer.replaced_turns > 0, 'answers_with_replaced_history')):
            if counted:
                self.counters.inc(name)
        self.times.add(latency_ms, model_ms, stages)
        if self.counters.get('answers_published') == 1:
            self.get_logger().info(f'first answer: step {step_id} in {latency_ms:.0f} ms')
        return msg

    def _gauges(self) -> dict[str, object]:
        gauges = {**self.times.gauges(), 'history_turns': self.runner.history_turns,
                  'strategy': self.params['strategy'], 'backend': self._runtime,
                  'parameter_rejections': self.params.rejected, **self.runner.validity()}
        # The history KV cache: how much of each prompt the previous step's keys/values served.
        stats = getattr(self.svlm, 'cache_stats', None)
        if stats is not None:
            gauges.update({'history_cache_calls': stats.calls,
                           'history_cache_hits': stats.hits,
                           'history_cache_token_hit_rate': f'{stats.token_hit_rate:.3f}'})
        return gauges

    # ------------------------------------------------------------------ one-off questions
    def _ask_settings(self) -> AskSettings:
        p = self.params
        return AskSettings(max_queue=p['ask.max_queue'], deadline_s=p['ask.deadline_s'],
                           feedback_tokens=p['ask.feedback_tokens'],
                           feedback_ms=p['ask.feedback_ms'],
                           max_new_tokens=p['max_new_tokens'], max_tokens_bound=MAX_NEW_TOKENS)

    def _run_ask(self, job: AskJob, stream: ask.TokenStream):
        """Queue an ask on the model worker (raises WorkerBusy past ask.max_queue)."""
        svlm, worker, step = self.svlm, self.worker, self._newest_step
        if svlm is None or worker is None:
            raise NotActive(f'the edge node is {self._status.state}, not active: no model '
                            'answers')
        view = es.StepView(job.step_id, stamp_to_s(job.header.stamp), job.question)

        def run():
            if stream.stopped_by:  # cancelled or past its deadline while it waited
                return None
            result = None
            try:
                result = self.runner.ask(view, job.rgb, svlm, use_context=job.use_context,
                                         steps_question=step.question if step else '',
                                         max_new_tokens=job.max_new_tokens or None,
                                         on_token=stream.on_token)
                return result
            finally:  # the whole text goes out as the last feedback
                stream.finish(*((result.result.text, result.result.completion_tokens)
                                if result else ()))

        return worker.submit(run)


def main(args=None) -> int:
    return run_node(EdgeSvlmNode, 'edge_svlm', args)
