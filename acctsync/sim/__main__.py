"""`python -m acctsync.sim`: run the Dataverse simulator (see acctsync.sim.cli)."""

from acctsync.sim.cli import main

raise SystemExit(main())
