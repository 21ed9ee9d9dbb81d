"""Development-only tools for acctsync: the CLI, the local host, Azurite and the simulator.

Nothing here is deployed to Azure (see .funcignore); the functions live in `functions/`
and the core in `shared/`.
"""
