"""The HTTP routes, one module per area, each a module-level ``router = APIRouter()``.

Routes parse and answer; the work is in ``api.service.IngressService`` (``deps.Service``) and its
typed errors become statuses in ``api.errors``. ``api.ingress.create_api`` includes them in order.
"""
