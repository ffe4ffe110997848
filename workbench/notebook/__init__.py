"""Jupyter views over the client: `wb = workbench.connect()`, then `wb.run(...)`,
`wb.optimize(...)`, `wb.models`, `wb.cluster`, each a live widget in a notebook.

The only package of the core that imports ipywidgets, and only when a widget is shown.
"""

from workbench.notebook.cluster import Cluster
from workbench.notebook.execution import Execution
from workbench.notebook.models import Models
from workbench.notebook.session import Notebook, connect
from workbench.notebook.tuning import Study

__all__ = ["Cluster", "Execution", "Models", "Notebook", "Study", "connect"]
