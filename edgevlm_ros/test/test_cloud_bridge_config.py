# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""The cloud bridge's configuration record and its rules (cloud.bridge_config), without ROS."""

from edgevlm_ros.cloud import bridge_config
from edgevlm_ros.cloud.bridge_config import BridgeConfig, check_together, transport_warnings
import pytest

# One complete set of parameter values, by parameter name (as the node reads them).
VALUES = {
    'base_url': 'embedded', 'model': 'edgevlm-local-lvlm', 'embedded_model': 'tiny-cloud',
    'embedded_threads': 1, 'embedded_device': 'auto', 'embedded_dtype': 'auto',
    'api_key_env': 'EDGEVLM_CLOUD_API_KEY', 'api_key_file': '', 'tls_verify': True,
    'ca_file': '', 'timeout_s': 10.0, 'max_tokens': 128, 'jpeg_quality': 85,
    'max_image_side': 640, 'box_format': 'auto', 'structured_output': 'json_schema',
    'max_response_bytes': 1 << 20, 'retry.max_retries': 2, 'retry.backoff_s': 0.25,
    'retry.max_backoff_s': 2.0, 'breaker.failure_threshold': 5, 'breaker.cooldown_s': 2.0,
    'breaker.max_cooldown_s': 60.0, 'max_in_flight': 1, 'min_interval_s': 0.0,
    'adaptive_interval': True, 'rtt_alpha': 0.3, 'scene_change': 0.0, 'max_quiet_s': 5.0,
    'max_age_s': 3.0, 'network_profile': 'none', 'strategy': 'edgevlm', 'seed': 0,
}


def config(**changed: object) -> BridgeConfig:
    return BridgeConfig.from_values({**VALUES, **changed})


def test_dotted_parameters_become_fields_and_feed_the_policies():
    c = config(**{'retry.backoff_s': 0.5, 'retry.max_backoff_s': 4.0,
                  'breaker.failure_threshold': 3})
    assert (c.retry_backoff_s, c.breaker_failure_threshold) == (0.5, 3)
    retry = c.retry_policy()
    assert (retry.max_retries, retry.base_s, retry.max_s) == (2, 0.5, 4.0)
    assert c.breaker_limits() == (3, 2.0, 60.0)


def test_the_record_is_frozen_and_needs_every_parameter():
    c = config()
    with pytest.raises(AttributeError):
        c.model = 'other'  # type: ignore[misc]
    values = dict(VALUES)
    del values['seed']
    with pytest.raises(TypeError):
        BridgeConfig.from_values(values)


@pytest.mark.parametrize(('changed', 'named'), [
    ({'retry.backoff_s': 5.0}, 'max_s (2.0) must be >= base_s (5.0)'),
    ({'breaker.cooldown_s': 100.0}, 'max_cooldown_s (60.0) must be >= cooldown_s (100.0)'),
])
def test_limits_that_contradict_each_other_are_refused_with_the_hint_to_set_both(changed, named):
    reason = check_together({**VALUES, **changed})
    assert named in reason and 'set both at once or in the other order' in reason
    with pytest.raises(ValueError, match='retry.max_backoff_s >= retry.backoff_s'):
        config(**changed)


def test_both_ends_changed_together_are_fine():
    assert check_together({**VALUES, 'retry.backoff_s': 5.0, 'retry.max_backoff_s': 10.0}) is None
    assert check_together(VALUES) is None


def test_selection_client_and_embedded_server_arguments_come_from_the_parameters():
    c = config(adaptive_interval=False, max_in_flight=2, ca_file='', embedded_threads=2,
               quiet_from_edge_hold=True)
    assert c.selection() == {'max_in_flight': 2, 'min_interval_s': 0.0, 'scene_change': 0.0,
                             'max_quiet_s': 5.0, 'follow_hold': True, 'max_age_s': 3.0,
                             'adaptive': False, 'rtt_alpha': 0.3}
    options = c.client_options()
    assert options['ca_file'] is None and options['max_in_flight'] == 3  # one for a new question
    assert c.embedded and c.embedded_server() == {
        'model': 'tiny-cloud', 'host': '127.0.0.1', 'port': 0, 'served_name': 'edgevlm-local-lvlm',
        'num_threads': 2, 'device': 'auto', 'dtype': 'auto'}
    assert not config(base_url='http://gpu-box:8000/v1').embedded


def test_only_strategies_that_use_the_cloud_send():
    assert config(strategy='edgevlm').uses_cloud
    assert not config(strategy='edge_only').uses_cloud


@pytest.mark.parametrize(('url', 'refused'), [
    ('embedded', False), ('http://127.0.0.1:8000/v1', False),
    ('https://vlm.example.org/v1', False), ('ftp://vlm.example.org/v1', True),
    ('gpu-box:8000', True),
])
def test_base_url_is_embedded_or_http(url, refused):
    assert (bridge_config.check_url(url) is not None) == refused


def test_credentials_in_the_url_are_refused_without_showing_them():
    reason = bridge_config.check_url('https://robot1:s3cret-pass@proxy.example.org/v1')
    assert reason and 's3cret-pass' not in reason and 'api_key_env' in reason


@pytest.mark.parametrize('name', ['', 'EDGEVLM_CLOUD_API_KEY', '_K1'])
def test_environment_variable_names_are_accepted(name):
    assert bridge_config.check_env_name(name) is None


@pytest.mark.parametrize('key', ['sk-proj-abc123', 'hf_AbCdEf', 'lower_case', '1ABC'])
def test_a_key_where_a_variable_name_goes_is_refused_without_showing_it(key):
    reason = bridge_config.check_env_name(key)
    assert reason and 'names an environment variable' in reason and key not in reason


def test_network_profile_and_box_format_are_checked_by_their_parsers():
    assert bridge_config.check_profile('fixed:300') is None
    assert bridge_config.check_profile('fixed:') is not None
    assert bridge_config.check_box_format('pixels') is None
    assert "box_format='polar' is not one of" in bridge_config.check_box_format('polar')


@pytest.mark.parametrize(('url', 'tls_verify', 'has_key', 'warned'), [
    ('https://vlm.example.org/v1', False, False, ['NOT verified']),
    ('http://vlm.example.org/v1', True, True, ['clear text']),
    ('http://vlm.example.org/v1', True, False, []),
    ('http://127.0.0.1:8000/v1', True, True, []),
    ('http://localhost:8000/v1', True, True, []),
    ('http://[::1]:8000/v1', True, True, []),
    ('https://vlm.example.org/v1', True, True, []),
])
def test_unverified_tls_and_a_key_in_clear_text_to_another_host_are_warned_about(
        url, tls_verify, has_key, warned):
    warnings = transport_warnings(url, tls_verify, has_key)
    assert len(warnings) == len(warned)
    assert all(w in text for w, text in zip(warned, warnings))
