"""The model: plain data the other layers share, with no trio and no I/O.

records (agents, departments, visitors, entries, tickets), events (pushed to frontends), views
(read-only pictures of the router), errors, the chat's states, and the engine's configuration.
Imports nothing from the other layers.
"""
