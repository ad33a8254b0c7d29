"""planning: what will happen before anything is written. The source's profile (schema), the
findings, the plan derived from the target's capabilities (never its name), the metadata rules,
the pure transform ``map_batch`` (and its reverse), the dry run, and the namespace -> collection
map. May import: ``vmkit.connectors`` (to read a source and ask a target's capabilities) and
``vmkit.core``.
"""
