# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""edge_svlm_node alone: the lifecycle, the Ask service, newest-step-wins, parameter checks."""

import time

from diagnostic_msgs.msg import DiagnosticArray
from edgevlm_msgs.msg import Answer, ContextUpdate, FocusMask, Prompt, Region, Step
from edgevlm_msgs.srv import Ask
from edgevlm_ros.client import STATE_RETRY_S
from edgevlm_ros.ros.conversions import rgb_to_image
from edgevlm_ros.ros.qos import RESULTS, STEP_PUBLISHER
from edgevlm_ros.ros.resend import ResendingCall
from lifecycle_msgs.msg import State, Transition
from lifecycle_msgs.srv import ChangeState, GetState
import numpy as np
import pytest
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters

pytestmark = pytest.mark.ros


def _call(probe, srv_type, name, request, timeout_s=60.0, resend_s=None):
    """Call a service; an idempotent request (resend_s set) goes again while unanswered.

    A service can look ready before it has matched the client's response reader: its first
    answer is then lost (ResendingCall, as the client's wait_until_active).
    """
    client = probe.node.create_client(srv_type, name)
    assert probe.until(client.service_is_ready, 30), f'no service {name}'
    call = ResendingCall(client, request, resend_s or timeout_s, backoff=1.0)
    if not probe.until(call.done, timeout_s):
        call.cancel()
        pytest.fail(f'{name} did not answer')
    return call.result()


