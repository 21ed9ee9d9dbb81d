"""The API's routers, one per kind of resource."""
