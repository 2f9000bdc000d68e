"""Every URL Server5K serves, in one list. Ids in paths are decimal, at most 18 digits, and
record ids are UUIDs (anything else is a 404 from the default handler); handlers take ids with
``int()`` and record ids as text."""

from handlers.accounts import (CompetitionJudgesHandler, EquipoHandler, EquiposHandler,
                               ImportarHandler, JuecesListHandler, JuezHandler,
                               OrganizadoresHandler)
from handlers.auth import RefreshHandler, TokenHandler, WsTicketHandler
from handlers.fallback import OversizedRequest, TooLargeHandler
from handlers.console import ConsoleSocketHandler, ConsoleTicketHandler
from handlers.corrections import (AjustarTiemposHandler, AuditoriaHandler,
                                  EquipoCorrectionHandler, HistorialHandler, OficialHandler,
                                  RegistroActionHandler, RegistroHandler, RegistrosHandler)
from handlers.judge_app import JuezEnlaceHandler, JuezPageHandler, JuezServiceWorkerHandler
from handlers.openapi import OpenApiHandler
from handlers.pages import (STATIC, CompetenciaPageHandler, ConsolePageHandler, EquipoPageHandler,
                            IndexPageHandler, StaticHandler)
from handlers.movil5k import (CompetenciaHandler, CompetenciasHandler, EquipoRegistrosHandler,
                              LoginHandler, LogoutHandler, MeHandler)
from handlers.movil5k import EquiposHandler as AppEquiposHandler
from handlers.races import RaceActionHandler
from handlers.results import EquipoResultadoHandler, ResultadosHandler
from handlers.sockets import JuezSocketHandler
from handlers.spectators import ResultadosSocketHandler
from handlers.times import EnviarTiemposHandler

ID = r"([0-9]{1,18})"
RID = r"([0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12})"

ROUTES = [
    # Any request with an oversized URL or headers: 414/431 JSON (handlers/fallback.py)
    (OversizedRequest(), TooLargeHandler),
    # Accounts and tokens (handlers/auth.py)
    (r"/api/token/", TokenHandler),
    (r"/api/token/refresh/", RefreshHandler),
    (r"/api/me/", MeHandler),
    (r"/api/ws-ticket/", WsTicketHandler),
    # Movil5K, the app's second generation (handlers/movil5k.py): its login and logout; the
    # paths it shares with the guide (/api/me/, the competitions, a team's records, the
    # socket) are served by the handlers named on them, which answer both generations.
    (r"/api/login/", LoginHandler),
    (r"/api/logout/", LogoutHandler),
    (r"/api/equipos/", AppEquiposHandler),
    # A judge's finish times (handlers/times.py); a team's read-back and Movil5K's sets
    # (handlers/movil5k.py)
    (r"/api/enviar_tiempos/", EnviarTiemposHandler),
    (r"/api/equipos/%s/registros/" % ID, EquipoRegistrosHandler),
    # Competitions and race control (handlers/races.py), standings (handlers/results.py)
    (r"/api/competencias/%s/" % ID, CompetenciaHandler),
    (r"/api/competencias/%s/(iniciar|detener|reiniciar)/" % ID, RaceActionHandler),
    # (GET: the judges board of races.py; POST: a new judge, handlers/accounts.py)
    (r"/api/competencias/%s/jueces/" % ID, CompetitionJudgesHandler),
    (r"/api/competencias/%s/resultados/" % ID, ResultadosHandler),
    (r"/api/competencias/%s/equipos/%s/" % (ID, ID), EquipoResultadoHandler),
    # Corrections and the history (handlers/corrections.py)
    (r"/api/competencias/%s/registros/" % ID, RegistrosHandler),
    (r"/api/registros/%s/" % RID, RegistroHandler),
    (r"/api/registros/%s/(anular|restaurar|aceptar)/" % RID, RegistroActionHandler),
    (r"/api/registros/%s/historial/" % RID, HistorialHandler),
    (r"/api/competencias/%s/ajustar_tiempos/" % ID, AjustarTiemposHandler),
    (r"/api/equipos/%s/(estado|penalizacion)/" % ID, EquipoCorrectionHandler),
    (r"/api/competencias/%s/(oficializar|reabrir)/" % ID, OficialHandler),
    (r"/api/competencias/%s/auditoria/" % ID, AuditoriaHandler),
    # The roster and accounts (handlers/accounts.py)
    (r"/api/competencias/", CompetenciasHandler),
    (r"/api/competencias/%s/equipos/" % ID, EquiposHandler),
    (r"/api/competencias/%s/importar/" % ID, ImportarHandler),
    (r"/api/equipos/%s/" % ID, EquipoHandler),
    (r"/api/jueces/", JuecesListHandler),
    (r"/api/organizadores/", OrganizadoresHandler),
    (r"/api/jueces/%s/" % ID, JuezHandler),
    # The link and QR code that open the judge app for one judge (handlers/judge_app.py)
    (r"/api/jueces/%s/enlace/" % ID, JuezEnlaceHandler),
    # The organizer's console live channel (handlers/console.py)
    (r"/api/organizador/ws-ticket/", ConsoleTicketHandler),
    (r"/api/openapi.json", OpenApiHandler),
    # WebSockets: the judge's phone (handlers/sockets.py), the results page
    # (handlers/spectators.py), the organizer's console (handlers/console.py)
    (r"/ws/juez/%s/?" % ID, JuezSocketHandler),
    (r"/ws/resultados/%s/?" % ID, ResultadosSocketHandler),
    (r"/ws/organizador/%s/?" % ID, ConsoleSocketHandler),
    # Pages for people (handlers/pages.py)
    (r"/", IndexPageHandler),
    (r"/competencias/%s/?" % ID, CompetenciaPageHandler),
    (r"/competencias/%s/equipos/%s/?" % (ID, ID), EquipoPageHandler),
    (r"/organizador/?", ConsolePageHandler),
    # The judge app in the browser and its service worker (handlers/judge_app.py)
    (r"/juez/?", JuezPageHandler),
    (r"/juez/sw.js", JuezServiceWorkerHandler),
    (r"/static/(.*)", StaticHandler, {"path": str(STATIC)}),
]
