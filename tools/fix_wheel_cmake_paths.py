# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
Point the ROS wheels' CMake exports at this interpreter's include directories.

The ros-* wheels were built in a manylinux container whose Python lived under /opt/python/cp3XX.
Their *__rosidl_generator_pyExport.cmake files still name that Python's and numpy's include
directories, and CMake refuses to generate when an imported target names a missing path.
Idempotent; run with the venv's python after every install of ros-* wheels.
"""

import glob
import os
import re
import sys
import sysconfig

import numpy

PY_INCLUDE = re.compile(r'/opt/python/cp3\d+-cp3\d+/include/python3\.\d+')
NP_INCLUDE = re.compile(
    r'/opt/python/cp3\d+-cp3\d+/lib/python3\.\d+/site-packages/numpy/(_core|core)/include')


def main() -> int:
    py_inc = sysconfig.get_paths()['include']
    np_inc = numpy.get_include()
    changed = 0
    for path in glob.glob(os.path.join(sys.prefix, 'share', '*', 'cmake', '*.cmake')):
        with open(path, encoding='utf-8') as f:
            text = f.read()
        if '/opt/python/' not in text:
            continue
        new = PY_INCLUDE.sub(py_inc, NP_INCLUDE.sub(np_inc, text))
        if new != text:
            with open(path, 'w', encoding='utf-8') as f:
                f.write(new)
            changed += 1
    print(f'fix_wheel_cmake_paths: patched {changed} cmake files')
    return 0


if __name__ == '__main__':
    sys.exit(main())
