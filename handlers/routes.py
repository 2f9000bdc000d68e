"""Every URL Server5K serves, in one list. Ids in paths are decimal, at most 18 digits
(anything else is a 404 from the default handler); handlers take them with ``int()``."""

import tornado.web

from handlers.auth import MeHandler, RefreshHandler, TokenHandler, WsTicketHandler
from handlers.openapi import OpenApiHandler
from handlers.pages import STATIC, CompetenciaPageHandler, IndexPageHandler
from handlers.races import CompetenciaHandler, JuecesHandler, RaceActionHandler
from handlers.results import ResultadosHandler
from handlers.sockets import JuezSocketHandler
from handlers.spectators import ResultadosSocketHandler
from handlers.times import EnviarTiemposHandler

ID = r"([0-9]{1,18})"

ROUTES = [
    # Accounts and tokens (handlers/auth.py)
    (r"/api/token/", TokenHandler),
    (r"/api/token/refresh/", RefreshHandler),
    (r"/api/me/", MeHandler),
    (r"/api/ws-ticket/", WsTicketHandler),
    # A judge's finish times (handlers/times.py)
    (r"/api/enviar_tiempos/", EnviarTiemposHandler),
    # Competitions and race control (handlers/races.py), standings (handlers/results.py)
    (r"/api/competencias/%s/" % ID, CompetenciaHandler),
    (r"/api/competencias/%s/(iniciar|detener|reiniciar)/" % ID, RaceActionHandler),
    (r"/api/competencias/%s/jueces/" % ID, JuecesHandler),
    (r"/api/competencias/%s/resultados/" % ID, ResultadosHandler),
    (r"/api/openapi.json", OpenApiHandler),
    # WebSockets: the judge's phone (handlers/sockets.py), the results page (handlers/spectators.py)
    (r"/ws/juez/%s/?" % ID, JuezSocketHandler),
    (r"/ws/resultados/%s/?" % ID, ResultadosSocketHandler),
    # Pages for people (handlers/pages.py)
    (r"/", IndexPageHandler),
    (r"/competencias/%s/?" % ID, CompetenciaPageHandler),
    (r"/static/(.*)", tornado.web.StaticFileHandler, {"path": str(STATIC)}),
]
