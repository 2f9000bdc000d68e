"""Every URL Server5K serves, in one list (each module keeps its own routes at its bottom)."""

from handlers import auth, openapi, races, results, sockets, times

ROUTES = (auth.routes + times.routes + races.routes + sockets.routes + results.routes
          + openapi.routes)
