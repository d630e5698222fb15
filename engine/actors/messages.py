"""Messages between the engine's actors: frozen, slotted, keyword-only, one docstring each.

Asks from outside carry `reply`, a memory channel of size 1; the actor answers with `answer()`,
which never blocks and drops the answer quietly if the asker gave up. Everything else is a tell.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import trio

from ..model.records import AgentStatus, Department, Finish, Ticket, Visitor

if TYPE_CHECKING:
    from .outbox import Outbox, Outlet


class Reply:
    """The answer slot of one ask: filled once by the actor, awaited by the asker.

    Cheaper than a memory channel of size 1 (one Event, no channel pair), and it keeps the
    channel's `send_nowait` contract: a second answer raises trio.WouldBlock. An asker that does
    not wait (a pipelined request) gives `then` instead, which is called with the answer.
    """

    __slots__ = ("_answered", "_event", "_then", "value")

    def __init__(self, then: Callable[[Any], None] | None = None) -> None:
        self._then = then
        self._event = trio.Event() if then is None else None
        self._answered = False
        self.value: Any = None

    def send_nowait(self, value: object) -> None:
        if self._answered:
            raise trio.WouldBlock
        self._answered = True
        self.value = value
        if self._then is not None:
            self._then(value)
        else:
            assert self._event is not None
            self._event.set()

    async def wait(self) -> Any:
        assert self._event is not None
        await self._event.wait()
        return self.value


def answer(reply: Reply, value: object) -> None:
    """Send an ask's answer (a value or an EngineError) without ever blocking."""
    with contextlib.suppress(trio.WouldBlock):
        reply.send_nowait(value)  # a second answer, or a late one to an abandoned ask, is dropped


# --- to the router -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenChat:
    """A visitor asks for a chat with a department."""

    department: str
    question: str
    visitor: Visitor
    outbox: Outbox
    reply: Reply
    resume_key: str = ""  # kept with the chat for its frontend (journaled with it)
    skills: tuple[str, ...] = ()  # offered only to agents who have them (for a while)


@dataclass(frozen=True, slots=True, kw_only=True)
class SetPresence:
    """An agent sets its status and ringtone (None keeps the current value)."""

    agent_id: str
    status: AgentStatus | None
    ringtone: bool | None
    reply: Reply


@dataclass(frozen=True, slots=True, kw_only=True)
class Connected:
    """An agent opened a connection (`first`: its count went from zero to one)."""

    agent_id: str
    outlet: Outlet | None = None
    first: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class Disconnected:
    """An agent's last connection closed; its grace period starts."""

    agent_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Accept:
    """An agent accepts an offer (a chat, a transfer or an invite)."""

    agent_id: str
    offer_id: str
    reply: Reply


@dataclass(frozen=True, slots=True, kw_only=True)
class Decline:
    """An agent declines an offer."""

    agent_id: str
    offer_id: str
    reply: Reply


@dataclass(frozen=True, slots=True, kw_only=True)
class StartHandoff:
    """A chat's agent asks to transfer it (to an agent and/or department) or to invite an agent."""

    kind: str  # "transfer" or "invite"
    agent_id: str
    chat_id: str
    to_agent: str
    to_department: str
    note: str
    reply: Reply


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelHandoff:
    """The agent who started a transfer or invite withdraws it (`kind` "" for either)."""

    agent_id: str
    chat_id: str
    reply: Reply
    kind: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class EndChat:
    """The owner ends a chat now (delay 0) or after `delay` seconds."""

    agent_id: str
    chat_id: str
    delay: float
    reply: Reply


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelEnd:
    """The owner cancels a delayed ending."""

    agent_id: str
    chat_id: str
    reply: Reply


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaveChat:
    """An invited agent leaves a chat it does not own."""

    agent_id: str
    chat_id: str
    reply: Reply


@dataclass(frozen=True, slots=True, kw_only=True)
class VisitorGone:
    """The visitor left or lost its connection; the chat ends after the visitor grace."""

    chat_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class VisitorBack:
    """The visitor came back within its grace period."""

    chat_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AvailableAgents:
    """Who can take a transfer or invite now (optionally within one department)."""

    department: str
    reply: Reply


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatInfo:
    """An agent asks about a chat it is in or is being offered: the chat and its visitor's
    other live chats (for the visitor panel)."""

    agent_id: str
    chat_id: str
    reply: Reply


@dataclass(frozen=True, slots=True, kw_only=True)
class DepartmentChanged:
    """A department was added or its settings changed (already stored)."""

    department: Department


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentChanged:
    """An agent was added, changed (already stored) or removed (`removed`)."""

    agent_id: str
    name: str
    departments: tuple[str, ...]
    capacity: int
    outbox: Outbox | None
    removed: bool = False
    skills: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionClosed:
    """A session stored its ticket (or failed to) and stopped."""

    chat_id: str
    ticket_id: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ActorDown:
    """A supervised actor stopped; `snapshot` is what a crashed session held."""

    kind: str
    name: str
    crashed: bool
    snapshot: Ticket | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TagChat:
    """An agent in the chat adds tags to it (kept on its ticket)."""

    agent_id: str
    chat_id: str
    tags: tuple[str, ...]
    reply: Reply


@dataclass(frozen=True, slots=True, kw_only=True)
class AwaitingReply:
    """The session's visitor wrote and waits for an answer (`waiting`), or an agent answered."""

    chat_id: str
    waiting: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class TraceOf:
    """Ask for a live chat's routing trace (None if the chat is not live)."""

    chat_id: str
    reply: Reply


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreDone:
    """The outcome of a write the router handed to the store."""

    what: str
    key: str
    result: object
    reply: Reply | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class LiveChats:
    """Ask for every live chat as its frontend opened it (a restarted gateway's registry)."""

    reply: Reply


