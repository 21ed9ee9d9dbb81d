"""Deployment checks: the Bicep under infra/, the Function App package, azure.yaml, docs."""
