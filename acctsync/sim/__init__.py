"""A local Dataverse (Dynamics 365 Web API v9.2) simulator with an Entra ID stand-in.

Development only: tests, benchmarks and `make run` use it; it is never deployed. It follows
the documented behaviour of the real service (change tracking, paging, service protection,
field security, Entra error shapes) so a client that works against it works against a real
organisation. Start it with `python -m acctsync.sim` or, from tests,
`acctsync.sim.harness.start_simulator()`.
"""
