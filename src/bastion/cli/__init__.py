"""The ``bastion`` command: thin Typer faces over the domain services."""
