"""The acctsync core: settings, the Dataverse client, the mapping, storage and the sync steps.

This package never imports azure.functions; the triggers in functions/ are thin wrappers
around it, and the local host calls the same entry points.
"""

# The one place the version is kept: the package metadata and the API description read it.
__version__ = "0.4.0"
