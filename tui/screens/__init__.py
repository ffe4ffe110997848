"""The screens: one per mode (overview, workflows, tuning, models, events), plus an execution's
DAG, the dialogs and the help screen."""
