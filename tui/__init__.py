"""The operators' terminal UI: `workbench tui`. The only code of the project importing Textual."""
