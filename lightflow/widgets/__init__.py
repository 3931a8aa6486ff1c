"""ipywidgets views of flows, the pool and explore(). Imported only by notebooks:
nothing in the core imports ipywidgets or IPython."""
