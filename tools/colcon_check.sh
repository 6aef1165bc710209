#!/usr/bin/env bash
# The path robot integrators use: `colcon build` both packages into a scratch workspace, source it,
# and run a node from that install (camera_node answering a frame with a Step).
# usage: tools/colcon_check.sh VENV WORKSPACE
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
VENV=$(cd "$1" && pwd)
rm -rf "$2" && mkdir -p "$2/src"
WS=$(cd "$2" && pwd)
cp -r "$REPO/edgevlm_msgs" "$REPO/edgevlm_ros" "$WS/src/"
rm -rf "$WS/src/edgevlm_ros/build" "$WS/src/edgevlm_ros/"*.egg-info
cd "$WS"
export PATH="$VENV/bin:$PATH" AMENT_PREFIX_PATH="$VENV" CMAKE_PREFIX_PATH="$VENV"
colcon build --event-handlers console_cohesion- summary+ \
  --cmake-args -DPython3_EXECUTABLE="$VENV/bin/python" -DBUILD_TESTING=OFF
set +u
# shellcheck disable=SC1091
source install/setup.bash
set -u
# setup.bash replaces AMENT_PREFIX_PATH with the workspace; the ROS wheels live in the venv.
export AMENT_PREFIX_PATH="$AMENT_PREFIX_PATH:$VENV"
node="$WS/install/edgevlm_ros/lib/edgevlm_ros/camera_node"
test -x "$node" || { echo "colcon install has no $node"; exit 1; }
test -f "$WS/install/edgevlm_ros/share/edgevlm_ros/launch/edgevlm.launch.py"
python "$REPO/tools/colcon_smoke.py" "$node"
