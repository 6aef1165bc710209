# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""Translations between ROS messages and the ROS-free core's types (no logic lives here)."""

from builtin_interfaces.msg import Time
from edgevlm_msgs.msg import Answer, GroundTruth, Region
import numpy as np
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from edgevlm_ros.core.edge_step import StepAnswer
from edgevlm_ros.core.images import decode_compressed, raw_to_rgb
from edgevlm_ros.core.records import Truth
from edgevlm_ros.core.regions import Box


def stamp_to_s(stamp: Time) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def s_to_stamp(t: float) -> Time:
    sec = int(t)
    return Time(sec=sec, nanosec=int(round((t - sec) * 1e9)) % 1_000_000_000)


def stamp_to_ns(stamp: Time) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def ns_to_stamp(ns: int) -> Time:
    sec, nanosec = divmod(int(ns), 1_000_000_000)
    return Time(sec=sec, nanosec=nanosec)


def image_to_rgb(msg: Image) -> np.ndarray:
    """Decode a sensor_msgs/Image of any supported encoding to RGB uint8 (or ImageDecodeError)."""
    return raw_to_rgb(msg.data, msg.height, msg.width, msg.encoding, msg.step,
                      bool(msg.is_bigendian))


def compressed_to_rgb(msg: CompressedImage) -> np.ndarray:
    """Decode a sensor_msgs/CompressedImage (JPEG/PNG) to RGB uint8 (raises ImageDecodeError)."""
    return decode_compressed(bytes(msg.data), msg.format)


def rgb_to_image(rgb: np.ndarray, header: Header) -> Image:
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    msg = Image(header=header, height=rgb.shape[0], width=rgb.shape[1], encoding='rgb8',
                is_bigendian=0, step=rgb.shape[1] * 3)
    msg.data = rgb.tobytes()
    return msg


def box_to_region(box: Box) -> Region:
    return Region(label=box.label, score=float(box.score), x_min=float(box.x_min),
                  y_min=float(box.y_min), x_max=float(box.x_max), y_max=float(box.y_max))


def region_to_box(region: Region) -> Box:
    return Box(region.x_min, region.y_min, region.x_max, region.y_max, region.label,
               region.score)


def truth_to_msg(truth: Truth, frame_id: str = 'camera') -> GroundTruth:
    return GroundTruth(header=Header(stamp=ns_to_stamp(truth.stamp_ns), frame_id=frame_id),
                       episode=truth.episode, question_id=truth.question_id,
                       question=truth.question, answer=truth.answer,
                       accepted=list(truth.accepted), choices=list(truth.choices),
                       regions=[box_to_region(b) for b in truth.boxes])


def msg_to_truth(msg: GroundTruth) -> Truth:
    return Truth(stamp_ns=stamp_to_ns(msg.header.stamp), episode=msg.episode,
                 question_id=msg.question_id, question=msg.question, answer=msg.answer,
                 accepted=tuple(msg.accepted), choices=tuple(msg.choices),
                 boxes=tuple(region_to_box(r) for r in msg.regions))


def answer_to_msg(header: Header, step_id: int, question: str, answer: StepAnswer,
                  strategy: str, latency_ms: float, model_ms: float) -> Answer:
    """The Answer message of one step (core.edge_step.StepAnswer plus what the node timed)."""
    return Answer(header=header, step_id=step_id, question=question, answer=answer.text,
                  strategy=strategy, reason=answer.reason,
                  source=Answer.SOURCE_CLOUD if answer.source == 'cloud' else Answer.SOURCE_EDGE,
                  latency_ms=float(latency_ms), model_ms=float(model_ms),
                  history_turns=answer.history_turns, replaced_turns=answer.replaced_turns,
                  newest_cloud_step=answer.newest_cloud_step,
                  focus_applied=answer.focus_applied,
                  focus_source_step=answer.focus_source_step,
                  focus_age_s=float(answer.focus_age_s))
