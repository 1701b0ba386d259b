"""The milter front door: codec, session, actions, listener."""