def _wait_active(probe, timeout_s: float = 60.0) -> None:
    """Poll the lifecycle state until active: the ask service answers from construction on."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        state = _call(probe, GetState, '/edge_svlm/get_state', GetState.Request(),
                      resend_s=STATE_RETRY_S)
        if state.current_state.id == State.PRIMARY_STATE_ACTIVE:
            return
        probe.until(lambda: False, 0.1)
    raise AssertionError('edge_svlm did not become active')


def _step(probe, step_id: int, question: str = 'What is in front of the robot?') -> Step:
    rgb = np.random.default_rng(step_id).integers(0, 255, (96, 128, 3), dtype=np.uint8)
    msg = Step(step_id=step_id, question=question)
    msg.header.stamp = probe.node.get_clock().now().to_msg()
    msg.header.frame_id = 'camera'
    msg.image = rgb_to_image(rgb, msg.header)
    return msg


def _feed_until_answered(probe, pub, answers, first_id: int, timeout_s: float = 60.0) -> int:
    """Publish steps, as a camera would, until one is answered; return the next unused step id.

    A best-effort subscriber that has only just matched may miss a single message. Later steps
    must continue from the returned id: an id the node has seen already means a camera restart.
    """
    step_id = first_id
    end = time.monotonic() + timeout_s
    while not answers and time.monotonic() < end:
        pub.publish(_step(probe, step_id))
        step_id += 1
        probe.until(lambda: answers, 1.0)
    assert answers, 'no answer to any step'
    return step_id


def test_lifecycle_loads_on_configure_and_answers_only_when_active(graph, probe):
    answers = probe.listen(Answer, 'edgevlm/answer', RESULTS)
    graph.node('edge_svlm_node', 'edge_svlm', {'autostart': False})
    state = _call(probe, GetState, '/edge_svlm/get_state', GetState.Request(),
                  resend_s=STATE_RETRY_S)
    assert state.current_state.id == State.PRIMARY_STATE_UNCONFIGURED
    for transition in (Transition.TRANSITION_CONFIGURE, Transition.TRANSITION_ACTIVATE):
        ok = _call(probe, ChangeState, '/edge_svlm/change_state',
                   ChangeState.Request(transition=Transition(id=transition)))
        assert ok.success
    assert 'loaded edge model' in graph.log('edge_svlm')
    pub = probe.node.create_publisher(Step, 'edgevlm/step', STEP_PUBLISHER)
    assert probe.until(lambda: pub.get_subscription_count() > 0, 30)
    _feed_until_answered(probe, pub, answers, 7)
    assert answers[0].step_id >= 7 and answers[0].header.frame_id == 'camera'

    ok = _call(probe, ChangeState, '/edge_svlm/change_state',
               ChangeState.Request(transition=Transition(id=Transition.TRANSITION_DEACTIVATE)))
    assert ok.success
    assert probe.until(lambda: pub.get_subscription_count() == 0, 30)


def test_ask_answers_a_one_off_question_about_a_given_image_or_the_newest_frame(graph, probe):
    graph.node('edge_svlm_node', 'edge_svlm')
    _wait_active(probe)
    rgb = np.full((60, 80, 3), 90, np.uint8)
    req = Ask.Request(question='Is the path clear?')
    req.image = rgb_to_image(rgb, _step(probe, 0).header)
    res = _call(probe, Ask, '/edgevlm/ask', req)
    assert res.success and res.answer.answer.strip()
    assert res.answer.question == 'Is the path clear?' and res.answer.model_ms > 0

    res = _call(probe, Ask, '/edgevlm/ask', Ask.Request(question='Anything?'))
    assert not res.success and 'no frame' in res.message  # no step has arrived yet
    res = _call(probe, Ask, '/edgevlm/ask', Ask.Request(question='  '))
    assert not res.success and 'empty' in res.message


def test_an_ask_runs_on_the_model_worker_and_the_node_keeps_serving_meanwhile(graph, probe,
                                                                            tmp_path):
    from rcl_interfaces.srv import GetParameters

    script = tmp_path / 'slow.json'
    script.write_text('{"answer": "yes", "delay_ms": 3000}')
    graph.node('edge_svlm_node', 'edge_svlm', {'model': f'scripted:{script}'})
    ask = probe.node.create_client(Ask, '/edgevlm/ask')
    params = probe.node.create_client(GetParameters, '/edge_svlm/get_parameters')
    assert probe.until(lambda: ask.service_is_ready() and params.service_is_ready(), 30)
    _wait_active(probe)
    req = Ask.Request(question='Is the path clear?')
    req.image = rgb_to_image(np.full((60, 80, 3), 90, np.uint8), _step(probe, 0).header)
    asked = ask.call_async(req)
    got = params.call_async(GetParameters.Request(names=['strategy']))
    # The executor answers a parameter request while the model still works on the Ask.
    assert probe.until(got.done, 30)
    assert not asked.done() and got.result().values[0].string_value == 'edgevlm'
    assert probe.until(asked.done, 30)
    assert asked.result().success and asked.result().answer.answer == 'yes'


def test_steps_arriving_while_the_model_is_busy_are_skipped_not_queued(graph, probe):
    answers = probe.listen(Answer, 'edgevlm/answer', RESULTS)
    probe.listen(DiagnosticArray, '/diagnostics', 10)
    graph.node('edge_svlm_node', 'edge_svlm', {'max_new_tokens': 64})
    pub = probe.node.create_publisher(Step, 'edgevlm/step', STEP_PUBLISHER)
    assert probe.until(lambda: pub.get_subscription_count() > 0, 30)
    for i in range(40):  # a burst far faster than the model answers
        pub.publish(_step(probe, 100 + i))
        probe.executor.spin_once(timeout_sec=0.005)
    assert probe.until(lambda: any(a.step_id == 139 for a in answers), 60), (
        'the newest step must be answered', [a.step_id for a in answers])
    ids = [a.step_id for a in answers]
    assert ids == sorted(ids) and len(ids) < 40
    assert probe.until(lambda: int(probe.diagnostics('edge_svlm').get('steps_skipped', 0)) > 0,
                       30)


def test_invalid_strategy_is_rejected_and_answering_continues(graph, probe):
    answers = probe.listen(Answer, 'edgevlm/answer', RESULTS)
    graph.node('edge_svlm_node', 'edge_svlm')
    res = _call(probe, SetParameters, '/edge_svlm/set_parameters', SetParameters.Request(
        parameters=[Parameter(name='strategy', value=ParameterValue(
            type=ParameterType.PARAMETER_STRING, string_value='telepathy'))]))
    assert not res.results[0].successful and 'edgevlm' in res.results[0].reason
    pub = probe.node.create_publisher(Step, 'edgevlm/step', STEP_PUBLISHER)
    assert probe.until(lambda: pub.get_subscription_count() > 0, 30)
    _feed_until_answered(probe, pub, answers, 1)
    assert answers[0].strategy == 'edgevlm'


def test_prompt_topic_shows_the_chat_template_with_the_replaced_history(graph, probe):
    answers = probe.listen(Answer, 'edgevlm/answer', RESULTS)
    prompts = probe.listen(Prompt, 'edgevlm/prompt', RESULTS)
    graph.node('edge_svlm_node', 'edge_svlm', {'debug.publish_prompt': True})
    pub = probe.node.create_publisher(Step, 'edgevlm/step', STEP_PUBLISHER)
    updates = probe.node.create_publisher(ContextUpdate, 'edgevlm/context_update', RESULTS)
    assert probe.until(lambda: pub.get_subscription_count() > 0
                       and updates.get_subscription_count() > 0, 30)
    next_id = _feed_until_answered(probe, pub, answers, 1)
    first = answers[0]
    cloud_text = 'A red cup stands on the left table.'
    updates.publish(ContextUpdate(step_id=first.step_id, question=first.question,
                                  text=cloud_text))
    answers.clear()
    end = time.monotonic() + 60
    while not any(a.replaced_turns for a in answers) and time.monotonic() < end:
        pub.publish(_step(probe, next_id, 'Where is the cup?'))
        next_id += 1
        heard = len(answers)  # wait for a new answer: the update may land after this step
        probe.until(lambda heard=heard: len(answers) > heard, 2.0)
    assert any(a.replaced_turns for a in answers), graph.log('edge_svlm')
    replaced = next(a for a in answers if a.replaced_turns)
    assert probe.until(lambda: any(p.step_id == replaced.step_id for p in prompts), 30)
    prompt = next(p for p in prompts if p.step_id == replaced.step_id)
    # The SmolVLM chat template: past turns as text, the cloud answer in its slot, one image.
    assert cloud_text in prompt.prompt and 'Where is the cup?' in prompt.prompt
    assert prompt.prompt.count('<image>') == 1 and prompt.prompt.endswith('Assistant:')
    assert prompt.prompt_tokens > 64 and prompt.focus_mode == 'none'
    assert prompt.header.stamp == replaced.header.stamp


def _set(probe, node: str, name: str, value: str) -> bool:
    res = _call(probe, SetParameters, f'/{node}/set_parameters', SetParameters.Request(
        parameters=[Parameter(name=name, value=ParameterValue(
            type=ParameterType.PARAMETER_STRING, string_value=value))]))
    return res.results[0].successful


@pytest.mark.parametrize('mode', ['attention', 'crop', 'overlay'])
def test_focus_mask_steers_the_svlm_by_attention_or_by_the_image_it_sees(graph, probe, mode):
    answers = probe.listen(Answer, 'edgevlm/answer', RESULTS)
    prompts = probe.listen(Prompt, 'edgevlm/prompt', RESULTS)
    graph.node('edge_svlm_node', 'edge_svlm', {'debug.publish_prompt': True,
                                               'focus.mode': mode})
    pub = probe.node.create_publisher(Step, 'edgevlm/step', STEP_PUBLISHER)
    masks = probe.node.create_publisher(FocusMask, 'edgevlm/focus_mask', RESULTS)
    assert probe.until(lambda: pub.get_subscription_count() > 0
                       and masks.get_subscription_count() > 0, 30)
    mask = FocusMask(source_step_id=1, target_step_id=1, age_s=0.0, confidence=0.9, regions=[
        Region(label='cup', score=0.9, x_min=0.1, y_min=0.2, x_max=0.3, y_max=0.5)])
    mask.header.stamp = probe.node.get_clock().now().to_msg()
    masks.publish(mask)
    step_id, end = 2, time.monotonic() + 60
    while not any(a.focus_applied for a in answers) and time.monotonic() < end:
        pub.publish(_step(probe, step_id))
        step_id += 1
        heard = len(answers)  # wait for a new answer: the mask may land after this step
        probe.until(lambda heard=heard: len(answers) > heard, 2.0)
    assert any(a.focus_applied for a in answers), graph.log('edge_svlm')
    focused = next(a for a in answers if a.focus_applied)
    assert focused.focus_source_step == 1 and focused.focus_age_s >= 0
    assert probe.until(lambda: any(p.step_id == focused.step_id for p in prompts), 30)
    prompt = next(p for p in prompts if p.step_id == focused.step_id)
    assert prompt.focus_mode == mode
    # Only the attention bias touches image tokens; a crop or overlay changes the image instead.
    assert (prompt.focused_tokens > 0) == (mode == 'attention')
    assert not _set(probe, 'edge_svlm', 'focus.mode', 'squint')


@pytest.fixture
def edge_node(tiny_edge_model):
    """
    The edge node in this process, configured (model loaded) but not active.

    Its callbacks and its answering step are called directly, in an order a test chooses.
    """
    from edgevlm_ros.edge_svlm_node import EdgeSvlmNode
    import rclpy
    from rclpy.lifecycle import TransitionCallbackReturn

    rclpy.init(args=['--ros-args', '-p', 'autostart:=false', '-p', f'model:={tiny_edge_model}'])
    node = None
    try:
        node = EdgeSvlmNode()
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        yield node
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()


def _local_step(node, step_id: int, question: str = 'What is ahead?') -> Step:
    msg = Step(step_id=step_id, question=question)
    msg.header.stamp = node.get_clock().now().to_msg()
    msg.image = rgb_to_image(np.random.default_rng(step_id).integers(
        0, 255, (48, 64, 3), dtype=np.uint8), msg.header)
    return msg


def test_context_from_before_a_camera_restart_stays_out_of_the_new_run(edge_node):
    node = edge_node
    node._on_step(_local_step(node, 100))
    answer = node.svlm.answer

    def answer_while_the_camera_restarts(*args, **kwargs):
        node._on_step(_local_step(node, 0))  # arrives while the model answers step 100
        return answer(*args, **kwargs)

    node.svlm.answer = answer_while_the_camera_restarts
    node._answer_step(node._newest_step)
    node.svlm.answer = answer
    assert node.counters.get('step_id_resets') == 1
    # The answer to step 100 belongs to the old history, not to the new run's newest slot.
    assert node.runner.state.store.history() == []

    # Cloud context still in flight for the old run arrives now: it changes nothing.
    node._on_context_update(ContextUpdate(step_id=100, question='What is ahead?',
                                          text='The old room.'))
    assert node.runner.state.store.history() == []
    assert node.counters.get('context_updates_from_before_restart') == 1
    region = Region(label='cup', score=0.9, x_min=0.1, y_min=0.2, x_max=0.3, y_max=0.5)
    node._on_focus_mask(FocusMask(source_step_id=100, target_step_id=101, regions=[region]))
    new_mask = FocusMask(source_step_id=0, target_step_id=0, regions=[region])
    new_mask.header.stamp = node.get_clock().now().to_msg()
    node._on_focus_mask(new_mask)
    # An old-run mask does not outrank the new run's.
    assert node.runner.state.focus.source_step == 0

    node._answer_step(node._newest_step)
    assert [t.step_id for t in node.runner.state.store.history()] == [0]
    assert node.counters.get('answers_with_focus') == 1


@pytest.mark.parametrize(('strategy', 'replaces', 'focuses'), [
    ('edgevlm', True, True), ('replacement_only', True, False), ('focus_only', False, True),
    ('edge_only', False, False)])
def test_each_strategy_uses_only_its_own_modules(edge_node, strategy, replaces, focuses):
    from rclpy.parameter import Parameter as NodeParameter

    node = edge_node
    assert node.set_parameters([NodeParameter('strategy', value=strategy)])[0].successful
    node._on_step(_local_step(node, 1))
    node._answer_step(node._newest_step)
    node._on_context_update(ContextUpdate(step_id=1, question='What is ahead?',
                                          text='A red cup on the left.'))
    mask = FocusMask(source_step_id=1, target_step_id=1, regions=[
        Region(label='cup', score=0.9, x_min=0.1, y_min=0.2, x_max=0.3, y_max=0.5)])
    mask.header.stamp = node.get_clock().now().to_msg()
    node._on_focus_mask(mask)
    node._on_step(_local_step(node, 2))
    node._answer_step(node._newest_step)
    assert (node.counters.get('answers_with_replaced_history') == 1) == replaces
    assert (node.counters.get('answers_with_focus') == 1) == focuses
    assert node.counters.get('answers_published') == 2


def test_counting_questions_are_answered_without_visual_focus(edge_node):
    from rclpy.parameter import Parameter as NodeParameter

    node = edge_node
    region = Region(label='cup', score=0.9, x_min=0.1, y_min=0.2, x_max=0.3, y_max=0.5)

    def answer(step_id: int, question: str) -> None:
        mask = FocusMask(source_step_id=step_id - 1, target_step_id=step_id - 1,
                         regions=[region])
        mask.header.stamp = node.get_clock().now().to_msg()
        node._on_focus_mask(mask)
        node._on_step(_local_step(node, step_id, question))
        node._answer_step(node._newest_step)

    answer(1, '  How many cups are there?')
    assert node.counters.get('answers_with_focus') == 0
    assert node.counters.get('focus_skipped_questions') == 1
    answer(2, 'Where is the cup? (a) left (b) right')  # not a count: focused
    assert node.counters.get('answers_with_focus') == 1

    assert not node.set_parameters(
        [NodeParameter('focus.skip_questions', value='(unclosed')])[0].successful
    assert node.set_parameters([NodeParameter('focus.skip_questions', value='')])[0].successful
    answer(3, 'How many cups are there?')  # nothing skipped
    assert node.counters.get('answers_with_focus') == 2
    assert node.counters.get('focus_skipped_questions') == 1


def _cloud_ok(step: Step, answer: str, question: str | None = None):
    from edgevlm_msgs.msg import CloudResponse

    return CloudResponse(header=step.header, step_id=step.step_id,
                         question=step.question if question is None else question,
                         answer=answer, status=CloudResponse.STATUS_OK, round_trip_ms=300.0)


def test_arbitrated_answers_from_a_fresh_consistent_cloud_and_says_why(edge_node):
    from rclpy.parameter import Parameter as NodeParameter

    node = edge_node
    assert node.set_parameters([NodeParameter('strategy', value='edgevlm_arbitrated')])[0] \
        .successful
    published, said = [], []
    publish, svlm_answer = node._publish, node.svlm.answer
    node._publish = lambda *a, **kw: published.append(publish(*a, **kw)) or published[-1]
    node.svlm.answer = lambda *a, **kw: said.append(svlm_answer(*a, **kw)) or said[-1]

    def at(step: Step, t_s: float) -> Step:
        # Camera stamps set here: how long the model takes on this machine decides nothing.
        step.header.stamp.sec, step.header.stamp.nanosec = int(t_s), round(t_s % 1 * 1e9)
        return step

    def answer(step: Step) -> Answer:
        node._on_step(step)
        node._answer_step(node._newest_step)
        return published[-1]

    first = at(_local_step(node, 1), 100.0)
    a = answer(first)
    assert (a.source, a.reason) == (Answer.SOURCE_EDGE, 'no cloud answer yet')
    assert a.answer == said[-1].text
    node._on_cloud_response(_cloud_ok(first, 'A red cup on the left.'))

    # The cloud's answer about a frame a moment old stands for the next step, and says so.
    a = answer(at(_local_step(node, 2), 100.5))
    assert a.source == Answer.SOURCE_CLOUD and a.answer == 'A red cup on the left.'
    assert a.newest_cloud_step == 1 and a.reason.startswith('cloud answer of step 1, ')
    assert a.model_ms > 0 and a.strategy == 'edgevlm_arbitrated'
    # The SVLM's history holds its own answers: arbitration does not feed the cloud's back.
    assert [t.answer for t in node.runner.state.store.history()] == [r.text for r in said]

    a = answer(at(_local_step(node, 3, 'Is the door open?'), 101.0))
    assert a.source == Answer.SOURCE_EDGE and 'another question' in a.reason

    assert node.set_parameters([NodeParameter('arbitration.max_age_s', value=0.0)])[0] \
        .successful
    a = answer(at(_local_step(node, 4), 101.5))
    assert a.source == Answer.SOURCE_EDGE and 'old (> 0 s)' in a.reason
    assert not node.set_parameters([NodeParameter('arbitration.max_age_s', value=-1.0)])[0] \
        .successful

    # A cloud that keeps contradicting itself about nearly the same frame is not trusted.
    assert node.set_parameters([NodeParameter('arbitration.max_age_s', value=5.0)])[0] \
        .successful
    for i in range(5, 12):
        step = at(_local_step(node, i), 100.0 + i * 0.5)
        node._on_step(step)
        node._on_cloud_response(_cloud_ok(step, 'yes' if i % 2 else 'no'))
    a = answer(at(_local_step(node, 12), 106.0))
    assert a.source == Answer.SOURCE_EDGE and 'contradicts itself' in a.reason
    assert node.counters.get('arbitration_cloud') == 1
    assert node.counters.get('arbitration_edge') == 4

    # A camera restart forgets the old run's cloud and its consistency.
    restarted = at(_local_step(node, 0), 200.0)
    a = answer(restarted)
    assert (a.source, a.reason) == (Answer.SOURCE_EDGE, 'no cloud answer yet')


# ------------------------------------------------------------------ the backend and its options

class _ReportingSvlm:
    """A backend that reports a prefix cache and stage times (what the node must pass on)."""

    name = 'reporting-test-backend'
    focus_supported = False

    def __init__(self, **kwargs) -> None:
        from edgevlm_ros.backends.base import PrefixCacheStats

        self.kwargs = kwargs
        self.max_new_tokens = kwargs['max_new_tokens']
        self.focus_layers = kwargs['focus_layers']
        self.cache_stats = PrefixCacheStats()

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def answer(self, image, question, history=(), focus=(), focus_alpha=0.0, *,
               max_new_tokens=None, history_sources=None):
        from edgevlm_ros.backends.base import SvlmResult

        prompt_tokens = 100 + 10 * len(history)
        cached = 10 * len(history)  # the history turns came from the previous step's cache
        self.cache_stats.add(prompt_tokens, cached)
        return SvlmResult(text='two', model_ms=40.0, prompt_tokens=prompt_tokens,
                          focus_applied=False, focused_tokens=0, prompt=question,
                          cached_tokens=cached, stages={'preprocess': 1.0, 'vision': 20.0,
                                                        'prefill': 9.0 - len(history),
                                                        'decode': 10.0})


def test_the_carried_strategy_tells_the_bridge_how_long_a_cloud_answer_holds(edge_node):
    from rclpy.parameter import Parameter as NodeParameter

    node = edge_node
    sent = []
    node._hold_pub.publish = sent.append
    colour, count = 'What colour is the box?', 'How many people are there?'

    def answer(step_id: int, question: str) -> None:
        node._on_step(_local_step(node, step_id, question))
        node._answer_step(node._newest_step)

    answer(1, colour)
    assert sent == []  # only edgevlm_carried learns a hold
    assert node.set_parameters([NodeParameter('strategy', value='edgevlm_carried')])[0] \
        .successful
    for step_id in (2, 3, 4):
        answer(step_id, colour)
    # Once for the question, not once per step: it has not changed. Before any duel it is the
    # prior's: a standing answer beats the edge up to 1.5 s old.
    assert [(m.question, m.kind, m.hold_s, m.duels) for m in sent] == [
        (colour, 'attribute', 1.5, 0.0)]
    assert sent[0].hold_s == node.runner.state.validity.horizon_s(colour)
    answer(5, count)
    assert [(m.question, m.kind) for m in sent[1:]] == [(count, 'count')]
    # Leaving edgevlm_carried withdraws the latched estimate once (0: no sooner send).
    assert node.set_parameters([NodeParameter('strategy', value='edgevlm_arbitrated')])[0] \
        .successful
    answer(6, count)
    answer(7, count)
    assert [(m.question, m.hold_s) for m in sent[2:]] == [(count, 0.0)]


def _node_with(monkeypatch, *params: str):
    """The edge node in this process with load_svlm recorded; configured, not active."""
    from edgevlm_ros.backends import registry
    from edgevlm_ros.edge_svlm_node import EdgeSvlmNode
    import rclpy

    made = []

    def load_svlm(spec, **kwargs):
        made.append((spec, kwargs))
        return _ReportingSvlm(**kwargs)

    monkeypatch.setattr(registry, 'load_svlm', load_svlm)
    args = ['--ros-args', '-p', 'autostart:=false', '-p', 'model:=/models/edge']
    for p in params:
        args += ['-p', p]
    rclpy.init(args=args)
    try:
        node = EdgeSvlmNode()
    except BaseException:
        rclpy.try_shutdown()
        raise
    return node, made


def test_runtime_parameters_reach_the_backend(monkeypatch):
    import rclpy
    from rclpy.lifecycle import TransitionCallbackReturn

    node, made = _node_with(monkeypatch, 'backend:=onnxruntime', 'device:=cuda:1',
                            'dtype:=float16', 'quantize:=int8',
                            'providers:=CUDAExecutionProvider, CPUExecutionProvider',
                            'kv_reuse:=false', 'num_threads:=2', 'focus.layers:=0,1')
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        (spec, kwargs), = made
        assert spec == '/models/edge'
        assert kwargs == dict(
            backend='onnxruntime', device='cuda:1', dtype='float16', quantize='int8',
            providers=('CUDAExecutionProvider', 'CPUExecutionProvider'), kv_reuse=False,
            max_new_tokens=24, image_longest_edge=512, do_image_splitting=False,
            num_threads=2, focus_layers=[0, 1])
        # A reload would be needed to change them: read-only.
        from rclpy.parameter import Parameter as NodeParameter
        result = node.set_parameters([NodeParameter('backend', value='transformers')])[0]
        assert not result.successful and 'read-only' in result.reason
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


def test_runtime_defaults_are_transformers_auto_and_the_runtime_default_providers(monkeypatch):
    import rclpy

    node, made = _node_with(monkeypatch)
    try:
        node.trigger_configure()
        kwargs = made[0][1]
        assert (kwargs['backend'], kwargs['device'], kwargs['dtype'], kwargs['quantize'],
                kwargs['providers'], kwargs['kv_reuse']) == (
                    'transformers', 'auto', 'auto', 'none', (), True)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


@pytest.mark.parametrize(('param', 'reason'), [
    ('device:=gpu', 'device must be one of auto, cpu, cuda or cuda:N'),
    ('device:=cuda:x', "got 'cuda:x'"),
    ('dtype:=float8', "dtype='float8' is not one of auto, float32, float16, bfloat16"),
    ('backend:=tensorrt', "backend='tensorrt' is not one of auto, transformers"),
    ('quantize:=int2', "quantize='int2' is not one of none, int8, int4"),
    ('providers:=CUDA,CPUExecutionProvider', 'execution provider names (CUDAExecutionProvider'),
    ('history.evict_block:=0', 'history.evict_block out of range. Min: 1'),
])
def test_bad_runtime_parameters_stop_the_node_with_the_reason(monkeypatch, param, reason):
    with pytest.raises(ValueError, match='invalid parameters') as e:
        _node_with(monkeypatch, param)
    assert reason in str(e.value)


def test_diagnostics_show_the_history_cache_hit_rate_and_stage_times(monkeypatch):
    import rclpy
    from rclpy.lifecycle import TransitionCallbackReturn

    node, _ = _node_with(monkeypatch, 'history.max_turns:=4', 'history.evict_block:=2')
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.runner.state.store.evict_block == 2
        gauges = node._gauges()
        assert gauges['history_cache_calls'] == 0 and 'vision_p50_ms' not in gauges
        for step_id in range(1, 4):  # histories of 0, 1 and 2 turns
            node._on_step(_local_step(node, step_id))
            node._answer_step(node._newest_step)
        gauges = node._gauges()
        assert gauges['backend'] == 'transformers'
        assert (gauges['history_cache_calls'], gauges['history_cache_hits']) == (3, 2)
        assert gauges['history_cache_token_hit_rate'] == f'{30 / 330:.3f}'
        assert gauges['vision_p50_ms'] == '20.0' and gauges['prefill_p50_ms'] == '8.0'
        assert gauges['preprocess_p50_ms'] == '1.0' and gauges['decode_p50_ms'] == '10.0'
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


@pytest.mark.parametrize(('params', 'expected'), [
    # No GPU on the test machines: the load fails, and says so in one line.
    ({'device': 'cuda'}, "cannot load edge model 'tiny'"),
    ({'dtype': 'float8'}, "dtype='float8' is not one of"),
])
def test_an_edge_that_cannot_load_or_start_exits_2_with_one_clear_line(graph, params, expected):
    graph.node('edge_svlm_node', 'edge_svlm', params)
    code = graph.popen('edge_svlm').wait(120)
    log = graph.log('edge_svlm')
    assert code == 2 and expected in log and 'Traceback' not in log, log


def test_backend_auto_is_resolved_once_and_reported(monkeypatch):
    from edgevlm_ros.backends import base
    import rclpy

    chosen = []

    def choose_backend(spec, device='auto'):
        chosen.append((spec, device))
        return 'openvino', 'an x86 CPU'

    monkeypatch.setattr(base, 'choose_backend', choose_backend)
    node, made = _node_with(monkeypatch, 'backend:=auto', 'device:=cpu')
    try:
        node.trigger_configure()
        assert chosen == [('/models/edge', 'cpu')]
        assert made[0][1]['backend'] == 'openvino'  # the backend it chose, not 'auto'
        assert node._gauges()['backend'] == 'openvino'
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
