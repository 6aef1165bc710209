# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
Declared, described and validated node parameters.

Every parameter is declared with a description and, where it has one, a range or a set of choices.
One on-set callback per node checks new values against the same rules and rejects bad ones with a
reason (the node keeps its old value and keeps running); rejections are counted.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    SetParametersResult,
)
from rclpy.exceptions import ParameterException
from rclpy.node import Node
from rclpy.parameter import Parameter


@dataclass(frozen=True)
class ParamSpec:
    """One parameter: name, default, description and the rule a value must satisfy."""

    name: str
    default: Any
    description: str
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] | None = None
    read_only: bool = False
    # Extra rule: returns a reason when the value is invalid, None when it is fine.
    check: Callable[[Any], str | None] | None = None

    def descriptor(self) -> ParameterDescriptor:
        text = self.description
        if self.choices:
            text += f" (one of: {', '.join(self.choices)})"
        # Float parameters also take integers ("rate_hz:=10"): typed dynamically, checked here.
        d = ParameterDescriptor(description=text, read_only=self.read_only,
                                dynamic_typing=isinstance(self.default, float))
        # rclpy ranges need both ends and the right number type; keep the check in validate() too.
        if self.min is not None and self.max is not None:
            if isinstance(self.default, bool):
                pass
            elif isinstance(self.default, int):
                d.integer_range = [IntegerRange(from_value=int(self.min), to_value=int(self.max))]
            elif isinstance(self.default, float):
                d.floating_point_range = [
                    FloatingPointRange(from_value=float(self.min), to_value=float(self.max))]
        return d

    def validate(self, value: Any) -> str | None:
        """Return why `value` is not acceptable, or None."""
        if isinstance(self.default, bool) != isinstance(value, bool):
            return f'{self.name} must be a bool'
        if isinstance(self.default, float) and type(value) is int:
            value = float(value)
        if type(value) is not type(self.default):
            return f'{self.name} must be of type {type(self.default).__name__}'
        if self.min is not None and value < self.min:
            return f'{self.name}={value!r} is below the minimum {self.min}'
        if self.max is not None and value > self.max:
            return f'{self.name}={value!r} is above the maximum {self.max}'
        if self.choices is not None and value not in self.choices:
            return f"{self.name}={value!r} is not one of {', '.join(self.choices)}"
        if self.check is not None:
            return self.check(value)
        return None


class ParamSet:
    """
    Declares a node's parameters and guards every later change.

    Invalid values given at start-up raise ValueError (a node must not start on a bad
    configuration); invalid values set at run time are rejected with a reason and counted.
    `check_together` judges the values as a whole (rules between parameters): it gets every
    parameter's value as it would be after a change and returns a reason or None.
    """

    def __init__(self, node: Node, specs: list[ParamSpec],
                 on_change: Callable[[dict[str, Any]], None] | None = None,
                 check_together: Callable[[dict[str, Any]], str | None] | None = None
                 ) -> None:
        self._node = node
        self._specs = {s.name: s for s in specs}
        self._on_change = on_change
        self._check_together = check_together
        self.rejected = 0
        self.last_rejection = ''
        errors = []
        for s in specs:
            try:
                value = node.declare_parameter(s.name, s.default, s.descriptor()).value
            except ParameterException as e:  # wrong type or out of the declared range
                errors.append(f'{s.name}: {e}')
                continue
            if isinstance(s.default, float) and isinstance(value, int):
                value = float(value)
            reason = s.validate(value)
            if reason:
                errors.append(reason)
        if not errors and check_together is not None:
            reason = check_together({name: self[name] for name in self._specs})
            if reason:
                errors.append(reason)
        if errors:
            raise ValueError('invalid parameters: ' + '; '.join(errors))
        node.add_on_set_parameters_callback(self._on_set)
        if on_change is not None:
            node.add_post_set_parameters_callback(self._post_set)

    def __getitem__(self, name: str) -> Any:
        value = self._node.get_parameter(name).value
        if isinstance(self._specs[name].default, float) and isinstance(value, int):
            return float(value)
        return value

    def _on_set(self, params: list[Parameter]) -> SetParametersResult:
        ours = [p for p in params if p.name in self._specs]
        reason = next((r for p in ours if (r := self._specs[p.name].validate(p.value))), None)
        if reason is None and ours and self._check_together is not None:
            values = {name: self[name] for name in self._specs}
            values.update((p.name, float(p.value) if isinstance(self._specs[p.name].default,
                                                                  float) else p.value)
                          for p in ours)
            reason = self._check_together(values)
        if reason:
            self.rejected += 1
            self.last_rejection = reason
            self._node.get_logger().warning(f'rejected parameter change: {reason}')
            return SetParametersResult(successful=False, reason=reason)
        return SetParametersResult(successful=True)

    def _post_set(self, params: list[Parameter]) -> None:
        changed = {p.name: self[p.name] for p in params if p.name in self._specs}
        if not changed or self._on_change is None:
            return
        try:
            self._on_change(changed)
        except Exception as e:  # noqa: BLE001 - a change the node cannot apply must not kill it
            self.rejected += 1
            self.last_rejection = str(e)
            self._node.get_logger().error(f'could not apply {sorted(changed)}: {e}')
