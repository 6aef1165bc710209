# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
The cloud bridge's configuration: its parameter values as one frozen record, and their rules.

ROS-free: the node declares each parameter once (name, default, description, range) and builds a
``BridgeConfig`` from the values at start and after every accepted change; the code paths read
the record, never the parameters one by one.

Rules on one value (each returns a reason or None, for the node's parameter table):

1. ``check_url``: base_url is "embedded" or an http(s):// URL, and carries no credentials
   (user:password@): the URL is logged and quoted in errors, a key must not be.
2. ``check_env_name``: api_key_env is empty or a POSIX environment variable name in upper case,
   so that a key pasted there (hf_..., sk-..., hex) is refused instead of being logged as the
   name of an unset variable.
3. ``check_profile``: network_profile parses as a ``NetworkProfile``.
4. ``check_box_format``: box_format is a format the box parser knows, looked up when checked so
   that formats added to the parser are accepted without a change here.

Rule between values (``BridgeConfig`` refuses to exist otherwise; ``check_together`` says why):

5. retry.max_backoff_s >= retry.backoff_s and breaker.max_cooldown_s >= breaker.cooldown_s,
   judged by ``RetryPolicy`` and ``CircuitBreaker`` themselves, so the bridge never accepts a
   value its policies would refuse. Changing one end past the other is refused with the hint to
   set both at once or in the other order.

What a user must be told about the connection at start (``transport_warnings``):

6. an https:// server whose certificate is not verified (tls_verify false), and an API key sent
   over http:// to a host that is not loopback.
"""

from __future__ import annotations

from dataclasses import dataclass
import ipaddress
import re
from typing import Any
from urllib.parse import urlsplit

from edgevlm_ros.cloud.openai_client import url_has_credentials
from edgevlm_ros.cloud.resilience import CircuitBreaker, RetryPolicy
from edgevlm_ros.core import regions
from edgevlm_ros.core.netem import NetworkProfile
from edgevlm_ros.core.strategy import Strategy

EMBEDDED = 'embedded'
# The parameters that configure the CloudSelector (a change to one reconfigures it).
SELECTION_PARAMS = frozenset({'max_in_flight', 'min_interval_s', 'scene_change', 'max_quiet_s',
                              'quiet_from_edge_hold', 'max_age_s', 'adaptive_interval',
                              'rtt_alpha'})
_ENV_NAME = re.compile(r'[A-Z_][A-Z0-9_]*')


def check_url(url: str) -> str | None:
    """Rule 1."""
    if url == EMBEDDED:
        return None
    if not url.startswith(('http://', 'https://')):
        return 'base_url must be "embedded" or an http(s):// URL of an OpenAI-compatible API'
    if url_has_credentials(url):
        return ('base_url must not carry credentials (user:password@); give the key through '
                'api_key_env or api_key_file')
    return None


def check_env_name(name: str) -> str | None:
    """Rule 2."""
    return None if name == '' or _ENV_NAME.fullmatch(name) else (
        'api_key_env names an environment variable (upper-case letters, digits, _), not a key')


def check_profile(spec: str) -> str | None:
    """Rule 3."""
    try:
        NetworkProfile.parse(spec)
    except ValueError as e:
        return str(e)
    return None


def check_box_format(name: str) -> str | None:
    """Rule 4."""
    if name in regions.BOX_FORMATS:
        return None
    return f"box_format={name!r} is not one of {', '.join(regions.BOX_FORMATS)}"


def transport_warnings(url: str, tls_verify: bool, has_key: bool) -> list[str]:
    """Rule 6: what about the connection to `url` a user must be told at start."""
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


@dataclass(frozen=True)
class BridgeConfig:
    """Every parameter of the cloud bridge; a parameter 'a.b' is the field 'a_b'."""

    base_url: str
    model: str
    embedded_model: str
    embedded_threads: int
    embedded_device: str
    embedded_dtype: str
    api_key_env: str
    api_key_file: str
    tls_verify: bool
    ca_file: str
    timeout_s: float
    max_tokens: int
    jpeg_quality: int
    max_image_side: int
    box_format: str
    structured_output: str
    max_response_bytes: int
    retry_max_retries: int
    retry_backoff_s: float
    retry_max_backoff_s: float
    breaker_failure_threshold: int
    breaker_cooldown_s: float
    breaker_max_cooldown_s: float
    max_in_flight: int
    min_interval_s: float
    adaptive_interval: bool
    rtt_alpha: float
    scene_change: float
    max_quiet_s: float
    max_age_s: float
    network_profile: str
    strategy: str
    seed: int
    # One-off questions (the Ask action, cloud.asks); defaults so that older value sets build.
    ask_max_in_flight: int = 1
    ask_max_queue: int = 1
    ask_deadline_s: float = 30.0
    ask_feedback_chunks: int = 4
    ask_feedback_ms: float = 100.0
    embedded_service_ms: float = 0.0
    quiet_from_edge_hold: bool = False

    def __post_init__(self) -> None:
        try:  # rule 5
            self.retry_policy()
            CircuitBreaker(*self.breaker_limits())
        except ValueError as e:
            raise ValueError(
                f'{e} (retry.max_backoff_s >= retry.backoff_s, breaker.max_cooldown_s >= '
                'breaker.cooldown_s; set both at once or in the other order)') from None

    @classmethod
    def from_values(cls, values: dict[str, Any]) -> BridgeConfig:
        """Build from parameter values by parameter name; every field must be given."""
        return cls(**{name.replace('.', '_'): value for name, value in values.items()})

    @property
    def embedded(self) -> bool:
        """base_url asks for the project's own LVLM server, started in the bridge's process."""
        return self.base_url == EMBEDDED

    @property
    def uses_cloud(self) -> bool:
        return Strategy.parse(self.strategy).uses_cloud

    def retry_policy(self) -> RetryPolicy:
        # Its own unseeded RNG: a shared seed would make a fleet retry at the same moments.
        return RetryPolicy(self.retry_max_retries, self.retry_backoff_s, self.retry_max_backoff_s)

    def breaker_limits(self) -> tuple[int, float, float]:
        """failure_threshold, cooldown_s, max_cooldown_s of the CircuitBreaker."""
        return self.breaker_failure_threshold, self.breaker_cooldown_s, self.breaker_max_cooldown_s

    def selection(self) -> dict[str, Any]:
        """Keyword arguments of CloudSelector and CloudSelector.configure."""
        return {'max_in_flight': self.max_in_flight, 'min_interval_s': self.min_interval_s,
                'scene_change': self.scene_change, 'max_quiet_s': self.max_quiet_s,
                'follow_hold': self.quiet_from_edge_hold, 'max_age_s': self.max_age_s,
                'adaptive': self.adaptive_interval, 'rtt_alpha': self.rtt_alpha}

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments of OpenAiVlmClient that come straight from parameters."""
        return {'timeout_s': self.timeout_s, 'max_tokens': self.max_tokens,
                'jpeg_quality': self.jpeg_quality, 'max_image_side': self.max_image_side,
                'box_format': self.box_format, 'tls_verify': self.tls_verify,
                'ca_file': self.ca_file or None, 'structured_output': self.structured_output,
                'max_response_bytes': self.max_response_bytes,
                'max_in_flight': self.client_slots}

    @property
    def client_slots(self) -> int:
        """HTTP requests at once: the selector sends one past its limit on a new question."""
        return self.max_in_flight + 1

    def embedded_server(self) -> dict[str, Any]:
        """Keyword arguments of the embedded LvlmServer: loopback only, any free port."""
        options = {'model': self.embedded_model, 'host': '127.0.0.1', 'port': 0,
                   'served_name': self.model, 'num_threads': self.embedded_threads,
                   'device': self.embedded_device, 'dtype': self.embedded_dtype}
        if self.embedded_service_ms:
            options['service_ms'] = self.embedded_service_ms
        return options

    @property
    def ask_threads(self) -> int:
        """Desk threads of the Ask action: every admitted goal, plus one to refuse the next."""
        return self.ask_max_in_flight + self.ask_max_queue + 1


def check_together(values: dict[str, Any]) -> str | None:
    """Why these parameter values cannot make a BridgeConfig (rule 5), or None."""
    try:
        BridgeConfig.from_values(values)
    except ValueError as e:
        return str(e)
    return None
