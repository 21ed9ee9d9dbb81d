"""`make bench`: acctsync's throughput, request counts and memory against raw baselines.

Every speed figure is a ratio against a baseline measured in the same run on the same
Azurite and simulator: the raw ceiling of the same work with nothing of acctsync in it.
"""
