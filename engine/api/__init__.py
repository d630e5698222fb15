"""The embedding API: the engine object that starts the actors, and the handles a visitor's chat
and an agent's connection are driven through.

The top layer: uses the actors, the canned desk, the store and the model.
"""
