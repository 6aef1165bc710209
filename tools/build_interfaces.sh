#!/usr/bin/env bash
# Build an ament_cmake interface package (rosidl .msg/.srv) and install it into a venv that holds
# the ROS 2 wheels from PyPI. No apt ROS, no colcon: cmake configure/build/install into the venv.
# usage: tools/build_interfaces.sh VENV PKG_SRC_DIR BUILD_DIR
set -euo pipefail
VENV=$(cd "$1" && pwd)
SRC=$(cd "$2" && pwd)
BUILD=$3
HERE=$(cd "$(dirname "$0")" && pwd)
"$VENV/bin/python" "$HERE/fix_wheel_cmake_paths.py"
rm -rf "$BUILD"
cmake -S "$SRC" -B "$BUILD" -DCMAKE_PREFIX_PATH="$VENV" -DCMAKE_INSTALL_PREFIX="$VENV" \
  -DPython3_EXECUTABLE="$VENV/bin/python" -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF >"$BUILD.log" 2>&1 \
  || { tail -40 "$BUILD.log"; exit 1; }
cmake --build "$BUILD" -j"$(nproc)" >>"$BUILD.log" 2>&1 || { tail -40 "$BUILD.log"; exit 1; }
cmake --install "$BUILD" >>"$BUILD.log" 2>&1 || { tail -40 "$BUILD.log"; exit 1; }
echo "built and installed $(basename "$SRC") into $VENV (log: $BUILD.log)"
