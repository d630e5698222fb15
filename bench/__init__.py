"""helpline's benchmark suite: figures anyone can reproduce, each a ratio to a raw baseline.

Absolute times on a shared machine drift from run to run, so every scenario measures a raw
baseline (bare trio tasks and channels, or a bare trio-websocket relay) in the same run, round
after round, interleaved with helpline, and reports the median of each, the min-max spread and the
ratio. Run ``python -m bench --help`` for the options and bench/README.md for the scenarios.
"""
