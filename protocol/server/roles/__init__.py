"""One module per role a connection may sign in as: visitor, agent, admin.

tickets holds the ticket requests agents and admins share.
"""
