"""The Azure Functions triggers: thin wrappers that parse the input, call one function of
`shared`, and log the result."""
