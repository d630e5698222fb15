"""The router: the single writer of chat ownership and agent capacity.

Theory of operation:

Rule 1. Every decision about who holds a chat (offer, accept, decline, transfer, invite, requeue,
        end) is made here, one message at a time, against the router's own records. There is no
        read-check-assign race: two agents cannot both win a chat, and an agent's load (chats it is
        in plus offers it holds) never exceeds its capacity, because pending offers reserve a slot.
        A capacity lowered below what an agent holds (an update, or a restart with a new
        configuration that restores its chats) takes nothing away: the agent keeps its chats and
        the offers it already had, and gets no new offer, transfer or invite until its load is
        under the new capacity (`AgentState.can_take`).
        The database holds capacity too (store.journal, Rule 6), for what the router's memory
        cannot know (several nodes, a capacity lowered behind the engine's back): with the
        journal on, an accept (of a chat, transfer or invite) is decided only on a seat the
        store has committed, checked against the capacity in the directory: the one the write
        of the offer reserved (`PendingOffer.seated`), or else one the accept claims first
        (`submit_claim`; the agent's reservation in memory holds meanwhile). A refused claim
        (`over_capacity`) answers the agent `capacity_full` and the offer goes on without it
        (the chat is offered to others or queued); a failing store answers `store_unavailable`
        and the offer stays open. Nothing is decided that the store refused, so nothing is
        retried.
Rule 2. The router never awaits anything but its own mailbox. It tells sessions with `send_nowait`,
        pushes events into outboxes (which never block), answers asks on size-1 reply channels, and
        hands store writes over with a callback, which records the outcome and wakes the loop (it
        cancels the mailbox wait). A tell that finds the session's mailbox full is kept, with every
        later tell to that session behind it, and retried on a timer: what the router decided
        reaches the session, in order (a Join before the chat's Finish). An accept is answered
        only once its Join is in the session's mailbox, so an agent that was told it joined can
        write into the chat. What is kept is one message per decision about that chat, and only
        while its session is behind.
Rule 3. Timers are data: one deadline heap, and the loop waits on the mailbox under
        `trio.move_on_at(earliest deadline)`. A fired timer is handled like a message.
Rule 4. Work that follows from freed capacity (offering the head of a queue) is collected while a
        message is handled and done once at the end, so handlers never recurse into each other.
Rule 5. Decided, then durable, then seen. Every change to a chat's record (state, owner, members,
        offers, handoffs, queue place, deadlines), to an agent's presence or disconnect grace, is
        journaled before anyone hears of it: the effects of one loop iteration (pushes, tells,
        answers) are held back (actors.effects), the changed records are handed to the store in
        one job at the end of the iteration, and the effects are released, in order, once it has
        committed. The router does not wait for that: it goes on with the next message, and many
        iterations share one disk flush (group commit). An iteration that changed nothing releases
        its effects as soon as those before it are out.
Rule 6. A failed journal write does not undo the decision (a refusal no retry can change,
        `durability.PERMANENT`, is logged and not retried). The state in memory stays as decided and
        its effects are released, but the asks answered by the handler that made the change get
        `store_unavailable`, and the records are written again with the next write (a retry timer
        makes sure there is one). The consequence: until a later write succeeds, the change lives
        only in memory, and a crash in that window loses it (the chat comes back as it was last
        committed; nothing that was acknowledged is lost). A chat whose creation could not be
        journaled was refused (its visitor was told so and holds no handle), so it leaves
        nothing: no ticket, no live record; an offer made for it is withdrawn (`_abandon`).
Rule 7. Presence for routing. An agent is available (offered chats) when it is online and
        connected. An agent in its disconnect grace, also every agent restored at start until it
        connects, is present but not available: it counts as online when a new chat must choose
        between waiting in the queue and being missed, but it is offered nothing new. Offers
        restored at start wait for their agent, and are shown again when it connects.

The per-department waiting queue lives here too: taking a chat off the queue and reserving an
agent's capacity for it must be one decision. Its order survives a restart as a key per chat.

How the modules build the router. `state.RouterState` holds the records (`Chat`, `AgentState`,
`DeptState`, `PendingOffer`) and the primitives every concern uses (touch a record for the journal,
push, answer, tell, timers). Each other module adds one concern as a class that extends the one
below it, so a concern calls only what is below it and an import never points back up:

    state        records and primitives
    recorder     the routing flight recorder: each chat's steps, written when it finishes
    durability   the journal write of each iteration, held-back effects (Rules 5, 6)
    inspection   read-only answers: views, live chats, available agents, chat info
    eligibility  who may take a chat and why not (skills, hours), handle times, the queue ETA
    offers       make, check and close an offer; close a pending transfer or invite
    transitions  every change of a chat's state, by the table in model.chatstate
    queues       the department queue, offering the head (Rule 4)
    endings      end now or later, leave, finish a chat into its ticket
    overflow     whether a chat overflows to a fallback department, and where
    routing      where a waiting chat goes next; what follows when an offer lapses
    handshakes   accept, decline, transfer, invite
    silence      re-offer a chat whose owner left the visitor unanswered
    tagging      tags on a chat; a live chat's routing trace
    visitors     open a chat, a visitor leaving and coming back
    presence     status, connections, graces, crashed actors, directory changes
    supervision  supervisors' live desks (coalesced events), barging in, reassigning
    firing       what each kind of timer does when it fires (Rule 3)
    restore      load the directory and the journal's live chats before the loop
    loop         `Router`: the mailbox loop and the handler table

Work that would have to call upward (a freed slot offering a queued chat) goes through Rule 4's
deferred set instead.
"""

from .loop import Router
from .state import Chat, Members, SpawnSession

__all__ = ["Chat", "Members", "Router", "SpawnSession"]
