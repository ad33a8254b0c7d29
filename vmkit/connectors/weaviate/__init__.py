"""The weaviate connector: ``connector`` (the Connector), and beside it one module per further
concern (reads, scans, writes, samples, the SDK's quirks). May import: ``vmkit.connectors``'s
shared modules and ``vmkit.core``; never another database's package nor the planner."""
