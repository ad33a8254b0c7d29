"""notebook: the Jupyter views over the same calls the CLI makes. The migration panel
(widgets) and its controller, reports (tables, plots, HTML), the demo data and the papermill
helpers. May import every stage below it (sync, migration, planning, connectors, state, core);
the CLI does not import it except to run notebooks.
"""
