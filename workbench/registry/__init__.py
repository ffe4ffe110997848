"""The model registry: named, versioned models with stages, aliases and an audit trail.

`base` holds the types and the `RegistryStore` seam; `rules` the pure transition logic that
every store applies inside its own atomic section (a lock, a SQLite transaction, a Redis
WATCH/MULTI), so the three stores cannot disagree on what a transition does.
"""
