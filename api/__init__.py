"""The HTTP edge: routers, serving logic, auth, quotas and the error -> status mapping (see ``api.ingress``)."""
