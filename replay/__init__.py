"""What-if replay: recorded help-desk traffic played again through the real engine, on a virtual
clock, against another configuration (more or fewer agents, other capacities, another routing).

``helpline replay --help`` explains the command; the modules, in the order a replay uses them:
`traffic` (what is replayed), `desk` (what it is replayed against), `simulate` (the run, on the
virtual clock of `clock`), `report` (the figures, side by side with the recorded ones), `sweep` (a
table over agent counts).
"""

from .clock import VirtualClock
from .desk import Changes, Desk, generated_desk, recorded_desk
from .simulate import Run, run, simulate
from .traffic import DayProfile, Outcome, Request, Traffic, generate_day, read_jsonl, read_store

__all__ = [
    "Changes",
    "DayProfile",
    "Desk",
    "Outcome",
    "Request",
    "Run",
    "Traffic",
    "VirtualClock",
    "generate_day",
    "generated_desk",
    "read_jsonl",
    "read_store",
    "recorded_desk",
    "run",
    "simulate",
]
