"""One module per architecture family: its config, its modules, and its task heads, top to bottom.

Modules are imported by name from ``leanformers.registry`` on first use; nothing here is imported
eagerly.
"""