@dataclass(frozen=True, slots=True, kw_only=True)
class Inspect:
    """Ask for a consistent picture of ownership, capacity and queues (tests, admin views), or,
    naming `chat_id` or `agent_id`, for just that chat's or agent's part of it."""

    reply: Reply
    chat_id: str = ""
    agent_id: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Supervise:
    """A supervisor's connection asks for the live desk of `departments` (None: all of them);
    answered with a `DeskSnapshot`, then `DeskChanged` events follow on `outlet`."""

    watcher: str  # one per connection
    outlet: Outlet
    departments: frozenset[str] | None
    reply: Reply


@dataclass(frozen=True, slots=True, kw_only=True)
class Unsupervise:
    """A supervisor's connection no longer wants the desk (it stopped, or closed)."""

    watcher: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Activity:
    """A session's newest message (for the desk's last message time); dropped when busy."""

    chat_id: str
    at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Barge:
    """A supervisor joins a live chat of `departments` (None: any) as a participant."""

    chat_id: str
    supervisor: str
    name: str
    outbox: Outbox
    departments: frozenset[str] | None
    reply: Reply


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaveBarge:
    """A supervisor leaves a chat it barged into (`reply` None: its connection closed, and
    `outbox` is that connection's: if another connection of it reads the chat now, nothing)."""

    chat_id: str
    supervisor: str
    reply: Reply | None = None
    outbox: Outbox | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Reassign:
    """A supervisor transfers a chat of `departments` on behalf of its owner."""

    chat_id: str
    supervisor: str
    departments: frozenset[str] | None
    to_agent: str
    to_department: str
    note: str
    reply: Reply


@dataclass(frozen=True, slots=True, kw_only=True)
class Shutdown:
    """End every live chat (tickets written), then answer."""

    reply: Reply


# --- to a session --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Say:
    """A participant writes a message; answered with its sequence number."""

    author: str  # "visitor" or an agent id
    text: str
    client_msg_id: str
    reply: Reply
    origin: Outlet | None = None  # the writer's own outlet: the answer stands for its echo


@dataclass(frozen=True, slots=True, kw_only=True)
class SetTyping:
    """A participant started or stopped typing (an agent's notice is answered on `reply`)."""

    author: str
    on: bool
    reply: Reply | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Attach:
    """A visitor (re)connects: replay every line after `last_seq`, then deliver live."""

    outlet: Outlet
    last_seq: int
    reply: Reply


@dataclass(frozen=True, slots=True, kw_only=True)
class Detach:
    """The visitor's connection closed (`leaving`: the visitor said goodbye)."""

    outlet: Outlet
    leaving: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Join:
    """The router added an agent to the chat (taking the place of `replaces` on a transfer)."""

    agent_id: str
    name: str
    outbox: Outbox
    event: str = ""  # "joined", "transferred", "invited", "barged"; "": attach, no line
    detail: str = ""
    replaces: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Plug:
    """A connection of this agent opened (to the agent actor)."""

    outlet: Outlet


@dataclass(frozen=True, slots=True, kw_only=True)
class Unplug:
    """A connection of this agent closed (to the agent actor)."""

    outlet: Outlet


@dataclass(frozen=True, slots=True, kw_only=True)
class Configure:
    """Store a department's settings and apply them (to the department actor)."""

    department: Department
    reply: Reply


@dataclass(frozen=True, slots=True, kw_only=True)
class Part:
    """The router removed an agent from the chat."""

    agent_id: str
    event: str  # "left", "transferred_away", "requeued"
    detail: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Notice:
    """A numbered system line with no change of participants (ending, ending_cancelled...)."""

    event: str
    agent: str = ""
    detail: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class QueuePosition:
    """Tell the visitor where its chat waits, and how long it is expected to wait."""

    position: int
    eta: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Watch:
    """A supervisor monitors the chat: replay the transcript to `outbox`, then every new line,
    without being a participant; answered with the last sequence number."""

    watcher: str
    outbox: Outbox
    reply: Reply


@dataclass(frozen=True, slots=True, kw_only=True)
class Unwatch:
    """A supervisor stops monitoring the chat."""

    watcher: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Whisper:
    """A supervisor's note to the chat's agents, never shown to the visitor; answered with its
    sequence number."""

    author: str
    name: str
    text: str
    reply: Reply


@dataclass(frozen=True, slots=True, kw_only=True)
class History:
    """Ask for the chat's lines after `after_seq` (for panels and resume), as `reader`."""

    reader: str  # "visitor" or an agent id
    after_seq: int
    reply: Reply


ToRouter = (
    OpenChat
    | SetPresence
    | Connected
    | Disconnected
    | Accept
    | Decline
    | StartHandoff
    | CancelHandoff
    | EndChat
    | CancelEnd
    | LeaveChat
    | VisitorGone
    | VisitorBack
    | AvailableAgents
    | ChatInfo
    | DepartmentChanged
    | AgentChanged
    | SessionClosed
    | ActorDown
    | StoreDone
    | TagChat
    | AwaitingReply
    | TraceOf
    | LiveChats
    | Inspect
    | Supervise
    | Unsupervise
    | Activity
    | Barge
    | LeaveBarge
    | Reassign
    | Shutdown
)

ToSession = (
    Say
    | SetTyping
    | Attach
    | Detach
    | Join
    | Part
    | Notice
    | QueuePosition
    | Finish
    | History
    | Watch
    | Unwatch
    | Whisper
)

ToAgent = ToRouter | Plug | Unplug
