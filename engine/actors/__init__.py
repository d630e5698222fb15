"""The actors: the router, the chat sessions, the agents and departments, and what they share.

messages (the mailboxes' vocabulary), supervision (the wrapper every actor runs in, and the agent
and department actors), session (one chat's transcript and fan-out), outbox (bounded event queues
to frontends), effects (effects held back until the journal commits), timers (the deadline heap),
deskboard (what sessions leave for the supervisors' desk without a message), and router/ (the
single writer of ownership and capacity, one module per concern).
Uses the store and the model; never the embedding API.
"""
